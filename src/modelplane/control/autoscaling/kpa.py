"""Control plane: the Knative Pod Autoscaler's decider — stable and panic windows over 1 s buckets, scale-up/down
rate limits, scale-down delay, activation scale, min/max clamps, scale to zero after the grace period. Pure: the
caller supplies the clock (`now`, seconds) and the observations."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from modelplane.control.autoscaling.config import ScalingSpec, ceil_div


@dataclass(frozen=True, slots=True)
class Decision:
    desired: int
    reason: str
    panic: bool = False
    activator: bool = False  # the activator stays in the request path (Knative's SKS Proxy mode)
    excess_burst: float = 0.0
    observed: float = 0.0  # the metric the decision used (stable or panic average; utilisation % for hpa)


class Window:
    """Averages over the last `w` seconds of 1 s buckets; seconds without a sample count as zero, and a history
    shorter than the window is averaged over its own length (so a new revision is not diluted)."""

    def __init__(self) -> None:
        self.buckets: dict[int, list[float]] = {}
        self.first: int | None = None

    def record(self, now: float, value: float) -> None:
        second = int(now)
        if self.first is None:
            self.first = second
        total, n = self.buckets.get(second, [0.0, 0.0])
        self.buckets[second] = [total + value, n + 1]

    def average(self, now: float, window: float) -> float:
        if self.first is None:
            return 0.0
        last = int(now)
        span = max(1, math.ceil(window))
        lo = last - span + 1
        n = min(span, last - max(self.first, lo) + 1) if last >= self.first else 1
        total = sum(t / c for s, (t, c) in self.buckets.items() if lo <= s <= last)
        return total / max(1, n)

    def trim(self, now: float, keep: float) -> None:
        cutoff = int(now) - math.ceil(keep) - 1
        for s in [s for s in self.buckets if s < cutoff]:
            del self.buckets[s]


class KpaDecider:
    """One revision's decider. Feed `record` once a second; call `decide` every tick or when the activator holds a
    request for a revision at zero (the out-of-band decision)."""

    def __init__(self, spec: ScalingSpec, now: float) -> None:
        self.spec = spec
        self.concurrency = Window()
        self.rps = Window()
        self.panic_since: float | None = None
        self.max_panic = 0
        self.delays: deque[tuple[float, int]] = deque()
        self.zero_since: float | None = None
        self.reached_initial = spec.initial_scale == 0
        self.created = now
        self.last = Decision(spec.initial_scale, f"initial-scale {spec.initial_scale}", activator=True)

    def record(self, now: float, concurrency: float, rps: float) -> None:
        self.concurrency.record(now, concurrency)
        self.rps.record(now, rps)
        keep = self.spec.stable_window + 1
        self.concurrency.trim(now, keep)
        self.rps.trim(now, keep)

    def decide(self, now: float, ready: int) -> Decision:
        s = self.spec
        if ready >= s.initial_scale:
            self.reached_initial = True
        metric = self.rps if s.metric == "rps" else self.concurrency
        stable = metric.average(now, s.stable_window)
        panic = metric.average(now, s.panic_window)
        pods = max(1, ready)
        max_up = math.ceil(s.max_scale_up_rate * pods)
        max_down = math.floor(ready / s.max_scale_down_rate) if ready else 0
        dspc, dppc = ceil_div(stable, s.target), ceil_div(panic, s.target)
        want_stable = min(max(dspc, max_down), max_up)
        want_panic = min(max(dppc, max_down), max_up)
        why = f"stable {stable:.2f} {s.metric} over {s.stable_window:g}s / target {s.target:g} -> {want_stable}"
        if s.activation_scale > 1:
            if dspc > 0:
                want_stable = max(want_stable, s.activation_scale)
            if dppc > 0:
                want_panic = max(want_panic, s.activation_scale)
        over = dppc / pods >= s.panic_threshold
        if over:
            self.panic_since = now  # entering or extending panic
        elif self.panic_since is not None and now - self.panic_since >= s.stable_window:
            self.panic_since, self.max_panic = None, 0  # a full stable window without being over the threshold
        in_panic = self.panic_since is not None
        if in_panic:
            self.max_panic = max(self.max_panic, want_panic, want_stable)  # panic never scales down
            desired = self.max_panic
            why = f"panic: {panic:.2f} {s.metric} over {s.panic_window:g}s is >= {s.panic_threshold:g}x {pods} ready"
            why += f" -> {desired}"
        else:
            desired = want_stable
            if max_down > max(dspc, 1) and desired == max_down:
                why += f" (scale-down rate limits to {max_down})"
        if s.scale_down_delay > 0:
            self.delays.append((now, desired))
            while self.delays and self.delays[0][0] < now - s.scale_down_delay:
                self.delays.popleft()
            held = max(n for _, n in self.delays)
            if held > desired:
                desired, why = held, why + f"; scale-down-delay {s.scale_down_delay:g}s holds {held}"
        desired, why = self._bounds(now, desired, why, ready)
        if s.target_burst_capacity == 0:
            ebc = 0.0
        elif s.target_burst_capacity < 0:
            ebc = -1.0
        else:
            ebc = math.floor(ready * s.total - s.target_burst_capacity - panic)
        observed = panic if in_panic else stable
        self.last = Decision(desired, why, in_panic, desired == 0 or ebc < 0, ebc, observed)
        return self.last

    def _bounds(self, now: float, desired: int, why: str, ready: int) -> tuple[int, str]:
        s = self.spec
        if not self.reached_initial and desired < s.initial_scale:
            return s.clamp(s.initial_scale), f"initial-scale {s.initial_scale} until reached"
        if desired == 0 and s.scale_to_zero:
            if self.zero_since is None:
                self.zero_since = now
            left = s.zero_grace - (now - self.zero_since)
            if left > 0 and ready > 0:
                return 1, f"no traffic over {s.stable_window:g}s; scale to zero in {left:.1f}s (grace period)"
            return 0, f"scaled to zero: no traffic over {s.stable_window:g}s and the {s.zero_grace:g}s grace period"
        self.zero_since = None
        if desired < max(1, s.min_scale):
            return max(1, s.min_scale), why + f"; min-scale {max(1, s.min_scale)}"
        if s.max_scale and desired > s.max_scale:
            return s.max_scale, why + f"; max-scale {s.max_scale}"
        return desired, why
