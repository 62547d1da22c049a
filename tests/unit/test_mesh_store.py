"""The placement registry kept in the platform's SQLite store: what a registry learned is there after a restart
(a new registry on the same database file), deletions included; a retired revision's placement is removed; one
revision's placement never shows in another's."""

from __future__ import annotations

import asyncio
from pathlib import Path

from modelplane.backends.local.mesh import Failure, ReplicaStats
from modelplane.backends.local.mesh_store import StoreRegistries
from modelplane.backends.local.store import Store

A, B = "http://127.0.0.1:40001", "http://127.0.0.1:40002"


def test_placement_survives_a_restart_and_goes_with_its_revision(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    registries = StoreRegistries(store)
    one, other = registries("default.mm-predictor-00001.abc"), registries("default.x-predictor-00001.def")
    one.add_copy("m1", A, 100.0)
    one.add_copy("m1", B, 101.0)
    one.add_copy("m2", A, 102.0)
    one.drop_copy("m1", B)
    one.fail("m3", B, Failure("UnpicklingError: bad", 9e9))
    one.publish(A, ReplicaStats(capacity=1000, used=400, lru_age_s=12.5, models=2))
    other.add_copy("z", A, 1.0)
    asyncio.run(registries.save())
    store.close()

    store = Store(tmp_path / "state.db")  # the control plane restarted
    again = StoreRegistries(store)
    restored = again("default.mm-predictor-00001.abc")
    assert dict(restored.copies("m1")) == {A: 100.0} and dict(restored.copies("m2")) == {A: 102.0}
    assert sorted(restored.models_on(A)) == ["m1", "m2"] and restored.models_on(B) == []
    assert restored.failures("m3")[B] == Failure("UnpicklingError: bad", 9e9)
    assert restored.stats(A) == ReplicaStats(capacity=1000, used=400, lru_age_s=12.5, models=2)
    assert not restored.copies("z")  # another revision's

    again.forget("default.mm-predictor-00001.abc")
    assert not again("default.mm-predictor-00001.abc").copies("m1")  # retired: nothing left of it
    assert dict(again("default.x-predictor-00001.def").copies("z")) == {A: 1.0}
    store.close()


def test_placement_of_revisions_the_store_no_longer_has_is_pruned(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    kept = store.add_revision("default", "mm", "predictor", "abcdef0123456789", {})
    registries = StoreRegistries(store)
    registries(kept.key).add_copy("m1", A, 1.0)
    registries("default.gone-predictor-00001.deadbeef").add_copy("m2", A, 1.0)  # deleted while the platform was down
    asyncio.run(registries.save())
    assert store.mesh_prune() == 1
    again = StoreRegistries(store)
    assert dict(again(kept.key).copies("m1")) == {A: 1.0}
    assert not again("default.gone-predictor-00001.deadbeef").copies("m2")
    store.close()
