"""Local backend: runs the autoscaling deciders — reads `config-autoscaler` from MODELPLANE_HOME, samples the
gateway's per-revision meters every second and replica CPU/memory from /proc, ticks the KPA (serverless) or HPA
(raw) decider of each revision, and takes the activator's out-of-band scale-from-zero."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelplane.backends.local.activator import RevisionPool
from modelplane.backends.local.procstat import group_usage, quantity
from modelplane.backends.local.revision import RevisionState
from modelplane.control.autoscaling.config import HPA, KPA, AutoscalerConfig, ScalingSpec, resolve
from modelplane.control.autoscaling.hpa import HpaDecider
from modelplane.control.autoscaling.kpa import Decision, KpaDecider

log = logging.getLogger("modelplane.autoscaler")
CONFIG_FILE = "config-autoscaler.yaml"


@dataclass
class Scaler:
    """One revision's autoscaling state."""

    spec: ScalingSpec
    decider: KpaDecider | HpaDecider | None  # None: class `none`, fixed at min
    owner: tuple[str, str, str]  # namespace, InferenceService, component
    inputs: str  # what the spec was resolved from (re-resolved when it changes)
    next_tick: float = 0.0
    desired: int = 0
    reason: str = ""
    changed_at: str = ""  # wall-clock time of the last change of `desired`
    at_zero: bool = False  # scaled to zero on purpose: the activator serves it
    cold_since: float | None = None  # when a request found it at zero (for the cold-start breakdown)
    usage: tuple[float, dict[int, float]] | None = None  # (when, CPU seconds by replica pid) for the HPA
    requests: dict[str, Any] = field(default_factory=dict)  # the container's resource requests (HPA utilisation)

    @property
    def decision(self) -> Decision:
        return self.decider.last if self.decider is not None else Decision(self.desired, self.reason)


@dataclass
class ColdStarts:
    """Sums per phase of the scale-from-zero path, exported as a Prometheus summary."""

    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0

    def add(self, phases: dict[str, float]) -> None:
        self.count += 1
        for k, v in phases.items():
            self.sums[k] = self.sums.get(k, 0.0) + v


