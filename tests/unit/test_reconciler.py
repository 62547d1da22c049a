"""The pure reconciler on KServe's canary walk-through (controlplane-notes §3.1), with fake observations."""

from __future__ import annotations

from modelplane.control.api import InferenceService
from modelplane.control.reconciler import Observed, reconcile, template_hash, templates
from modelplane.control.revision import Revision
from modelplane.control.runtimes import RuntimeResolutionError, builtin_runtimes
from modelplane.control.webhook import default

NOW = "2026-01-01T00:00:00Z"


def make(uri: str = "s3://b/v1", canary: int | None = None, annotations: dict | None = None) -> InferenceService:
    predictor = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri}}
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    return default(
        InferenceService.model_validate(
            {
                "kind": "InferenceService",
                "metadata": {"name": "iris", "annotations": annotations or {}, "generation": 1},
                "spec": {"predictor": predictor},
            }
        )
    )


def rev(n: int) -> Revision:
    return Revision("default", "iris", "predictor", n, f"iris-predictor-{n:05d}", "h", {}, NOW)


class World:
    """Carries status from one reconcile to the next, as the store does."""

    def __init__(self) -> None:
        self.status: dict = {}

    def step(self, isvc: InferenceService, revs: list[Revision], ready: set[int], failed: dict[int, str] | None = None):
        isvc.status = self.status
        observed = {
            r.name: Observed(ready=1 if r.number in ready else 0, failure=(failed or {}).get(r.number, ""))
            for r in revs
        }
        desired = reconcile(isvc, {"predictor": revs}, observed, now=NOW, gateway_url="http://127.0.0.1:8080")
        self.status = desired.status
        return desired

    def split(self, desired) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in desired.traffic["predictor"]:
            out[t["revisionName"]] = out.get(t["revisionName"], 0) + t["percent"]
        return {k: v for k, v in out.items() if v}

    @property
    def predictor(self) -> dict:
        return self.status["components"]["predictor"]


def test_templates_change_only_with_what_makes_a_revision():
    a = templates(make(), [], builtin_runtimes())["predictor"]
    assert template_hash(a) == template_hash(templates(make(canary=10), [], builtin_runtimes())["predictor"])
    assert template_hash(a) != template_hash(templates(make("s3://b/v2"), [], builtin_runtimes())["predictor"])
    assert a["runtime"] == "kserve-sklearnserver" and a["protocol"] == "v1"


def test_canary_walkthrough_create_canary_promote_rollback():
    w = World()
    d = w.step(make(), [rev(1)], ready=set())
    assert d.replicas == {"iris-predictor-00001": 1} and d.traffic["predictor"] == []
    assert w.status["conditions"][-1] == {
        "type": "Ready",
        "status": "False",
        "reason": "NotReady",
        "lastTransitionTime": NOW,
    }
    d = w.step(make(), [rev(1)], ready={1})
    assert (
        w.split(d) == {"iris-predictor-00001": 100} and w.predictor["latestRolledoutRevision"] == "iris-predictor-00001"
    )
    assert (
        w.status["url"] == "http://iris.default.example.com"
        and w.status["modelStatus"]["transitionStatus"] == "UpToDate"
    )
    # edit with canaryTrafficPercent: 10 -> revision 2; until it is ready, everything stays on 1 (blue/green)
    d = w.step(make("s3://b/v2", canary=10), [rev(1), rev(2)], ready={1})
    assert w.split(d) == {"iris-predictor-00001": 100} and d.replicas["iris-predictor-00002"] == 1
    d = w.step(make("s3://b/v2", canary=10), [rev(1), rev(2)], ready={1, 2})
    assert w.split(d) == {"iris-predictor-00002": 10, "iris-predictor-00001": 90}
    assert [t.get("tag") for t in d.traffic["predictor"]] == [None, "prev"]
    assert w.predictor["latestRolledoutRevision"] == "iris-predictor-00001"
    # promote: drop the field -> 100 % latest; rollout bookkeeping moves
    d = w.step(make("s3://b/v2"), [rev(1), rev(2)], ready={1, 2})
    assert w.split(d) == {"iris-predictor-00002": 100} and d.replicas["iris-predictor-00001"] == 0
    assert (w.predictor["latestRolledoutRevision"], w.predictor["previousRolledoutRevision"]) == (
        "iris-predictor-00002",
        "iris-predictor-00001",
    )
    # roll back: canaryTrafficPercent 0 -> all traffic to the previously rolled-out revision, which was scaled
    # down: it is started, and the current split keeps serving until it is ready
    d = w.step(make("s3://b/v2", canary=0), [rev(1), rev(2)], ready={2})
    assert w.split(d) == {"iris-predictor-00002": 100} and d.replicas["iris-predictor-00001"] == 1
    d = w.step(make("s3://b/v2", canary=0), [rev(1), rev(2)], ready={1, 2})
    assert w.split(d) == {"iris-predictor-00001": 100}
    assert w.predictor["latestRolledoutRevision"] == "iris-predictor-00001"


