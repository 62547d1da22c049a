"""Local backend: the object store — SQLite under MODELPLANE_HOME; objects, immutable revisions, a change log
(the Kubernetes backend's store is the API server)."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelplane.control.revision import Revision, now

log = logging.getLogger("modelplane.store")
SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
  kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
  body TEXT NOT NULL, generation INTEGER NOT NULL, version INTEGER NOT NULL,
  PRIMARY KEY (kind, namespace, name));
CREATE TABLE IF NOT EXISTS revisions (
  namespace TEXT NOT NULL, isvc TEXT NOT NULL, component TEXT NOT NULL, number INTEGER NOT NULL,
  name TEXT NOT NULL, template_hash TEXT NOT NULL, template TEXT NOT NULL, created TEXT NOT NULL,
  PRIMARY KEY (namespace, isvc, component, number));
CREATE TABLE IF NOT EXISTS mesh (
  revision TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (revision, key));
CREATE TABLE IF NOT EXISTS changes (
  version INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
  type TEXT NOT NULL);
"""


def home() -> Path:
    return Path(os.environ.get("MODELPLANE_HOME") or Path.home() / ".modelplane")


class Conflict(Exception):
    pass


class StoreError(Exception):
    """The state database cannot be used; the message names the file and the way out."""


class CorruptObject(StoreError):
    """One stored object cannot be read; the others are unaffected."""


def _decode(row: tuple[str, ...], kind: str, namespace: str, name: str) -> dict[str, Any]:
    try:
        doc = json.loads(row[0])
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise CorruptObject(
            f"the stored {kind} {namespace}/{name} is not valid JSON; delete it "
            f"(modelplane delete {kind.lower()} {name} -n {namespace}) and apply it again"
        )
    return doc


