"""Benchmark floor: a bare ASGI function under uvicorn (uvloop + httptools) with no framework.

`predict` mode parses the V2 body with orjson, calls model.predict and returns V2 JSON; `fixed` mode
answers a fixed body without reading the model. Usage: python floor_app.py MODEL_DIR PORT predict|fixed
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import numpy as np
import orjson
import uvicorn


def make_app(model_dir: str, mode: str):
    model = joblib.load(next(Path(model_dir).glob("*.joblib")))
    fixed = orjson.dumps(
        {
            "model_name": "m",
            "id": "1",
            "outputs": [{"name": "output-0", "shape": [2], "datatype": "INT64", "data": [1, 1]}],
        }
    )
    headers = [(b"content-type", b"application/json")]

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        if mode == "fixed":
            out = fixed
        else:
            doc = orjson.loads(body)
            inp = doc["inputs"][0]
            x = np.asarray(inp["data"], dtype=np.float32).reshape(inp["shape"])
            y = model.predict(x)
            out = orjson.dumps(
                {
                    "model_name": "m",
                    "id": doc.get("id", "1"),
                    "outputs": [{"name": "output-0", "shape": list(y.shape), "datatype": "INT64", "data": y}],
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*headers, (b"content-length", str(len(out)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": out})

    return app


if __name__ == "__main__":
    uvicorn.run(
        make_app(sys.argv[1], sys.argv[3]),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )
