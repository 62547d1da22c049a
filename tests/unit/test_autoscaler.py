"""The autoscaling deciders (Knative KPA, HPA) and their configuration, under a fake clock."""

from __future__ import annotations

import dataclasses

import pytest

from modelplane.control.autoscaling.config import AutoscalerConfig, ScalingSpec, duration, resolve
from modelplane.control.autoscaling.hpa import HpaDecider
from modelplane.control.autoscaling.kpa import KpaDecider

BASE = ScalingSpec(target=10.0, total=10.0, min_scale=1, initial_scale=1, target_burst_capacity=0)


def feed(decider: KpaDecider, start: float, seconds: int, concurrency: float, rps: float = 0.0) -> float:
    """Record one sample a second for `seconds`; returns the clock after."""
    t = start
    for _ in range(seconds):
        decider.record(t, concurrency, rps)
        t += 1
    return t


def spec(**kw: object) -> ScalingSpec:
    return dataclasses.replace(BASE, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "kw", "load", "ready", "want", "panic"),
    [
        ("stable at target", {}, [(60, 25.0)], 3, 3, False),
        ("stable scale-up below the panic threshold", {}, [(60, 35.0)], 3, 4, False),
        ("panic on a burst in the panic window", {}, [(54, 10.0), (6, 50.0)], 1, 5, True),
        ("scale-down limited by max-scale-down-rate", {}, [(60, 0.0)], 8, 4, False),
        ("min clamp", {"min_scale": 2}, [(60, 0.0)], 2, 2, False),
        ("max clamp", {"max_scale": 3}, [(60, 100.0)], 3, 3, True),
        ("rps metric", {"metric": "rps"}, [(60, 0.0)], 1, 1, False),
        ("activation scale lifts a small demand", {"activation_scale": 3}, [(60, 1.0)], 1, 3, False),
    ],
)
def test_kpa_table(
    name: str, kw: dict[str, object], load: list[tuple[int, float]], ready: int, want: int, panic: bool
) -> None:
    d = KpaDecider(spec(**kw), now=0.0)
    t = 0.0
    for seconds, value in load:
        t = feed(d, t, seconds, value, rps=value)
    decision = d.decide(t - 1, ready)
    assert (decision.desired, decision.panic) == (want, panic), decision.reason
    assert decision.reason


def test_rps_metric_scales_on_request_rate() -> None:
    d = KpaDecider(spec(metric="rps"), now=0.0)
    t = feed(d, 0.0, 60, concurrency=0.1, rps=45.0)
    assert d.decide(t - 1, 5).desired == 5


def test_panic_never_scales_down_and_exits_after_a_calm_stable_window() -> None:
    d = KpaDecider(spec(), now=0.0)
    t = feed(d, 0.0, 54, 10.0)
    t = feed(d, t, 6, 50.0)
    assert d.decide(t - 1, 1).desired == 5
    t = feed(d, t, 10, 10.0)  # load falls back: panic holds its peak
    held = d.decide(t - 1, 5)
    assert (held.desired, held.panic) == (5, True)
    t = feed(d, t, 60, 10.0)  # a full stable window under the threshold
    calm = d.decide(t - 1, 5)
    assert not calm.panic
    assert calm.desired == 2  # ceil(10/10) = 1, but at most half of 5 ready go in one step


def test_scale_down_delay_holds_the_recent_maximum() -> None:
    d = KpaDecider(spec(scale_down_delay=10.0, stable_window=6.0, panic_window=1.0), now=0.0)
    t = feed(d, 0.0, 6, 30.0)
    assert d.decide(t - 1, 3).desired == 3
    decisions = []
    for _ in range(8):  # load drops to one replica's worth; a decision every 2 s
        t = feed(d, t, 2, 10.0)
        decisions.append(d.decide(t - 1, 3).desired)
    undelayed = KpaDecider(spec(stable_window=6.0, panic_window=1.0), now=0.0)
    u = feed(undelayed, 0.0, 6, 30.0)
    u = feed(undelayed, u, 6, 10.0)
    assert undelayed.decide(u - 1, 3).desired == 1
    assert decisions[:5] == [3, 3, 3, 3, 3]  # the 3 from t=5 stays the maximum for 10 s
    assert decisions[-1] == 1