class Store:
    """Thread-safe; every write is one transaction, so a crash never leaves half an update."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or home() / "state.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is not a usable modelplane state database ({exc}). Move it aside to start with an "
                f"empty platform (mv {self.path} {self.path}.broken), then apply your manifests again"
            ) from None
        self._lock = threading.RLock()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _log(self, db: sqlite3.Connection, kind: str, namespace: str, name: str, change: str) -> int:
        return int(
            db.execute(
                "INSERT INTO changes(kind, namespace, name, type) VALUES (?,?,?,?)", (kind, namespace, name, change)
            ).lastrowid
            or 0
        )

    # --- objects ---------------------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, None when absent; CorruptObject when its stored body cannot be read."""
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)
            ).fetchone()
        return _decode(row, kind, namespace, name) if row else None

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every readable object of `kind`; a corrupt one is left out (and logged), never fails the rest."""
        with self._lock:
            if namespace is None:
                rows = self._db.execute(
                    "SELECT body, namespace, name FROM objects WHERE kind=? ORDER BY namespace, name", (kind,)
                )
            else:
                rows = self._db.execute(
                    "SELECT body, namespace, name FROM objects WHERE kind=? AND namespace=? ORDER BY name",
                    (kind, namespace),
                )
            fetched = rows.fetchall()
        out = []
        for row in fetched:
            try:
                out.append(_decode(row, kind, row[1], row[2]))
            except CorruptObject as exc:
                log.error("%s", exc)
        return out

    def put(self, body: dict[str, Any], spec_changed: bool = True) -> dict[str, Any]:
        """Create or replace; bumps metadata.generation when the spec changed, sets creationTimestamp once."""
        kind, meta = body["kind"], body["metadata"]
        namespace = meta.setdefault("namespace", "default")
        with self._tx() as db:
            row = db.execute(
                "SELECT body, generation FROM objects WHERE kind=? AND namespace=? AND name=?",
                (kind, namespace, meta["name"]),
            ).fetchone()
            if row is None:
                generation, change = 1, "ADDED"
                meta["creationTimestamp"] = meta.get("creationTimestamp") or now()
            else:
                try:
                    old = _decode(row, kind, namespace, meta["name"])
                except CorruptObject:
                    old = {"metadata": {}}  # replaced by the new body
                generation = row[1] + (1 if spec_changed and old.get("spec") != body.get("spec") else 0)
                meta["creationTimestamp"] = old["metadata"].get("creationTimestamp") or now()
                meta["uid"] = old["metadata"].get("uid")
                change = "MODIFIED"
            meta["generation"] = generation
            meta.setdefault("uid", os.urandom(8).hex())
            version = self._log(db, kind, namespace, meta["name"], change)
            meta["resourceVersion"] = str(version)
            db.execute(
                "INSERT OR REPLACE INTO objects(kind, namespace, name, body, generation, version) VALUES (?,?,?,?,?,?)",
                (kind, namespace, meta["name"], json.dumps(body), generation, version),
            )
        return body

    def set_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        with self._tx() as db:
            row = db.execute(
                "SELECT body FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)
            ).fetchone()
            if row is None:
                return
            try:
                body = _decode(row, kind, namespace, name)
            except CorruptObject:
                return
            if body.get("status") == status:
                return
            body["status"] = status
            version = self._log(db, kind, namespace, name, "MODIFIED")
            body["metadata"]["resourceVersion"] = str(version)
            db.execute(
                "UPDATE objects SET body=?, version=? WHERE kind=? AND namespace=? AND name=?",
                (json.dumps(body), version, kind, namespace, name),
            )

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        with self._tx() as db:
            gone = db.execute(
                "DELETE FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)
            ).rowcount
            if gone:
                self._log(db, kind, namespace, name, "DELETED")
                if kind == "InferenceService":
                    db.execute("DELETE FROM revisions WHERE namespace=? AND isvc=?", (namespace, name))
        return bool(gone)

    def changes_since(self, version: int) -> list[tuple[int, str, str, str, str]]:
        with self._lock:
            return self._db.execute(
                "SELECT version, kind, namespace, name, type FROM changes WHERE version > ? ORDER BY version",
                (version,),
            ).fetchall()

    # --- revisions -------------------------------------------------------------------------------------------
    def revisions(self, namespace: str, isvc: str, component: str) -> list[Revision]:
        with self._lock:
            rows = self._db.execute(
                "SELECT namespace, isvc, component, number, name, template_hash, template, created FROM revisions "
                "WHERE namespace=? AND isvc=? AND component=? ORDER BY number",
                (namespace, isvc, component),
            ).fetchall()
        return [Revision(*r[:6], json.loads(r[6]), r[7]) for r in rows]

    def all_revisions(self, namespace: str | None = None) -> list[Revision]:
        """Every revision (of one namespace, or all), by namespace, isvc, component and number."""
        query = "SELECT namespace, isvc, component, number, name, template_hash, template, created FROM revisions"
        with self._lock:
            if namespace is None:
                rows = self._db.execute(query + " ORDER BY namespace, isvc, component, number").fetchall()
            else:
                rows = self._db.execute(
                    query + " WHERE namespace=? ORDER BY isvc, component, number", (namespace,)
                ).fetchall()
        return [Revision(*r[:6], json.loads(r[6]), r[7]) for r in rows]

    def add_revision(
        self, namespace: str, isvc: str, component: str, template_hash: str, template: dict[str, Any]
    ) -> Revision:
        with self._tx() as db:
            last = db.execute(
                "SELECT MAX(number) FROM revisions WHERE namespace=? AND isvc=? AND component=?",
                (namespace, isvc, component),
            ).fetchone()[0]
            number = (last or 0) + 1
            name = f"{isvc}-{component}-{number:05d}"
            created = now()
            db.execute(
                "INSERT INTO revisions VALUES (?,?,?,?,?,?,?,?)",
                (namespace, isvc, component, number, name, template_hash, json.dumps(template), created),
            )
        return Revision(namespace, isvc, component, number, name, template_hash, template, created)

    # --- placement of multi-model revisions (mesh_store.py) ---------------------------------------------------
    def mesh_rows(self, revision: str) -> list[tuple[str, str]]:
        with self._lock:
            return self._db.execute("SELECT key, value FROM mesh WHERE revision=?", (revision,)).fetchall()

    def mesh_write(self, revision: str, ops: list[tuple[str, str, str | None]]) -> None:
        """Apply a revision's placement changes in order, in one transaction."""
        with self._tx() as db:
            for op, key, value in ops:
                if op == "put":
                    db.execute("INSERT OR REPLACE INTO mesh VALUES (?,?,?)", (revision, key, value))
                else:
                    db.execute("DELETE FROM mesh WHERE revision=? AND key=?", (revision, key))

    def mesh_forget(self, revision: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM mesh WHERE revision=?", (revision,))

    def mesh_prune(self) -> int:
        """Remove the placement of revisions the store no longer has (their InferenceService was deleted while the
        platform was down); how many revisions' placement went."""
        keep = {r.key for r in self.all_revisions()}
        with self._tx() as db:
            stale = [r for (r,) in db.execute("SELECT DISTINCT revision FROM mesh").fetchall() if r not in keep]
            for revision in stale:
                db.execute("DELETE FROM mesh WHERE revision=?", (revision,))
        return len(stale)

    def close(self) -> None:
        with self._lock:
            self._db.close()
