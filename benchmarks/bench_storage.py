"""Benchmark: pull a large object from a local S3-compatible server (its own process), modelplane vs boto3.

The server is s3rver (node, from npm, installed into .cache/s3rver on first use; ~500 MiB/s here) or moto's
standalone server (`--server moto`; Python, ~10 MiB/s, so it measures moto rather than the clients).

Both sides are timed from creating the S3 client to the file on disk. Measured in the same run, interleaved:
boto3's `download_file` of the object, modelplane's first pull into an empty cache, and the cached re-pull; plus
the peak RSS of the pulling process. Medians over `--repeats`.
Usage: python benchmarks/bench_storage.py [--size-mib 1024] [--repeats 3] [--server s3rver|moto]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PULL = """
import json, resource, sys, time
from pathlib import Path
import boto3  # imported before the clock starts, as in the boto3 script: this measures the transfer
from modelplane.storage import download
from modelplane.storage.cache import Cache
t = time.perf_counter(); download(sys.argv[1], cache=Cache(Path(sys.argv[2]))); first = time.perf_counter() - t
t = time.perf_counter(); download(sys.argv[1], cache=Cache(Path(sys.argv[2]))); again = time.perf_counter() - t
print(json.dumps({"first_s": first, "cached_s": again,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
BOTO = """
import json, resource, sys, time, boto3
t = time.perf_counter(); boto3.client("s3").download_file(sys.argv[1], sys.argv[2], sys.argv[3])
print(json.dumps({"first_s": time.perf_counter() - t,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, port: int, data: Path, env: dict[str, str]) -> subprocess.Popen:
    if kind == "moto":
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    else:
        root = Path(__file__).resolve().parents[1] / ".cache" / "s3rver"
        binary = root / "node_modules" / ".bin" / "s3rver"
        if not binary.exists():
            subprocess.run(
                ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(root), "s3rver@3.7.1"],
                check=True,
            )
        data.mkdir(parents=True)
        cmd = [
            str(binary),
            "-d",
            str(data),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "--silent",
            "--configure-bucket",
            "bench",
        ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--server", choices=["s3rver", "moto"], default="s3rver")
    args = ap.parse_args()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "S3RVER",  # s3rver's built-in account (moto accepts anything)
        "AWS_SECRET_ACCESS_KEY": "S3RVER",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    work = Path(tempfile.mkdtemp(prefix="mp-bench-storage-"))
    server = start_server(args.server, port, work / "store", env)
    try:
        import boto3

        time.sleep(2)
        os.environ.update(
            {
                k: env[k]
                for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
            }
        )
        client = boto3.client("s3")
        if args.server == "moto":
            client.create_bucket(Bucket="bench")
        blob = work / "model.bin"
        with blob.open("wb") as fh:
            for _ in range(args.size_mib):
                fh.write(os.urandom(2**20))
        client.upload_file(str(blob), "bench", "big/model.bin")
        blob.unlink()
        rows: dict[str, list[dict]] = {"boto3": [], "modelplane": []}
        for _ in range(args.repeats):
            out = subprocess.run(
                [sys.executable, "-c", BOTO, "bench", "big/model.bin", str(work / "boto.bin")],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            rows["boto3"].append(json.loads(out.stdout))
            (work / "boto.bin").unlink()
            out = subprocess.run(
                [sys.executable, "-c", PULL, "s3://bench/big/model.bin", str(work / "cache")],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            rows["modelplane"].append(json.loads(out.stdout))
            shutil.rmtree(work / "cache")
        size = args.size_mib
        med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in rows.items()}
        ours, boto = med["modelplane"], med["boto3"]
        print(
            json.dumps(
                {"server": args.server, "size_mib": size, "repeats": args.repeats, "median": med, "raw": rows}, indent=1
            )
        )
        print(f"\n| | {size} MiB pull | MiB/s | peak RSS MiB |\n|---|---|---|---|")
        print(
            f"| boto3 download_file | {boto['first_s']:.2f} s | {size / boto['first_s']:.0f} | "
            f"{boto['peak_rss_mib']:.0f} |"
        )
        print(
            f"| modelplane, first pull | {ours['first_s']:.2f} s | {size / ours['first_s']:.0f} | "
            f"{ours['peak_rss_mib']:.0f} |"
        )
        print(f"| modelplane, cached re-pull | {ours['cached_s'] * 1000:.1f} ms | | |")
        print(
            f"\nthroughput vs boto3: {boto['first_s'] / ours['first_s']:.2f}x; "
            f"cached re-pull {ours['first_s'] / ours['cached_s']:.0f}x faster than the first"
        )
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