def test_scale_to_zero_waits_out_the_grace_period() -> None:
    d = KpaDecider(spec(min_scale=0, scale_to_zero=True, zero_grace=30.0), now=0.0)
    t = feed(d, 0.0, 5, 2.0)
    assert d.decide(t - 1, 1).desired == 1
    t = feed(d, t, 61, 0.0)  # a stable window with no traffic
    first = d.decide(t - 1, 1)
    assert first.desired == 1 and "grace" in first.reason
    t = feed(d, t, 29, 0.0)
    assert d.decide(t - 1, 1).desired == 1
    t = feed(d, t, 2, 0.0)
    zero = d.decide(t - 1, 1)
    assert zero.desired == 0 and zero.activator
    # a request held by the activator brings it back at once (the out-of-band decision)
    d.record(t, 1.0, 1.0)
    assert d.decide(t, 0).desired == 1


def test_traffic_during_grace_cancels_scale_to_zero() -> None:
    d = KpaDecider(spec(min_scale=0, scale_to_zero=True, zero_grace=30.0), now=0.0)
    t = feed(d, 0.0, 61, 0.0)
    d.decide(t - 1, 1)
    t = feed(d, t, 20, 0.0)
    t = feed(d, t, 1, 1.0)
    t = feed(d, t, 15, 0.0)
    assert d.decide(t - 1, 1).desired == 1  # the stable window is not empty any more


def test_scale_to_zero_disabled_keeps_one() -> None:
    d = KpaDecider(spec(min_scale=0, scale_to_zero=False), now=0.0)
    t = feed(d, 0.0, 200, 0.0)
    assert d.decide(t - 1, 1).desired == 1


def test_initial_scale_until_reached() -> None:
    d = KpaDecider(spec(initial_scale=3), now=0.0)
    assert d.decide(1.0, 0).desired == 3
    assert d.decide(2.0, 2).desired == 3
    assert d.decide(3.0, 3).desired == 1  # reached once: now the (absent) load decides, at most halving


@pytest.mark.parametrize(
    ("tbc", "ready", "activator"),
    [(0, 1, False), (-1, 5, True), (211, 1, True), (211, 3, False)],
)
def test_activator_in_path_by_burst_capacity(tbc: float, ready: int, activator: bool) -> None:
    d = KpaDecider(spec(target_burst_capacity=tbc, total=100.0, target=70.0), now=0.0)
    t = feed(d, 0.0, 60, 10.0)
    assert d.decide(t - 1, ready).activator is activator


# --- HPA -------------------------------------------------------------------------------------------------------
HPA = ScalingSpec(klass="hpa", metric="cpu", target=80.0, min_scale=1, max_scale=10, hpa_down_window=300.0)


@pytest.mark.parametrize(
    ("current", "utilization", "want"),
    [
        (1, 160.0, 2),
        (2, 85.0, 2),  # within the 10% tolerance
        (1, 400.0, 5),
        (2, 800.0, 6),  # scale-up policy: max(double, +4)
        (3, None, 3),
        (10, 400.0, 10),  # max clamp
    ],
)
def test_hpa_table(current: int, utilization: float | None, want: int) -> None:
    assert HpaDecider(HPA, 0.0).decide(0.0, current, utilization).desired == want


def test_hpa_scale_down_waits_for_the_stabilisation_window() -> None:
    d = HpaDecider(HPA, 0.0)
    assert d.decide(0.0, 2, 160.0).desired == 4
    assert d.decide(15.0, 4, 10.0).desired == 4  # the 4 recommended 15 s ago is inside the window
    assert d.decide(301.0, 4, 10.0).desired == 1


# --- configuration -------------------------------------------------------------------------------------------
def test_config_reads_knative_keys_and_durations() -> None:
    c = AutoscalerConfig.from_mapping(
        {
            "stable-window": "6s",
            "scale-to-zero-grace-period": "1m30s",
            "enable-scale-to-zero": "false",
            "initial-scale": "2",
        }
    )
    assert (c.stable_window, c.scale_to_zero_grace_period, c.enable_scale_to_zero, c.initial_scale) == (6, 90, False, 2)
    assert duration("500ms") == 0.5
    with pytest.raises(ValueError, match="unknown autoscaler setting"):
        AutoscalerConfig.from_mapping({"stable-windw": "6s"})
    with pytest.raises(ValueError, match="stable-window must be"):
        AutoscalerConfig.from_mapping({"stable-window": "2s"})
    with pytest.raises(ValueError, match="invalid duration"):
        AutoscalerConfig.from_mapping({"stable-window": "six seconds"})


