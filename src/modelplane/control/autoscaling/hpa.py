"""Control plane: raw-mode autoscaling with the Horizontal Pod Autoscaler's rules — replicas x utilisation /
target with a 10% tolerance, stabilisation windows (scale-down: the highest recommendation over 300 s), the default
scale-up policy (double or +4 per period), min >= 1. Pure: the caller supplies the clock and the utilisation."""

from __future__ import annotations

import math
from collections import deque

from modelplane.control.autoscaling.config import ScalingSpec
from modelplane.control.autoscaling.kpa import Decision


class HpaDecider:
    def __init__(self, spec: ScalingSpec, now: float) -> None:
        self.spec = spec
        self.recommendations: deque[tuple[float, int]] = deque()
        self.last = Decision(spec.min_scale, f"min replicas {spec.min_scale}")

    def decide(self, now: float, current: int, utilization: float | None) -> Decision:
        """`utilization`: the replicas' mean usage as a percent of their request (None: no sample yet)."""
        s = self.spec
        current = max(current, 1)
        if utilization is None:
            rec, why = current, f"no {s.metric} sample yet; keeping {current}"
        else:
            ratio = utilization / s.target
            if abs(ratio - 1) <= s.hpa_tolerance:
                rec = current
                why = f"{s.metric} {utilization:.0f}% vs target {s.target:g}% is within tolerance; {current}"
            else:
                rec = math.ceil(round(current * ratio, 9))
                why = f"{s.metric} {utilization:.0f}% vs target {s.target:g}% -> {rec}"
        self.recommendations.append((now, rec))
        keep = max(s.hpa_up_window, s.hpa_down_window)
        while self.recommendations and self.recommendations[0][0] < now - keep:
            self.recommendations.popleft()
        desired = rec
        if rec > current:
            floor = min(n for t, n in self.recommendations if t >= now - s.hpa_up_window)
            desired = max(current, floor)
            limit = max(2 * current, current + 4)  # Kubernetes' default scale-up policies, the larger wins
            if desired > limit:
                desired, why = limit, why + f"; scale-up policy limits to {limit}"
        elif rec < current:
            ceiling = max(n for t, n in self.recommendations if t >= now - s.hpa_down_window)
            desired = min(current, ceiling)
            if desired > rec:
                why += f"; stabilisation window {s.hpa_down_window:g}s holds {desired}"
        bounded = s.clamp(max(1, desired))
        if bounded != desired:
            why += f"; bounds [{s.min_scale}, {s.max_scale}] -> {bounded}"
        self.last = Decision(bounded, why, observed=utilization or 0.0)
        return self.last
