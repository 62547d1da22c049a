"""The README's commands, run as printed (ports aside), so that they cannot rot: the quickstart brings the platform
up and answers, its closing hint works as printed, and the README's curl lines get predictions."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import IRIS_V1
from support.server import free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def _platform_block() -> list[str]:
    """The commands of the README's first code block in the platform section, continuation lines joined."""
    text = README.read_text()
    block = text[text.index("## The platform") :].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_quickstart_answers_and_its_hint_and_the_readme_curls_work(tmp_path):
    home = tmp_path / "home"
    port, api, grpc = free_port(), free_port(), free_port()
    env = {**os.environ, "MODELPLANE_HOME": str(home)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelplane",
            "quickstart",
            "--port",
            str(port),
            "--api-port",
            str(api),
            "--grpc-port",
            str(grpc),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not any(line.startswith("answered") for line in lines):
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
        out = "".join(lines)
        assert re.search(r"answered 200: \{\"predictions\": ?\[1, ?1\]\}", out), out
        while "In another terminal" not in lines[-1]:
            lines.append(proc.stdout.readline())
        hint = lines[-1].split("In another terminal: ", 1)[1].split("   (", 1)[0]
        shown = subprocess.run(["bash", "-c", hint], capture_output=True, text=True, cwd=tmp_path)
        assert shown.returncode == 0 and "sklearn-iris" in shown.stdout, shown.stderr
        (tmp_path / "input.json").write_text(json.dumps(IRIS_V1))
        curls = [c.replace("localhost:8080", f"localhost:{port}") for c in _platform_block() if c.startswith("curl")]
        assert len(curls) == 2
        for command in curls:
            answer = subprocess.run(["bash", "-c", command + " -s"], capture_output=True, text=True, cwd=tmp_path)
            assert json.loads(answer.stdout) == {"predictions": [1, 1]}, (command, answer.stdout)
        bare = subprocess.run(  # what the README used to say: the form content type curl -d sends by default
            [
                "curl",
                "-s",
                f"localhost:{port}/serving/default/sklearn-iris/v1/models/sklearn-iris:predict",
                "-d",
                "@input.json",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert "Content-Type: application/json" in json.loads(bare.stdout)["error"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