def test_a_revision_that_never_becomes_ready_gets_no_traffic_and_its_failure_is_reported():
    w = World()
    w.step(make(), [rev(1)], ready={1})
    d = w.step(make("s3://b/broken"), [rev(1), rev(2)], ready={1}, failed={2: "model.joblib not found"})
    assert w.split(d) == {"iris-predictor-00001": 100}
    assert w.status["modelStatus"]["lastFailureInfo"]["message"] == "model.joblib not found"
    assert w.status["modelStatus"]["transitionStatus"] == "BlockedByFailedLoad"


def test_tag_routing_marks_latest_and_stop_scales_everything_down():
    w = World()
    w.step(make(annotations={"serving.kserve.io/enable-tag-routing": "true"}), [rev(1)], ready={1})
    d = w.step(make(annotations={"serving.kserve.io/enable-tag-routing": "true"}), [rev(1)], ready={1})
    assert d.traffic["predictor"][0]["tag"] == "latest"
    d = w.step(make(annotations={"serving.kserve.io/stop": "true"}), [rev(1)], ready={1})
    assert d.replicas == {"iris-predictor-00001": 0} and d.traffic["predictor"] == []
    assert {c["type"]: c["status"] for c in w.status["conditions"]}["Stopped"] == "True"


def test_runtime_resolution_failure_is_an_invalid_spec_status():
    isvc = make()
    error = RuntimeResolutionError("NoSupportingRuntime", "No runtime found to support specified framework/version")
    d = reconcile(isvc, {}, {}, now=NOW, resolution_error=error)
    assert d.status["modelStatus"]["transitionStatus"] == "InvalidSpec"
    predictor = next(c for c in d.status["conditions"] if c["type"] == "PredictorReady")
    assert predictor["reason"] == "NoSupportingRuntime" and predictor["status"] == "False"


def test_a_serving_revision_whose_only_replica_is_being_replaced_keeps_its_traffic_but_is_not_ready():
    w = World()
    w.step(make(), [rev(1)], ready={1})
    w.step(make(), [rev(1)], ready={1})
    isvc = make()
    isvc.status = w.status
    crashed = {"iris-predictor-00001": Observed(ready=0, starting=1, failure="replica was killed by SIGKILL")}
    d = reconcile(isvc, {"predictor": [rev(1)]}, crashed, now=NOW)
    assert [(t["revisionName"], t["percent"]) for t in d.traffic["predictor"]] == [("iris-predictor-00001", 100)]
    assert {c["type"]: c["status"] for c in d.status["conditions"]}["Ready"] == "False"
    gone = {"iris-predictor-00001": Observed(ready=0, starting=0)}  # no replica at all: nothing to wait for
    assert reconcile(isvc, {"predictor": [rev(1)]}, gone, now=NOW).traffic["predictor"] == []
