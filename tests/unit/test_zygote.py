"""The platform never waits for its zygote on the event loop: while the zygote is not up (still importing, or dead
and restarting), a replica starts as a process of its own, with the title the zygote would have given it."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import Any, cast

import pytest
from support.kube import wait_for

from modelplane import proctitle
from modelplane.backends.local.replicas import ReplicaSet, ReplicaSpec
from modelplane.backends.local.revision import Revisions, RevisionState
from modelplane.backends.local.zygote import Zygote


class _Dead:
    """A zygote process that has exited."""

    def poll(self) -> int:
        return 1


def test_spawn_does_not_wait_for_a_zygote_that_is_still_starting(tmp_path: Path) -> None:
    zygote = Zygote(tmp_path)
    importing = threading.Event()
    finish = threading.Event()

    def slow_start() -> None:  # the zygote's imports, taking their time
        importing.set()
        finish.wait(30)

    zygote._start = slow_start  # type: ignore[method-assign]
    zygote.start()
    importing.wait(5)
    try:
        # the old spawn took the start's lock here and sat out the imports (the API and gateway stalled meanwhile)
        assert zygote.spawn(["serve"], {}, str(tmp_path / "log"), "t") is None
    finally:
        finish.set()


def test_spawn_restarts_a_dead_zygote_in_the_background_and_answers_none(tmp_path: Path) -> None:
    zygote = Zygote(tmp_path)
    zygote.proc = cast(Any, _Dead())
    zygote._up = True
    starts: list[str] = []
    zygote.start = lambda: starts.append("start")  # type: ignore[method-assign]
    assert zygote.spawn(["serve"], {}, str(tmp_path / "log"), "t") is None
    assert starts == ["start"]


class _NotUp:
    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def spawn(self, argv: list[str], env: dict[str, str], log: str, title: str = "") -> int | None:
        self.asked.append(argv)
        return None


def test_a_replica_starts_as_its_own_process_while_the_zygote_is_not_up(tmp_path: Path) -> None:
    out = tmp_path / "title"
    # a forkable argv is `python -m modelplane serve ...`; this one writes the title it was given, then waits
    script = (
        "import os, sys, time; open(sys.argv[1], 'w').write(os.environ['MODELPLANE_PROCESS_TITLE']); time.sleep(60)"
    )
    spec = ReplicaSpec(argv=[sys.executable, "-c", script, str(out)], forkable=True)
    zygote = _NotUp()
    replicas = ReplicaSet(tmp_path, Revisions(), cast(Zygote, zygote))
    state = RevisionState(
        key="default.iris-predictor-00001.abc",
        owner=("default", "iris", "predictor"),
        isvc=cast(Any, None),
        revision=cast(Any, None),
        spec=spec,
    )

    async def run() -> None:
        replicas.scale(state, 1)
        try:
            assert zygote.asked == [[str(out)]]  # the zygote was asked first (it runs argv[3:])
            wait_for(lambda: out.exists() and out.read_text(), "the replica to write its title", timeout=30)
            assert out.read_text() == "modelplane replica default/iris-predictor-00001/0"
            assert state.replicas[0].pid in replicas._children  # a child of the platform: reaped and polled here
        finally:
            replicas.scale(state, 0)
            await asyncio.gather(*list(replicas._stopping))

    asyncio.run(run())
    assert not replicas._children


def test_python_m_modelplane_takes_its_title_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    titles: list[str] = []
    monkeypatch.setattr(proctitle, "set_title", titles.append)
    monkeypatch.setenv(proctitle.TITLE_ENV, "modelplane replica ns/r/0")
    proctitle.title_from_env()
    assert titles == ["modelplane replica ns/r/0"]
    assert proctitle.TITLE_ENV not in os.environ  # not passed on to what the replica starts