def test_resolve_maps_kserve_fields_as_kserve_does() -> None:
    c = AutoscalerConfig()
    default = resolve(c, {}, {})
    assert (default.klass, default.metric, default.target, default.min_scale) == ("kpa", "concurrency", 70.0, 1)
    s = resolve(c, {"scaleTarget": 5, "minReplicas": 0, "maxReplicas": 4}, {})
    assert (s.target, s.min_scale, s.max_scale, s.scale_to_zero, s.initial_scale) == (3.5, 0, 4, True, 1)
    cc = resolve(c, {"containerConcurrency": 2}, {"autoscaling.knative.dev/target": "10"})
    assert (cc.total, cc.container_concurrency) == (2.0, 2)
    rps = resolve(c, {"scaleMetric": "rps"}, {})
    assert rps.target == 140.0
    ann = resolve(c, {}, {"autoscaling.knative.dev/window": "10s", "autoscaling.knative.dev/min-scale": "0"})
    assert (ann.stable_window, ann.panic_window, ann.min_scale) == (10.0, 1.0, 0)
    field_wins = resolve(c, {"minReplicas": 2}, {"autoscaling.knative.dev/min-scale": "0"})
    assert field_wins.min_scale == 2


def test_resolve_raw_mode_is_hpa_on_cpu_and_never_zero() -> None:
    s = resolve(AutoscalerConfig(), {"minReplicas": 0, "maxReplicas": 3}, {}, raw=True)
    assert (s.klass, s.metric, s.target, s.min_scale, s.max_scale) == ("hpa", "cpu", 80.0, 1, 3)
    mem = resolve(AutoscalerConfig(), {"scaleMetric": "memory", "scaleTarget": 60}, {}, raw=True)
    assert (mem.metric, mem.target, mem.max_scale) == ("memory", 60.0, 1)
    assert resolve(AutoscalerConfig(), {"scaleMetric": "cpu"}, {}).klass == "hpa"  # serverless + cpu: Knative's hpa
    with pytest.raises(ValueError, match="needs the hpa class"):
        resolve(
            AutoscalerConfig(), {"scaleMetric": "cpu"}, {"autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev"}
        )


def test_the_config_file_is_read_when_it_changes_and_a_broken_one_keeps_the_last_good(tmp_path) -> None:
    import os

    from modelplane.backends.local.autoscaler import CONFIG_FILE, Autoscaler

    a = Autoscaler(tmp_path)
    a.reload()
    assert a.config == AutoscalerConfig() and not a.config_error
    path = tmp_path / CONFIG_FILE
    path.write_text("kind: ConfigMap\ndata:\n  stable-window: 10s\n  enable-scale-to-zero: 'false'\n")
    a.reload()
    assert (a.config.stable_window, a.config.enable_scale_to_zero) == (10.0, False)
    path.write_text("stable-window: 1s\n")
    os.utime(path, (1, 1))  # a different mtime, whatever the clock's resolution
    a.reload()
    assert a.config.stable_window == 10.0 and "stable-window must be" in a.config_error


def test_llm_metrics_scale_with_the_kpa_on_their_own_targets() -> None:
    c = AutoscalerConfig()
    seqs = resolve(c, {"scaleMetric": "sequences"}, {})
    assert (seqs.klass, seqs.metric, seqs.total) == ("kpa", "sequences", 32.0)
    assert seqs.target == pytest.approx(32.0 * 0.7)
    tokens = resolve(c, {"scaleMetric": "queued-tokens", "scaleTarget": 1000}, {})
    assert (tokens.metric, tokens.total, tokens.target) == ("queued-tokens", 1000.0, pytest.approx(700.0))
    with pytest.raises(ValueError, match="not an hpa metric"):
        resolve(c, {"scaleMetric": "sequences"}, {}, raw=True)
    with pytest.raises(ValueError, match="queued-tokens"):
        resolve(c, {"scaleMetric": "tokens"}, {})
    decider = KpaDecider(dataclasses.replace(seqs, target=4.0), now=0.0)
    t = feed(decider, 0.0, 60, concurrency=20.0)  # the LLM signal is fed where concurrency would be
    assert decider.decide(t - 1, 5).desired == 5
