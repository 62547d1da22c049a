"""The first hour of a KServe user: an honest `up`, a CLI that knows its own platform, strict YAML, kubectl habits,
built-in runtimes that can be listed, unique request ids across zygote replicas, and tidy processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import IRIS_V1, IRIS_V2
from support.observe import wait_for
from support.platform import DATA, Platform, alive, cli
from support.server import free_port


@pytest.fixture(scope="module")
def plat(tmp_path_factory, iris_dir):
    home = tmp_path_factory.mktemp("first-hour") / "home"
    home.mkdir()
    p = Platform(home)
    p.up()
    try:  # a failure while setting up must not leave the platform running
        for name in ("iris-a", "iris-b"):
            doc = yaml.safe_load((DATA / "sklearn-iris.yaml").read_text())
            doc["metadata"]["name"] = name
            doc["spec"]["predictor"]["model"]["storageUri"] = str(iris_dir)
            (home / f"{name}.yaml").write_text(yaml.safe_dump(doc))
            cli(home, "apply", "-f", str(home / f"{name}.yaml"))
        wait_for(lambda: p.ready("iris-a") and p.ready("iris-b"), "both InferenceServices to be Ready", timeout=90)
        yield p
    finally:
        p.shutdown()


def _cmdlines() -> dict[int, str]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return out


def test_up_on_taken_ports_says_which_and_leaves_nothing(tmp_path):
    home = tmp_path / "home"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = cli(home, "up", "--detach", "--port", str(port), "--api-port", str(free_port()), check=False)
        assert out.returncode == 1
        assert f"127.0.0.1:{port} is in use" in out.stderr and "--port" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        api = free_port()
        with socket.socket() as api_taken:
            api_taken.bind(("127.0.0.1", api))
            api_taken.listen(1)
            out = cli(home, "up", "--detach", "--port", str(free_port()), "--api-port", str(api), check=False)
            assert out.returncode == 1 and "--api-port" in out.stderr, out.stderr
    assert not (home / "platform.json").exists()
    assert not [pid for pid, cmd in _cmdlines().items() if "modelplane zygote" in cmd and str(home) in cmd]
    assert cli(home, "down").stdout.strip() == "not up"


def test_the_cli_refuses_to_talk_to_another_homes_platform(plat, tmp_path):
    other = tmp_path / "other-home"
    other.mkdir()
    info = json.loads((plat.home / "platform.json").read_text())
    info["instance"] = "0" * 32  # this home believes a different platform answers on that port
    (other / "platform.json").write_text(json.dumps(info))
    (other / "token").write_text((plat.home / "token").read_text())
    out = cli(other, "get", "isvc", check=False)
    assert out.returncode == 1 and "belongs to another platform" in out.stderr


def test_down_after_kill_9_cleans_up_and_the_zygote_follows_its_platform(tmp_path, iris_dir):
    p = Platform(tmp_path / "home")
    p.home.mkdir()
    p.up()
    wait_for(
        lambda: any("modelplane zygote" in c and str(p.home) in c for c in _cmdlines().values()),
        "the zygote to start",
    )
    zygotes = [pid for pid, cmd in _cmdlines().items() if "modelplane zygote" in cmd and str(p.home) in cmd]
    p.stop(signal.SIGKILL)
    wait_for(lambda: not any(alive(z) for z in zygotes), "the zygote to exit after its platform died", timeout=15)
    out = cli(p.home, "down")
    assert "not up" in out.stdout and "stale" in out.stdout
    assert not (p.home / "platform.json").exists()


def test_strict_yaml_names_the_unknown_field_and_the_right_one(plat, tmp_path, iris_dir):
    doc = yaml.safe_load((DATA / "sklearn-iris.yaml").read_text())
    doc["metadata"]["name"] = "typo"
    model = doc["spec"]["predictor"]["model"]
    del model["storageUri"]  # the sample's gs:// URI: no network here
    model["storageURI"] = str(iris_dir)
    doc["spec"]["predictor"]["minReplica"] = 1
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = cli(plat.home, "apply", "-f", str(path), check=False)
    assert out.returncode == 1
    assert 'unknown field "spec.predictor.model.storageURI", did you mean "storageUri"?' in out.stderr
    assert 'unknown field "spec.predictor.minReplica", did you mean "minReplicas"?' in out.stderr
    assert cli(plat.home, "get", "isvc", "typo", check=False).returncode == 1  # nothing was created
    warned = cli(plat.home, "apply", "-f", str(path), "--validate=warn", check=False)
    assert warned.returncode == 0 and "Warning: unknown field" in warned.stderr
    cli(plat.home, "delete", "isvc", "typo")
    for sample in sorted(DATA.glob("*.yaml")):  # KServe's own samples are strict-clean
        for d in yaml.safe_load_all(sample.read_text()):
            if d and d.get("kind") == "InferenceService":
                from modelplane.control.api import InferenceService
                from modelplane.control.strict import unknown_fields

                assert unknown_fields(d, InferenceService) == [], sample.name


def test_kubectl_habits(plat, tmp_path, iris_dir):
    home = plat.home
    manifest = (home / "iris-a.yaml").read_text()
    assert (
        "inferenceservice.serving.kserve.io/iris-a unchanged"
        in cli(home, "apply", "-f", str(home / "iris-a.yaml")).stdout
    )
    env = {**os.environ, "MODELPLANE_HOME": str(home)}
    piped = subprocess.run(
        [sys.executable, "-m", "modelplane", "apply", "-f", "-"],
        input=manifest,
        capture_output=True,
        text=True,
        env=env,
    )
    assert piped.returncode == 0 and "iris-a unchanged" in piped.stdout
    assert cli(home, "get", "isvc", "-o", "bogus", check=False).returncode == 2
    assert json.loads(cli(home, "describe", "isvc", "iris-a", "-o", "json").stdout)["metadata"]["name"] == "iris-a"
    listed = cli(home, "get", "isvc", "-A").stdout.splitlines()
    assert listed[0].split()[:2] == ["NAMESPACE", "NAME"] and any(line.startswith("default") for line in listed[1:])
    assert cli(home, "get", "isvc", "-o", "name").stdout.split() == [
        "inferenceservice.serving.kserve.io/iris-a",
        "inferenceservice.serving.kserve.io/iris-b",
    ]
    replicas = cli(home, "get", "replicas").stdout.splitlines()
    assert replicas[0].split()[:3] == ["NAMESPACE", "REVISION", "INDEX"]
    assert any("iris-a-predictor-00001" in line and "1/1" in line for line in replicas[1:])
    out = cli(home, "logs", "iris-a", "-c", "transformer", check=False)
    assert out.returncode == 1 and "has no transformer" in out.stderr
    from modelplane import __version__

    assert cli(home, "--version").stdout.strip() == __version__
    runtimes = cli(home, "get", "clusterservingruntimes").stdout
    assert all(name in runtimes for name in ("kserve-sklearnserver", "kserve-xgbserver", "kserve-lgbserver"))
    one = json.loads(cli(home, "get", "clusterservingruntime", "kserve-sklearnserver", "-o", "json").stdout)
    assert one["spec"]["supportedModelFormats"][0]["name"] == "sklearn"
    refused = cli(home, "delete", "clusterservingruntime", "kserve-sklearnserver", check=False)
    assert refused.returncode == 1 and "read-only" in refused.stderr
    # apply and delete from the same file
    doc = yaml.safe_load(manifest)
    doc["metadata"]["name"] = "iris-c"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc))
    assert "iris-c created" in cli(home, "apply", "-f", str(tmp_path / "c.yaml")).stdout
    assert (
        'inferenceservice.serving.kserve.io "iris-c" deleted'
        in cli(home, "delete", "-f", str(tmp_path / "c.yaml")).stdout
    )


def test_request_ids_are_unique_across_zygote_replicas(plat):
    ids = []
    with httpx.Client() as client:
        for name in ("iris-a", "iris-b"):
            for _ in range(10):
                body = {"inputs": IRIS_V2["inputs"]}  # no id: the server makes one
                r = client.post(f"{plat.gateway}/serving/default/{name}/v2/models/{name}/infer", json=body)
                assert r.status_code == 200
                ids.append(r.json()["id"])
    assert len(set(ids)) == 20


def test_prev_column_shows_the_revision_tagged_prev(plat, tmp_path, iris_dir):
    home = plat.home
    doc = yaml.safe_load((home / "iris-b.yaml").read_text())
    doc["spec"]["predictor"]["canaryTrafficPercent"] = 30
    doc["spec"]["predictor"]["model"]["args"] = ["--max-threads=3"]  # a new revision
    (tmp_path / "canary.yaml").write_text(yaml.safe_dump(doc))
    cli(home, "apply", "-f", str(tmp_path / "canary.yaml"))

    def row() -> list[str]:
        lines = cli(home, "get", "isvc", "iris-b").stdout.splitlines()
        return lines[1].split()

    wait_for(lambda: row()[3:5] == ["70", "30"], "the 70/30 canary split", timeout=60)
    assert row()[5] == "iris-b-predictor-00001" and row()[6] == "iris-b-predictor-00002"
    revisions = {line.split()[0]: line.split() for line in cli(home, "get", "revisions").stdout.splitlines()[1:]}
    assert revisions["iris-b-predictor-00001"][1:4] == ["iris-b", "predictor", "70%"]
    assert revisions["iris-b-predictor-00002"][3:5] == ["30%", "1"]
    assert revisions["iris-a-predictor-00001"][3] == "100%"
    refused = cli(home, "delete", "revision", "iris-b-predictor-00001", check=False)
    assert refused.returncode == 1 and "read-only" in refused.stderr
    r = httpx.post(f"{plat.gateway}/serving/default/iris-b/v1/models/iris-b:predict", json=IRIS_V1)
    assert r.status_code == 200


def test_one_broken_stored_object_is_reported_on_itself_and_the_others_carry_on(plat, iris_dir):
    import sqlite3

    doc = yaml.safe_load((plat.home / "iris-a.yaml").read_text())
    doc["metadata"].update(name="broken", namespace="default", generation=1, uid="u1", resourceVersion="1")
    doc["spec"]["predictor"]["minReplicas"] = "lots"  # what the API would refuse, written behind its back
    with sqlite3.connect(plat.home / "state.db") as db:
        db.execute(
            "INSERT INTO objects(kind, namespace, name, body, generation, version) VALUES (?,?,?,?,?,?)",
            ("InferenceService", "default", "broken", json.dumps(doc), 1, 10_000),
        )

    def reason() -> str:
        conditions = (plat.isvc("broken").get("status") or {}).get("conditions", [])
        return next((c["reason"] + ": " + c["message"] for c in conditions if c["type"] == "Ready"), "")

    wait_for(lambda: reason().startswith("ReconcileFailed") and "minReplicas" in reason(), "the broken isvc's status")
    r = httpx.post(f"{plat.gateway}/serving/default/iris-a/v1/models/iris-a:predict", json=IRIS_V1)
    assert r.status_code == 200 and plat.ready("iris-a")
    cli(plat.home, "delete", "isvc", "broken")


def test_ps_shows_which_process_is_which(plat):
    titles = _cmdlines()
    info = json.loads((plat.home / "platform.json").read_text())
    assert titles[info["pid"]].startswith(f"modelplane platform {plat.home}")
    replicas = json.loads((plat.home / "replicas.json").read_text())["replicas"]
    a = next(r for r in replicas if ".iris-a-predictor-00001." in r["revision"])
    assert titles[a["pid"]].strip() == "modelplane replica default/iris-a-predictor-00001/0"
    assert any(t.startswith("modelplane zygote") and str(plat.home) in t for t in titles.values())
