"""Placement across the replicas of a multi-model revision (ModelMesh's rules) on a fake clock: requests stick to
the replica holding their model, new models go to free room first and then to the replica whose LRU is oldest, busy
replicas are passed over, copies grow with rate, failures and stopped replicas move models elsewhere; what a
replica's /metrics says is read back into its stats."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from modelplane.backends.local.activator import Endpoint
from modelplane.backends.local.gateway import model_in_path
from modelplane.backends.local.mesh import BUSY_SLACK, FAILURE_S, PENDING_S, SCALEUP_RPS, Placement, ReplicaStats
from modelplane.backends.local.mesh_watch import parse_stats
from modelplane.server.metrics import Metrics
from modelplane.server.multimodel import ModelCache
from modelplane.server.registry import ModelRegistry
from modelplane.server.settings import ModelCacheConfig

A, B, C = (Endpoint(f"http://127.0.0.1:{p}", f"127.0.0.1:{p + 1}") for p in (1000, 2000, 3000))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def placement() -> tuple[Placement, Clock]:
    clock = Clock()
    return Placement(clock=clock), clock


def test_a_model_sticks_to_the_replica_it_was_placed_on() -> None:
    p, _ = placement()
    first = p.choose("m", [A, B, C], {})
    assert all(p.choose("m", [A, B, C], {}) == first for _ in range(10))
    assert p.placed == 1


def test_free_room_first_then_the_oldest_lru() -> None:
    p, _ = placement()
    p.observe(A.http, ReplicaStats(capacity=100, used=90))
    p.observe(B.http, ReplicaStats(capacity=100, used=40))
    p.observe(C.http, ReplicaStats(capacity=100, used=100, lru_age_s=500))
    assert p.choose("m1", [A, B, C], {}) == B  # the most free room
    p.observe(B.http, ReplicaStats(capacity=100, used=100, lru_age_s=50))
    p.observe(A.http, ReplicaStats(capacity=100, used=100, lru_age_s=5))
    assert p.choose("m2", [A, B, C], {}) == C  # all full: the one whose least recently used model is oldest


def test_replicas_much_busier_than_the_least_loaded_are_passed_over() -> None:
    p, _ = placement()
    p.observe(A.http, ReplicaStats(capacity=100, used=0))  # the roomiest, but busy
    p.observe(B.http, ReplicaStats(capacity=100, used=50))
    assert p.choose("m", [A, B], {A: BUSY_SLACK + 1}) == B


def test_a_busy_holder_gets_a_second_copy_and_rate_sets_the_wanted_copies() -> None:
    p, _ = placement()
    p.choose("hot", [A, B, C], {})
    holder = next(e for e in (A, B, C) if e.http in p.registry.copies("hot"))
    others = [e for e in (A, B, C) if e != holder]
    second = p.choose("hot", [A, B, C], {holder: BUSY_SLACK + 1})
    assert second in others and len(p.registry.copies("hot")) == 2
    cold, _ = placement()
    for _ in range(int(SCALEUP_RPS * 3 * 10)):  # three copies' worth of requests over 10 s
        cold.choose("hot", [A, B, C], {})
    cold.tick(10)
    assert cold.wanted("hot") == 3
    for _ in range(3):
        cold.choose("hot", [A, B, C], {})
    assert set(cold.registry.copies("hot")) == {A.http, B.http, C.http}


def test_a_failed_load_moves_the_model_and_expires() -> None:
    p, clock = placement()
    first = p.choose("m", [A, B], {})
    p.failed("m", first.http, "corrupt weights")
    second = p.choose("m", [A, B], {})
    assert second != first and p.failures("m") == {first.http: "corrupt weights"}
    p.failed("m", second.http, "corrupt weights")
    assert p.choose("m", [A, B], {}) in (A, B)  # nowhere left: a replica answers with its failure
    clock.now += FAILURE_S + 1
    assert p.failures("m") == {}


def test_a_stopped_replica_hands_its_models_to_the_others() -> None:
    p, _ = placement()
    placed = {name: p.choose(name, [A, B], {}) for name in ("x", "y", "z", "w")}
    gone = placed["x"]
    p.gone(gone.http)
    survivor = B if gone == A else A
    assert all(p.choose(name, [survivor], {}) == survivor for name in placed)
    assert all(gone.http not in p.registry.copies(name) for name in placed)


def test_the_index_of_a_replica_replaces_its_copies_but_keeps_fresh_placements() -> None:
    p, clock = placement()
    p.choose("old", [A], {})
    clock.now += PENDING_S + 1
    p.choose("new", [A], {})
    p.observe(A.http, ReplicaStats(), loaded=["other"])  # "old" was evicted; "new" is still loading
    assert set(p.registry.copies("other")) == {A.http}
    assert A.http not in p.registry.copies("old") and A.http in p.registry.copies("new")


def test_the_model_is_read_from_data_plane_paths() -> None:
    assert model_in_path("/v2/models/m7/infer") == "m7"
    assert model_in_path("/v2/models/m7/versions/2/infer?x=1") == "m7"
    assert model_in_path("/v1/models/m7:predict") == "m7"
    assert model_in_path("/v2/health/ready") is None and model_in_path("/v2/models/") is None


def test_stats_are_parsed_from_a_real_servers_exposition() -> None:
    metrics = Metrics()
    cache = ModelCache(ModelRegistry(ThreadPoolExecutor(1), metrics), ModelCacheConfig(4096), metrics)
    cache.lru.charge("a", 1000, now=0)
    stats = parse_stats(metrics.exposition()[0])
    assert (stats.capacity, stats.used, stats.models) == (4096, 1000, 1) and stats.free == 3096


def test_the_model_is_read_from_grpc_requests_without_decoding_them() -> None:
    from modelplane.backends.local.grpc_gateway import model_field
    from modelplane.grpcproto import inference_pb2 as pb

    infer = pb.ModelInferRequest(id="x", model_version="2", model_name="fraud", raw_input_contents=[b"\x00" * 9])
    infer.inputs.add(name="input-0", datatype="FP32", shape=[1, 2])
    assert model_field(infer.SerializeToString()) == "fraud"
    assert model_field(pb.ModelReadyRequest(name="churn", version="1").SerializeToString()) == "churn"
    assert model_field(pb.ModelInferRequest(id="only").SerializeToString()) is None
    assert model_field(b"\x0a\xff") is None and model_field(b"\xff" * 12) is None
