"""Test support: start a ModelServer with several test models through the Python API.

Usage: python -m support.launch Echo:echo Slow:slow ... --http-port P --grpc-port Q --host H [--max-body-bytes N]
       [--grpc-server NAME]
"""

from __future__ import annotations

import argparse
import logging

from support import models

from modelplane.server.app import ModelServer
from modelplane.server.settings import ServerSettings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("specs", nargs="+", help="Class:name")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--max-body-bytes", type=int, default=64 * 2**20)
    parser.add_argument("--grpc-max-message-bytes", type=int, default=64 * 2**20)
    parser.add_argument("--grpc-server", default="modelplane")
    args = parser.parse_args()
    logging.basicConfig(level="INFO")
    instances = []
    for spec in args.specs:
        cls, _, name = spec.partition(":")
        instances.append(getattr(models, cls)(name))
    settings = ServerSettings(
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        max_body_bytes=args.max_body_bytes,
        grpc_max_send_bytes=args.grpc_max_message_bytes,
        grpc_max_receive_bytes=args.grpc_max_message_bytes,
        grpc_server=args.grpc_server,
    )
    ModelServer(settings, instances).run()


if __name__ == "__main__":
    main()
