"""Triton's config.pbtxt: the subset modelplane reads, parsed from protobuf text format, and everything else refused
with its line and what is supported."""

from __future__ import annotations

import pytest
from support.tensor_models import ONNX_CONFIG, TORCH_CONFIG

from modelplane.protocol.types import TensorSpec
from modelplane.runtimes.triton_config import ConfigError, load_config, parse_text


def test_the_onnx_config_reads_into_a_serving_plan() -> None:
    config = load_config(ONNX_CONFIG, "mlp")
    assert (config.name, config.runtime, config.filename, config.max_batch_size) == ("mlp", "onnx", "model.onnx", 8)
    assert config.inputs == [TensorSpec("x", "FP32", [-1, 4])]  # max_batch_size > 0: the batch dimension first
    assert config.outputs == [TensorSpec("scores", "FP32", [-1, 3])]
    assert config.preferred_batch_sizes == [4, 8] and config.max_queue_delay_us == 500
    assert config.instances == 2 and config.policy == ("all", [])
    assert config.pick([3, 1, 2]) == [1, 2, 3]


def test_a_torchscript_config_with_repeated_fields_and_the_default_policy() -> None:
    config = load_config(TORCH_CONFIG, "scripted")
    assert config.runtime == "pytorch" and config.filename == "model.pt"
    assert config.inputs == [TensorSpec("INPUT__0", "FP32", [-1, 4])]  # no batching: dims as written
    assert config.max_queue_delay_us is None and config.instances == 1
    assert config.pick([1, 3, 2]) == [3]  # latest 1


@pytest.mark.parametrize(
    "policy, available, served",
    [
        ("latest { num_versions: 2 }", [1, 2, 3], [2, 3]),
        ("specific { versions: [1, 3] }", [1, 2, 3], [1, 3]),
        ("all { }", [5, 2], [2, 5]),
    ],
)
def test_version_policies(policy: str, available: list[int], served: list[int]) -> None:
    config = load_config(f'platform: "onnxruntime_onnx"\nversion_policy: {{ {policy} }}', "m")
    assert config.pick(available) == served


@pytest.mark.parametrize(
    "text, message",
    [
        ('platform: "onnxruntime_onnx"\nsequence_batching { }', "line 2: field 'sequence_batching' is not supported"),
        ('platform: "onnxruntime_onnx"\ninput [ { name: "x" data_type: TYPE_FP32 dims: [1] reshape: { shape: [1] } } ]',
         "field 'reshape' in input is not supported (supported: data_type, dims, name)"),
        ('platform: "tensorrt_plan"', "platform/backend 'tensorrt_plan' is not served by modelplane"),
        ('name: "other"\nplatform: "onnxruntime_onnx"', "names the model 'other', but its directory is 'm'"),
        ('platform: "onnxruntime_onnx"\ninstance_group [ { kind: KIND_GPU } ]', "KIND_GPU"),
        ('platform: "onnxruntime_onnx"\ninput { name: "x" data_type: TYPE_X dims: 1 }', "data_type 'TYPE_X'"),
        ('platform: "onnxruntime_onnx"\ninput { name: "x"', "unexpected end of file"),
        ('platform: "onnxruntime_onnx"\nversion_policy: { specific { versions: [9] } }', None),
    ],
)  # fmt: skip
def test_what_is_not_served_is_refused_with_where_and_why(text: str, message: str | None) -> None:
    if message is None:  # parses; the version policy fails when it meets the directories
        with pytest.raises(ConfigError, match="version_policy names version 9, which has no directory"):
            load_config(text, "m").pick([1])
        return
    with pytest.raises(ConfigError) as refused:
        load_config(text, "m")
    assert message in str(refused.value)


def test_comments_strings_and_lists_of_scalars() -> None:
    parsed = parse_text('# a comment\nname: "a # not a comment"\nmax_batch_size: 4 # trailing\n')
    assert parsed == {"name": ["a # not a comment"], "max_batch_size": [4]}
