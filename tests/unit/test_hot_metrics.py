"""The per-request metrics kept as plain numbers: scraped, they read exactly as prometheus_client's own Histogram and
Counter would for the same observations (the library is the oracle), and a forgotten model's series are gone."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from modelplane.server.metrics import Metrics

OBSERVED = [0.0001, 0.005, 0.0050001, 0.07, 0.075, 3.0, 12.0]  # on a bound, just past one, past the last


def _samples(text: bytes, prefix: str) -> set[str]:
    return {line for line in text.decode().splitlines() if line.startswith(prefix) and "_created" not in line}


def test_latency_buckets_count_and_sum_match_prometheus_client() -> None:
    ours = Metrics()
    oracle = CollectorRegistry()
    reference = Histogram("request_predict_seconds", "predict latency", ["model_name"], registry=oracle)
    for seconds in OBSERVED:
        ours.observe("predict", "m", seconds)
        reference.labels("m").observe(seconds)
    got = _samples(ours.exposition()[0], "request_predict_seconds")
    assert got == _samples(generate_latest(oracle), "request_predict_seconds")
    assert 'request_predict_seconds_bucket{le="0.005",model_name="m"} 2.0' in got  # `le` includes the bound
    assert 'request_predict_seconds_count{model_name="m"} 7.0' in got


def test_request_counts_match_prometheus_client_and_forget_drops_a_models_series() -> None:
    ours = Metrics()
    oracle = CollectorRegistry()
    reference = Counter("modelplane_requests", "", ["model_name", "protocol", "status"], registry=oracle)
    for labels in [("a", "rest", "200")] * 3 + [("a", "grpc", "400"), ("b", "rest", "200")]:
        ours.count(*labels)
        reference.labels(*labels).inc()
    ours.observe("predict", "a", 0.001)
    assert _samples(ours.exposition()[0], "modelplane_requests") == _samples(
        generate_latest(oracle), "modelplane_requests"
    )
    ours.forget("a")
    text = ours.exposition()[0].decode()
    assert (
        'model_name="a"' not in text
        and 'modelplane_requests_total{model_name="b",protocol="rest",status="200"}' in text
    )


def test_without_per_model_labels_every_model_counts_under_one_series() -> None:
    ours = Metrics(per_model=False)
    ours.count("a", "rest", "200")
    ours.count("b", "rest", "200")
    ours.observe("predict", "a", 0.01)
    text = ours.exposition()[0].decode()
    assert 'modelplane_requests_total{model_name="",protocol="rest",status="200"} 2.0' in text
    assert 'request_predict_seconds_count{model_name=""} 1.0' in text and 'model_name="a"' not in text
