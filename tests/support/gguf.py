"""A GGUF file for the llama.cpp ServingRuntime test: the tiny random Llama built in the test, converted by
llama.cpp's own converter (from the llama-cpp-python sdist that scripts/setup.sh keeps beside its build). The
converter knows pre-tokenizers by the hash of a tokenizer's output; one trained in the test is unknown to it, and
it is a byte-level BPE like GPT-2's, so it is declared as that."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VERSION = "0.3.36"
CACHE = Path(
    os.environ.get("MODELPLANE_LLAMA_CPP_CACHE", Path.home() / ".cache" / "modelplane" / f"llama-cpp-{VERSION}")
)
VENDOR = CACHE / "sdist" / f"llama_cpp_python-{VERSION}" / "vendor" / "llama.cpp"

_CONVERT = """
import sys
vendor = sys.argv[1]
sys.path[:0] = [vendor, vendor + "/gguf-py"]
import conversion.base as base
import conversion.llama as llama
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
llama.LlamaModel.set_vocab = lambda self: self._set_vocab_gpt2()
import convert_hf_to_gguf
sys.argv = ["convert", sys.argv[2], "--outfile", sys.argv[3], "--outtype", "f32"]
convert_hf_to_gguf.main()
"""


def available() -> bool:
    return (CACHE / ".ready").exists()


def server_python() -> Path:
    return CACHE / "bin" / "python"


def convert(model_dir: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-c", _CONVERT, str(VENDOR), str(model_dir), str(out)], check=True, capture_output=True
    )
    return out
