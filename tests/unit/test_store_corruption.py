"""Corrupt state names its file and the way out, and one unreadable object never takes the others down."""

from __future__ import annotations

import json
import sqlite3

import pytest
from support.asgi import call

from modelplane.backends.local.apiserver import ApiServer
from modelplane.backends.local.store import CorruptObject, Store, StoreError

BASE = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"


def _isvc(name: str) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "/m"}}},
    }


def test_a_damaged_database_names_the_file_and_the_way_out(tmp_path):
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError) as info:
        Store(path)
    assert str(path) in str(info.value) and "mv " in str(info.value)


def test_one_row_of_bad_json_is_isolated(tmp_path):
    store = Store(tmp_path / "state.db")
    for name in ("good", "bad"):
        store.put(_isvc(name))
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute("UPDATE objects SET body = '{not json' WHERE name = 'bad'")
    assert [d["metadata"]["name"] for d in store.list("InferenceService")] == ["good"]
    with pytest.raises(CorruptObject, match="modelplane delete inferenceservice bad"):
        store.get("InferenceService", "default", "bad")
    api = ApiServer(store)
    status, _, body = call(api, "GET", BASE)
    assert status == 200 and [i["metadata"]["name"] for i in json.loads(body)["items"]] == ["good"]
    status, _, body = call(api, "GET", BASE + "/bad")
    assert status == 500 and "not valid JSON" in json.loads(body)["message"]
    assert call(api, "DELETE", BASE + "/bad")[0] == 200  # the way out works
    assert call(api, "GET", BASE + "/good")[0] == 200
    store.close()
