"""Local backend: the platform's Prometheus metrics — per revision, what the autoscaler decided and why it could
(desired/actual/ready replicas, panic, activator in path, observed metric vs target), what the data path holds,
and the scale-from-zero breakdown. Read at scrape time from the live objects; one registry per platform."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from modelplane.backends.local.autoscaler import ColdStarts
from modelplane.backends.local.gateway import Gateway
from modelplane.backends.local.revision import Revisions
from modelplane.control.revision import revision_name

LABELS = ["namespace", "inferenceservice", "component", "revision"]


class PlatformCollector(Collector):
    def __init__(self, revisions: Revisions, gateway: Gateway, cold: ColdStarts) -> None:
        self.revisions = revisions
        self.gateway = gateway
        self.cold = cold

    def collect(self) -> Iterator[Metric]:
        families = {
            "desired": GaugeMetricFamily(
                "modelplane_autoscaler_desired_replicas", "Replicas the autoscaler wants", labels=LABELS
            ),
            "actual": GaugeMetricFamily(
                "modelplane_autoscaler_actual_replicas", "Replica processes running", labels=LABELS
            ),
            "ready": GaugeMetricFamily(
                "modelplane_autoscaler_ready_replicas", "Replicas whose model answers", labels=LABELS
            ),
            "panic": GaugeMetricFamily(
                "modelplane_autoscaler_panic_mode", "1 while the KPA is in panic mode", labels=LABELS
            ),
            "activator": GaugeMetricFamily(
                "modelplane_autoscaler_activator_in_path", "1 while the activator is in the path (Proxy)", labels=LABELS
            ),
            "observed": GaugeMetricFamily(
                "modelplane_autoscaler_observed_metric",
                "The metric of the last decision (stable or panic average)",
                labels=LABELS,
            ),
            "target": GaugeMetricFamily("modelplane_autoscaler_target", "Target metric per replica", labels=LABELS),
            "burst": GaugeMetricFamily(
                "modelplane_autoscaler_excess_burst_capacity",
                "Knative's excess burst capacity (< 0: the activator stays in the path; -1: always)",
                labels=LABELS,
            ),
            "held": GaugeMetricFamily(
                "modelplane_activator_held_requests", "Requests waiting for a ready replica", labels=LABELS
            ),
            "inflight": GaugeMetricFamily(
                "modelplane_revision_requests_in_flight", "Requests in the data path", labels=LABELS
            ),
        }
        for state in self.revisions:
            scaler = state.scaler
            if scaler is None:
                continue
            labels = [*state.owner, revision_name(state.key)]
            have, ready = state.count()
            decision = scaler.decision
            pool = self.gateway.pools.get(state.key)
            values = {
                "desired": scaler.desired,
                "actual": have,
                "ready": ready,
                "panic": int(decision.panic),
                "activator": int(decision.activator),
                "observed": decision.observed,
                "target": scaler.spec.target,
                "burst": decision.excess_burst,
                "held": pool.held if pool else 0,
                "inflight": pool.meter.inflight if pool else 0,
            }
            for key, family in families.items():
                family.add_metric(labels, float(values[key]))
        yield from families.values()
        cold = SummaryMetricFamily(
            "modelplane_cold_start_phase_seconds",
            "Scale-from-zero phases: decide_and_spawn (request held -> replica forked), boot (-> model answers ready)",
            labels=["phase"],
        )
        for phase, total in self.cold.sums.items():
            cold.add_metric([phase], count_value=self.cold.count, sum_value=total)
        yield cold


def registry(revisions: Revisions, gateway: Gateway, cold: ColdStarts) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(PlatformCollector(revisions, gateway, cold))
    return reg


def render(reg: CollectorRegistry) -> bytes:
    return generate_latest(reg)
