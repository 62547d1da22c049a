"""The OpenAI routes through the platform's gateway: KServe-format InferenceServices (a tiny causal LM and an
encoder, `modelFormat: huggingface`) on one machine, the official client pointed at the gateway's own host — the
body's `model` picks the InferenceService — streams relayed chunk by chunk, a client that leaves frees the
replica's sequence, and the model list is the union of what the predictors serve."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import httpx
import openai
import pytest
from support import llm_models
from support import tensor_models as tm
from support.observe import wait_for
from support.platform import applied, cli


def isvc(name: str, uri: Path) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "huggingface"}, "storageUri": str(uri)}}},
    }


def running(gateway: str) -> float:
    text = httpx.get(f"{gateway}/serving/default/tiny/metrics").text  # the replica's own metrics
    match = re.search(r'^modelplane_llm_running_sequences\{model_name="tiny"\} (\S+)$', text, re.M)
    assert match, text[-1500:]
    return float(match.group(1))


@pytest.mark.timeout(300)
def test_openai_client_through_the_gateway(tmp_path: Path) -> None:
    lm = llm_models.causal_lm(tmp_path / "tiny", context=4096)
    encoder = shutil.copytree(tm.minilm(), tmp_path / "minilm")
    with applied(tmp_path, [isvc("tiny", lm), isvc("minilm", encoder)]) as plat:
        wait_for(lambda: plat.ready("tiny") and plat.ready("minilm"), "both InferenceServices Ready", timeout=240)
        assert "kserve-huggingfaceserver" in cli(plat.home, "get", "isvc", "tiny", "-o", "yaml").stdout
        client = openai.OpenAI(base_url=plat.gateway + "/openai/v1", api_key="unused", max_retries=0)
        assert sorted(m.id for m in client.models.list()) == ["minilm", "tiny"]

        chat = [{"role": "user", "content": "Hello"}]
        whole = client.chat.completions.create(model="tiny", messages=chat, max_tokens=8, temperature=0)
        streamed = client.chat.completions.create(model="tiny", messages=chat, max_tokens=8, temperature=0, stream=True)
        pieces = [c.choices[0].delta.content or "" for c in streamed if c.choices]
        assert len(pieces) > 1 and "".join(pieces) == whole.choices[0].message.content
        vectors = client.embeddings.create(model="minilm", input=["a", "b"])
        assert [len(d.embedding) for d in vectors.data] == [384, 384]

        by_host = httpx.post(
            f"{plat.gateway}/serving/default/tiny/openai/v1/completions",
            json={"model": "tiny", "prompt": "Hi", "max_tokens": 3},
        )
        assert by_host.status_code == 200 and by_host.json()["object"] == "text_completion"
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="absent", messages=chat)
        unnamed = httpx.post(plat.gateway + "/openai/v1/completions", json={"prompt": "x"})
        assert unnamed.status_code == 400 and "model" in unnamed.json()["error"]

        body = {
            "model": "tiny",
            "prompt": "Hi",
            "max_tokens": 4000,
            "temperature": 0,
            "stream": True,
            "ignore_eos": True,
        }
        with httpx.stream("POST", plat.gateway + "/openai/v1/completions", json=body) as response:
            chunks = response.iter_raw()
            assert next(chunks).startswith(b"data: ")
            assert running(plat.gateway) == 1
        deadline = time.monotonic() + 60
        while running(plat.gateway) != 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert running(plat.gateway) == 0


@pytest.mark.timeout(300)
def test_scaling_on_running_sequences_not_requests(tmp_path: Path) -> None:
    """One streamed request with n=4 is one request in flight but four sequences: with `scaleMetric: sequences`
    and a target of 2 the predictor goes to its second replica (on concurrency it would stay at one)."""
    lm = llm_models.causal_lm(tmp_path / "tiny", context=4096)
    doc = isvc("tiny", lm)
    doc["metadata"]["annotations"] = {"autoscaling.knative.dev/window": "6s"}
    doc["spec"]["predictor"].update({"minReplicas": 1, "maxReplicas": 2, "scaleMetric": "sequences", "scaleTarget": 2})
    with applied(tmp_path, [doc]) as plat:
        wait_for(lambda: plat.ready("tiny"), "the InferenceService Ready", timeout=240)
        assert len(plat.replica_pids()) == 1
        body = {
            "model": "tiny",
            "prompt": "Hi",
            "max_tokens": 4000,
            "n": 4,
            "temperature": 1.0,
            "stream": True,
            "ignore_eos": True,
        }
        with httpx.stream("POST", plat.gateway + "/openai/v1/completions", json=body, timeout=120) as response:
            chunks = response.iter_raw()
            next(chunks)
            wait_for(lambda: len(plat.replica_pids()) == 2, "a second replica for four running sequences", timeout=60)
