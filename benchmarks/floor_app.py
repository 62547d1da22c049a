"""Benchmark floors: bare ASGI functions under uvicorn (uvloop + httptools), no framework at all.

  predict — parse the V2 JSON body with orjson, call model.predict, return V2 JSON
  fixed   — answer a fixed V2 body without reading the model
  binary  — parse a binary-extension body (np.frombuffer) and echo the tensor back as binary
Usage: python floor_app.py MODE PORT [MODEL_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import orjson
import uvicorn


def read_all(receive):
    async def inner() -> bytes:
        chunks, more = [], True
        while more:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        return b"".join(chunks)

    return inner()


def make_app(mode: str, model_dir: str | None):
    model = None
    if mode == "predict":
        import joblib

        model = joblib.load(next(Path(model_dir).glob("*.joblib")))
    fixed = orjson.dumps(
        {
            "model_name": "m",
            "id": "1",
            "outputs": [{"name": "output-0", "shape": [2], "datatype": "INT64", "data": [1, 1]}],
        }
    )

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = await read_all(receive)
        headers = [(b"content-type", b"application/json")]
        if mode == "fixed" or scope["method"] == "GET":  # GET is the readiness probe
            parts = [fixed]
        elif mode == "predict":
            doc = orjson.loads(body)
            inp = doc["inputs"][0]
            y = model.predict(np.asarray(inp["data"], dtype=np.float32).reshape(inp["shape"]))
            parts = [
                orjson.dumps(
                    {
                        "model_name": "m",
                        "id": doc.get("id", "1"),
                        "outputs": [{"name": "output-0", "shape": list(y.shape), "datatype": "INT64", "data": y}],
                    },
                    option=orjson.OPT_SERIALIZE_NUMPY,
                )
            ]
        else:
            n = int(dict(scope["headers"])[b"inference-header-content-length"])
            inp = orjson.loads(body[:n])["inputs"][0]
            arr = np.frombuffer(body, dtype="<f4", offset=n).reshape(inp["shape"])
            head = orjson.dumps(
                {
                    "model_name": "m",
                    "id": "1",
                    "outputs": [
                        {
                            "name": "output-0",
                            "shape": list(arr.shape),
                            "datatype": "FP32",
                            "parameters": {"binary_data_size": arr.nbytes},
                        }
                    ],
                }
            )
            parts = [head, memoryview(arr).cast("B")]
            headers = [(b"inference-header-content-length", str(len(head)).encode())]
        length = sum(len(p) for p in parts)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*headers, (b"content-length", str(length).encode())],
            }
        )
        for i, part in enumerate(parts):
            await send({"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1})

    return app


if __name__ == "__main__":
    uvicorn.run(
        make_app(sys.argv[1], sys.argv[3] if len(sys.argv) > 3 else None),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )
