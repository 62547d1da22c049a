"""Benchmark helper: a minimal HTTP/1.1 event sink (keep-alive, pipelining) that answers 202 and counts events.

Usage: python benchmarks/sink_server.py PORT   (GET /count returns how many events arrived)
"""

from __future__ import annotations

import asyncio
import sys

COUNT = 0


ACCEPTED = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Parse whatever arrived, answer every complete request in one write (cheap: the sink shares the machine)."""
    global COUNT
    buf = b""
    try:
        while chunk := await reader.read(262144):
            buf += chunk
            answers = []
            while (end := buf.find(b"\r\n\r\n")) >= 0:
                head = buf[:end]
                start = head.lower().find(b"content-length:")
                length = (
                    int(head[start + 15 : head.find(b"\r\n", start) if head.find(b"\r\n", start) > 0 else None])
                    if start >= 0
                    else 0
                )
                if len(buf) < end + 4 + length:
                    break
                buf = buf[end + 4 + length :]
                if head.startswith(b"GET /count"):
                    body = str(COUNT).encode()
                    answers.append(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
                else:
                    COUNT += 1
                    answers.append(ACCEPTED)
            if answers:
                writer.write(b"".join(answers))
    except ConnectionError:
        pass
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