class Autoscaler:
    """Decides replica counts; the scalers it creates live on their RevisionState (one owner per revision)."""

    def __init__(self, home: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = home / CONFIG_FILE
        self.clock = clock
        self.config = AutoscalerConfig()
        self.config_error = ""
        self._generation = 0  # bumped on each config change: scalers re-resolve their spec
        self.cold = ColdStarts()
        self._mtime: float | None = None
        self._sampled = clock()

    # --- configuration -------------------------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read the config file when it changed; a broken file keeps the last good settings (and says why)."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            doc = yaml.safe_load(self.path.read_text()) if mtime is not None else {}
            data = (doc or {}).get("data", doc) if isinstance(doc, dict) and doc.get("kind") == "ConfigMap" else doc
            self.config = AutoscalerConfig.from_mapping(dict(data or {}))
            self.config_error = ""
            self._generation += 1  # re-resolve every scaler with the new defaults
        except (OSError, ValueError, TypeError, yaml.YAMLError) as exc:
            self.config_error = f"{self.path}: {exc}"
            log.error("autoscaler config ignored: %s", self.config_error)

    def ensure(self, state: RevisionState, at_zero: bool = False) -> Scaler:
        """The revision's scaler, created or re-resolved as needed; `at_zero`: a new scaler starts scaled to zero
        (when its settings allow it). ValueError when its settings are invalid."""
        t = state.revision.template
        inputs = repr((self._generation, t.get("minReplicas"), t.get("maxReplicas"), t.get("containerConcurrency")))
        inputs += repr((t.get("scaleTarget"), t.get("scaleMetric"), t.get("autoscaling"), t.get("raw")))
        scaler = state.scaler
        if scaler is not None and scaler.inputs == inputs:
            return scaler
        spec = resolve(self.config, t, t.get("autoscaling") or {}, bool(t.get("raw")))
        now = self.clock()
        if scaler is not None:  # new settings, same history where the kind of decider is unchanged
            scaler.spec, scaler.inputs = spec, inputs
            if scaler.decider is not None and scaler.decider.spec.klass == spec.klass:
                scaler.decider.spec = spec
                return scaler
        decider = KpaDecider(spec, now) if spec.klass == KPA else HpaDecider(spec, now) if spec.klass == HPA else None
        initial = spec.initial_scale if decider is not None else spec.min_scale
        fresh = Scaler(spec, decider, state.owner, inputs, next_tick=now + spec.tick_interval, desired=max(initial, 0))
        fresh.requests = dict((t.get("resources") or {}).get("requests") or {})
        fresh.reason = decider.last.reason if decider else f"autoscaling off (class none): {spec.min_scale}"
        if scaler is not None:
            fresh.desired, fresh.at_zero = scaler.desired, scaler.at_zero
        elif at_zero and spec.scale_to_zero and isinstance(decider, KpaDecider):
            decider.reached_initial = True
            fresh.desired, fresh.at_zero, fresh.reason = 0, True, "at zero (resumed after a control-plane restart)"
        state.scaler = fresh
        return fresh

    # --- the loop ------------------------------------------------------------------------------------------
    def sample(
        self, pools: dict[str, RevisionPool], scalers: dict[str, Scaler], llm: dict[str, float] | None = None
    ) -> None:
        """Once a second: each revision's mean concurrency and request rate from its data-path pool into its KPA;
        for a revision scaling on an LLM signal, that signal (read from its replicas) in place of concurrency."""
        now = self.clock()
        if now - self._sampled < 1.0:
            return
        self._sampled = now
        for key, pool in list(pools.items()):
            concurrency, rps = pool.meter.collect()
            scaler = scalers.get(key)
            if scaler is not None and isinstance(scaler.decider, KpaDecider):
                scaler.decider.record(now, (llm or {}).get(key, concurrency), rps)

    def decide(self, state: RevisionState, wall: str) -> int:
        """The replica count this revision should run now (ticks its decider when due)."""
        scaler = state.scaler
        assert scaler is not None, "ensure() first"
        now = self.clock()
        have, ready = state.count()
        if ready and scaler.cold_since is not None:
            self._cold_start_done(state, scaler)
        if scaler.decider is None:
            return self._set(scaler, scaler.spec.min_scale, scaler.reason, wall, ready)
        if now < scaler.next_tick:
            return scaler.desired
        if isinstance(scaler.decider, KpaDecider):
            scaler.next_tick = now + scaler.spec.tick_interval
            decision = scaler.decider.decide(now, ready)
        else:
            scaler.next_tick = now + scaler.spec.hpa_sync_period
            decision = scaler.decider.decide(now, have, self._utilization(state, scaler, now))
        return self._set(scaler, decision.desired, decision.reason, wall, ready)

    def activate(self, state: RevisionState, held: int, wall: str) -> int:
        """A request is held for this revision (at zero): decide now, out of band. Returns the replicas wanted."""
        scaler = state.scaler
        if scaler is None or not isinstance(scaler.decider, KpaDecider):
            return 0
        now = self.clock()
        ready = state.count()[1]
        if scaler.cold_since is None and not ready:
            scaler.cold_since = now
        scaler.decider.record(now, float(held), 0.0)
        decision = scaler.decider.decide(now, ready)
        scaler.next_tick = now + scaler.spec.tick_interval
        why = f"activation: {held} request(s) held; {decision.reason}"
        return self._set(scaler, max(1, decision.desired), why, wall, ready)

    def _set(self, scaler: Scaler, desired: int, reason: str, wall: str, ready: int) -> int:
        if desired != scaler.desired or not scaler.changed_at:
            scaler.desired, scaler.reason, scaler.changed_at = desired, reason, wall
            log.info("%s/%s %s -> %d: %s", *scaler.owner[:2], scaler.owner[2], desired, reason)
        if desired == 0 and scaler.spec.scale_to_zero:
            scaler.at_zero = True
        elif ready:
            scaler.at_zero = False  # back from zero only once a replica answers; until then the activator holds
        return desired

    def _cold_start_done(self, state: RevisionState, scaler: Scaler) -> None:
        started = [r for r in state.replicas if r.ready_at]
        if started and scaler.cold_since is not None:
            first = min(started, key=lambda r: r.ready_at)
            self.cold.add(
                {
                    "decide_and_spawn": max(0.0, first.started - scaler.cold_since),
                    "boot": first.ready_at - first.started,
                }
            )
        scaler.cold_since = None

    def _utilization(self, state: RevisionState, scaler: Scaler, now: float) -> float | None:
        replicas = [r for r in state.replicas if r.ready]
        if not replicas:
            return None
        usage = group_usage({r.pid for r in replicas})
        requests = scaler.requests
        if scaler.spec.metric == "memory":
            per = quantity(requests.get("memory", "2Gi"))
            return 100.0 * sum(rss for _, rss in usage.values()) / (per * len(replicas))
        cpu = {pid: used for pid, (used, _) in usage.items()}
        before, scaler.usage = scaler.usage, (now, cpu)
        if before is None:
            return None
        then, old = before
        common = [pid for pid in cpu if pid in old]
        if not common or now <= then:
            return None
        per = quantity(requests.get("cpu", "1"))
        return 100.0 * sum(cpu[p] - old[p] for p in common) / ((now - then) * per * len(common))
