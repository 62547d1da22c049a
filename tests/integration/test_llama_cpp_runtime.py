"""llama.cpp as a ServingRuntime, end to end: the sample `modelplane-llama-cpp` ClusterServingRuntime (its command
pointed at the llama-cpp-python that scripts/setup.sh builds), a GGUF converted from a tiny Llama built in the test,
a KServe InferenceService of `modelFormat: gguf`, and the official OpenAI client through modelplane's gateway —
model-name routing, a completion, and a stream relayed chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
import yaml
from support import gguf, llm_models
from support.observe import wait_for
from support.platform import applied, cli

SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "samples" / "llm-runtimes.yaml"

pytestmark = pytest.mark.skipif(not gguf.available(), reason="llama-cpp-python is built by scripts/setup.sh")


@pytest.mark.timeout(300)
def test_a_gguf_served_by_llama_cpp_through_the_gateway(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    gguf.convert(llm_models.causal_lm(tmp_path / "hf", arch="llama"), model_dir / "model.gguf")
    runtime = next(
        d for d in yaml.safe_load_all(SAMPLES.read_text()) if d["metadata"]["name"] == "modelplane-llama-cpp"
    )
    server = runtime["spec"]["containers"][0]
    server["command"] = [str(gguf.server_python()), "-m", "llama_cpp.server"]  # the image's python, here
    server["args"] = [a if a != "0.0.0.0" else "127.0.0.1" for a in server["args"]]
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "gguf-chat"},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "gguf"}, "storageUri": str(model_dir)}}},
    }
    with applied(tmp_path, [runtime, isvc]) as plat:
        wait_for(lambda: plat.ready("gguf-chat"), "the llama.cpp InferenceService Ready", timeout=240)
        assert "modelplane-llama-cpp" in cli(plat.home, "get", "isvc", "gguf-chat", "-o", "yaml").stdout
        client = openai.OpenAI(base_url=plat.gateway + "/v1", api_key="unused", max_retries=0)  # llama.cpp's paths
        done = client.completions.create(model="gguf-chat", prompt="Hello", max_tokens=8, temperature=0)
        assert done.choices[0].finish_reason in ("length", "stop") and done.usage is not None
        assert 0 < done.usage.completion_tokens <= 8
        stream = client.completions.create(model="gguf-chat", prompt="Hello", max_tokens=8, temperature=0, stream=True)
        text = "".join(c.choices[0].text for c in stream if c.choices)
        assert text == done.choices[0].text
