"""Control plane: autoscaling settings — Knative's `config-autoscaler` keys and defaults (platform-wide), resolved
per revision with the `autoscaling.knative.dev/*` annotations and KServe's component fields on top."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from typing import Any

ANNOTATION = "autoscaling.knative.dev/"
KPA, HPA, NONE = "kpa", "hpa", "none"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(value: Any) -> float:
    """Seconds from a Go-style duration ("60s", "1m30s", "500ms") or a bare number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {value!r} (use e.g. 60s, 1m30s, 500ms)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise ValueError(f"invalid boolean {value!r}")
    return text == "true"


# LLM signals, read from the generative engines of a revision's replicas (summed over them), with the per-replica
# target used when the isvc sets no scaleTarget: running + waiting sequences, and prompt tokens waiting for a slot
LLM_METRICS = {"sequences": 32.0, "queued-tokens": 4096.0}


@dataclass(frozen=True, slots=True)
class AutoscalerConfig:
    """Platform-wide defaults, named as Knative's config-autoscaler keys (underscores for dashes). The last block
    is modelplane's own: the decision tick, the activator's queue and the raw-mode (HPA) loop."""

    container_concurrency_target_percentage: float = 70.0
    container_concurrency_target_default: float = 100.0
    requests_per_second_target_default: float = 200.0
    target_burst_capacity: float = 211.0
    stable_window: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    enable_scale_to_zero: bool = True
    scale_to_zero_grace_period: float = 30.0
    scale_to_zero_pod_retention_period: float = 0.0
    scale_down_delay: float = 0.0
    activator_capacity: float = 100.0
    initial_scale: int = 1
    allow_zero_initial_scale: bool = False
    min_scale: int = 0
    max_scale: int = 0
    max_scale_limit: int = 0
    tick_interval: float = 2.0
    activator_queue_depth: int = 10_000
    hpa_sync_period: float = 15.0
    hpa_tolerance: float = 0.1
    hpa_scale_up_stabilization_window: float = 0.0
    hpa_scale_down_stabilization_window: float = 300.0

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> AutoscalerConfig:
        """From config-autoscaler keys (a ConfigMap's `data`, or a plain mapping). Unknown keys are errors."""
        known = {f.name.replace("_", "-"): f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in data.items():
            f = known.get(str(key))
            if f is None:
                raise ValueError(f"unknown autoscaler setting {key!r}; known: {', '.join(sorted(known))}")
            kind = str(f.type)
            try:
                if f.name.endswith(("window", "period", "delay", "interval")):
                    values[f.name] = duration(raw)
                elif kind == "bool":
                    values[f.name] = _bool(raw)
                elif kind == "int":
                    values[f.name] = int(str(raw))
                else:
                    values[f.name] = float(str(raw))
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        config = replace(cls(), **values)
        config.validate()
        return config

    def validate(self) -> None:
        checks = [
            (
                0 < self.container_concurrency_target_percentage <= 100,
                "container-concurrency-target-percentage",
                "(0, 100]",
            ),
            (self.container_concurrency_target_default >= 0.01, "container-concurrency-target-default", ">= 0.01"),
            (self.requests_per_second_target_default >= 0.01, "requests-per-second-target-default", ">= 0.01"),
            (
                self.target_burst_capacity >= 0 or self.target_burst_capacity == -1,
                "target-burst-capacity",
                ">= 0 or -1",
            ),
            (6 <= self.stable_window <= 3600, "stable-window", "6s .. 1h"),
            (1 <= self.panic_window_percentage <= 100, "panic-window-percentage", "1 .. 100"),
            (110 <= self.panic_threshold_percentage <= 1000, "panic-threshold-percentage", "110 .. 1000"),
            (self.max_scale_up_rate > 1, "max-scale-up-rate", "> 1"),
            (self.max_scale_down_rate > 1, "max-scale-down-rate", "> 1"),
            (self.scale_to_zero_grace_period > 0, "scale-to-zero-grace-period", "> 0"),
            (self.scale_to_zero_pod_retention_period >= 0, "scale-to-zero-pod-retention-period", ">= 0"),
            (0 <= self.scale_down_delay <= 3600, "scale-down-delay", "0 .. 1h"),
            (self.activator_capacity >= 1, "activator-capacity", ">= 1"),
            (self.initial_scale >= (0 if self.allow_zero_initial_scale else 1), "initial-scale", ">= 1 (0 if allowed)"),
            (self.min_scale >= 0 and self.max_scale >= 0, "min-scale/max-scale", ">= 0"),
            (self.max_scale == 0 or self.min_scale <= self.max_scale, "min-scale", "<= max-scale"),
            (self.tick_interval > 0, "tick-interval", "> 0"),
            (self.activator_queue_depth >= 1, "activator-queue-depth", ">= 1"),
            (self.hpa_sync_period > 0, "hpa-sync-period", "> 0"),
        ]
        for ok, key, allowed in checks:
            if not ok:
                raise ValueError(f"{key} must be {allowed}")


@dataclass(frozen=True, slots=True)
class ScalingSpec:
    """Everything the deciders need for one revision."""

    klass: str = KPA  # kpa | hpa | none (fixed at min)
    metric: str = "concurrency"  # concurrency | rps | sequences | queued-tokens (kpa); cpu | memory (hpa)
    target: float = 70.0  # per replica: in-flight requests, rps, or utilisation percent (hpa)
    total: float = 100.0  # per-replica capacity before utilisation (for burst capacity)
    min_scale: int = 1
    max_scale: int = 0  # 0: unlimited
    initial_scale: int = 1
    activation_scale: int = 1
    container_concurrency: int = 0  # hard per-replica limit, 0: none
    stable_window: float = 60.0
    panic_window: float = 6.0
    panic_threshold: float = 2.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    target_burst_capacity: float = 211.0
    scale_down_delay: float = 0.0
    scale_to_zero: bool = True
    zero_grace: float = 30.0  # max(grace period, pod retention period)
    tick_interval: float = 2.0
    hpa_sync_period: float = 15.0
    hpa_tolerance: float = 0.1
    hpa_up_window: float = 0.0
    hpa_down_window: float = 300.0

    def clamp(self, n: int) -> int:
        n = max(n, self.min_scale)
        return min(n, self.max_scale) if self.max_scale else n


def resolve(
    config: AutoscalerConfig, template: dict[str, Any], annotations: dict[str, str], raw: bool = False
) -> ScalingSpec:
    """The scaling of one revision: config defaults, then `autoscaling.knative.dev/*` annotations, then KServe's
    component fields (minReplicas, maxReplicas, scaleTarget, scaleMetric, containerConcurrency), as KServe maps
    them. `raw` is the RawDeployment/Standard mode (HPA on CPU, never below one replica). ValueError on nonsense."""
    a = {k.removeprefix(ANNOTATION): v for k, v in annotations.items() if k.startswith(ANNOTATION)}

    def num(key: str, default: float) -> float:
        try:
            return float(a[key]) if key in a else default
        except ValueError:
            raise ValueError(f"annotation {ANNOTATION}{key}: not a number: {a[key]!r}") from None

    asked = template.get("scaleMetric") or a.get("metric")
    by_metric = "hpa" if raw or asked in ("cpu", "memory") else "kpa"  # as KServe picks Knative's hpa class
    klass = a.get("class", by_metric).split(".", 1)[0]
    klass = str(annotations.get("serving.kserve.io/autoscalerClass", klass)).split(".", 1)[0]
    if klass in ("external", "keda"):
        klass = NONE
    if klass not in (KPA, HPA, NONE):
        raise ValueError(f"unknown autoscaler class {klass!r} (kpa, hpa, none)")
    metric = str(template.get("scaleMetric") or a.get("metric") or ("cpu" if klass == HPA else "concurrency"))
    if metric not in ("concurrency", "rps", *LLM_METRICS, "cpu", "memory"):
        raise ValueError(
            f"unknown metric {metric!r} (concurrency, rps, sequences, queued-tokens; cpu, memory with the hpa class)"
        )
    if klass == KPA and metric not in ("concurrency", "rps", *LLM_METRICS):
        raise ValueError(
            f"metric {metric!r} needs the hpa class (raw mode); kpa scales on concurrency, rps, sequences or "
            "queued-tokens"
        )
    if klass == HPA and metric not in ("cpu", "memory"):
        raise ValueError(f"metric {metric!r} is not an hpa metric (cpu, memory)")
    cc = int(template.get("containerConcurrency") or 0)
    explicit = template.get("scaleTarget") or (a.get("target") and num("target", 0))
    if klass == HPA:
        target, total = float(explicit or 80.0), 100.0
    else:
        if metric == "rps":
            total = float(explicit or config.requests_per_second_target_default)
        elif metric in LLM_METRICS:
            total = float(explicit or LLM_METRICS[metric])
        else:
            total = float(cc or config.container_concurrency_target_default)
            if explicit:
                total = min(float(explicit), float(cc)) if cc else float(explicit)
        util = num("target-utilization-percentage", config.container_concurrency_target_percentage)
        util = util / 100 if util > 1 else util
        target = max(0.01, total * util)
    minimum = template.get("minReplicas")
    min_scale = int(minimum if minimum is not None else num("min-scale", 1))
    max_scale = int(template.get("maxReplicas") or num("max-scale", config.max_scale))
    if config.max_scale_limit:
        max_scale = min(max_scale or config.max_scale_limit, config.max_scale_limit)
    if klass != KPA:
        min_scale = max(1, min_scale)  # HPA cannot reach zero
        max_scale = max(max_scale, min_scale)  # KServe: an unset maxReplicas means no autoscaling
    if min_scale < 0 or (max_scale and min_scale > max_scale):
        raise ValueError(f"minReplicas {min_scale} must be >= 0 and <= maxReplicas {max_scale}")
    window = num("window", config.stable_window) if "window" not in a else duration(a["window"])
    if not 6 <= window <= 3600:
        raise ValueError(f"annotation {ANNOTATION}window must be 6s .. 1h")
    panic_pct = num("panic-window-percentage", config.panic_window_percentage)
    initial = int(num("initial-scale", config.initial_scale))
    if initial < (0 if config.allow_zero_initial_scale else 1):
        raise ValueError(f"initial-scale {initial} needs allow-zero-initial-scale to be 0")
    return ScalingSpec(
        klass=klass,
        metric=metric,
        target=target,
        total=total,
        min_scale=min_scale,
        max_scale=max_scale,
        initial_scale=max(initial, min_scale) if klass == KPA else min_scale,
        activation_scale=max(1, int(num("activation-scale", 1))),
        container_concurrency=cc,
        stable_window=window,
        panic_window=max(1.0, round(window * panic_pct / 100)),
        panic_threshold=num("panic-threshold-percentage", config.panic_threshold_percentage) / 100,
        max_scale_up_rate=config.max_scale_up_rate,
        max_scale_down_rate=config.max_scale_down_rate,
        target_burst_capacity=num("target-burst-capacity", config.target_burst_capacity),
        scale_down_delay=duration(a["scale-down-delay"]) if "scale-down-delay" in a else config.scale_down_delay,
        scale_to_zero=config.enable_scale_to_zero and min_scale == 0,
        zero_grace=max(
            config.scale_to_zero_grace_period,
            duration(a.get("scale-to-zero-pod-retention-period", config.scale_to_zero_pod_retention_period)),
        ),
        tick_interval=config.tick_interval,
        hpa_sync_period=config.hpa_sync_period,
        hpa_tolerance=config.hpa_tolerance,
        hpa_up_window=config.hpa_scale_up_stabilization_window,
        hpa_down_window=config.hpa_scale_down_stabilization_window,
    )


def ceil_div(a: float, b: float) -> int:
    return math.ceil(round(a / b, 9))
