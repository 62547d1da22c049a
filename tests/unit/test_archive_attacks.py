"""Archive attacks: no entry is ever written outside the target (the realpath-overflow technique of CVE-2025-4517
included, on whatever Python runs the tests), and archives that unpack beyond the limits are refused."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import pytest

from modelplane.storage import StorageError, UnsafeArchive
from modelplane.storage.archive import Limits, extract
from modelplane.storage.cache import Cache


def _add(tf: tarfile.TarFile, name: str, *, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b"") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o777 if kind in (tarfile.DIRTYPE, tarfile.SYMTYPE) else 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _realpath_overflow_tar(path, dest, *, hardlink: bool) -> None:
    """CPython's own reproducer for CVE-2025-4517: a chain of symlinks whose expansion overflows PATH_MAX, so that
    os.path.realpath() stops resolving and a link pointing above the destination passes the check."""
    steps = "abcdefghijklmnop"
    max_path = os.pathconf(dest.parent, "PC_PATH_MAX")
    component = "d" * ((max_path - len(str(dest)) - 1) // (len(steps) + 1))
    with tarfile.open(path, "w") as tf:
        parent = ""
        for step in steps:
            _add(tf, os.path.join(parent, component), kind=tarfile.DIRTYPE)
            _add(tf, os.path.join(parent, step), kind=tarfile.SYMTYPE, link=component)
            parent = os.path.join(parent, component)
        linkpath = os.path.join(*steps, "l" * 254)
        _add(tf, linkpath, kind=tarfile.SYMTYPE, link=os.path.join(*[".."] * len(steps)))
        _add(tf, "escape", kind=tarfile.SYMTYPE, link=os.path.join(linkpath, ".."))
        if hardlink:
            _add(tf, "flaglink", kind=tarfile.LNKTYPE, link=os.path.join("escape", "flag"))
            _add(tf, "flaglink", data=b"overwrite")
        _add(tf, "escape/newfile", data=b"new")


@pytest.mark.parametrize("hardlink", [True, False])
def test_realpath_overflow_cannot_write_outside(tmp_path, hardlink):
    outer = tmp_path / "outer"
    dest = outer / "dest"
    dest.mkdir(parents=True)
    (outer / "flag").write_text("original")
    _realpath_overflow_tar(tmp_path / "attack.tar", dest, hardlink=hardlink)
    with pytest.raises(StorageError):
        extract(tmp_path / "attack.tar", dest)
    assert (outer / "flag").read_text() == "original"
    assert sorted(p.name for p in outer.iterdir()) == ["dest", "flag"]  # no newfile, nothing else beside dest
    assert not (dest / "escape").is_symlink()  # a link that could not be proven inside is not left behind


def test_links_through_links_that_climb_out_are_refused(tmp_path):
    """Each link looks harmless on its own; followed one after the other they leave the target."""
    with tarfile.open(tmp_path / "chain.tar", "w") as tf:
        _add(tf, "a/b/c", kind=tarfile.DIRTYPE)
        _add(tf, "a/b/c/up", kind=tarfile.SYMTYPE, link="../../..")  # -> the target itself
        _add(tf, "out", kind=tarfile.SYMTYPE, link="a/b/c/up/..")  # -> the target's parent
    with pytest.raises(UnsafeArchive, match="out"):
        extract(tmp_path / "chain.tar", tmp_path / "dest")
    assert not os.path.lexists(tmp_path / "dest" / "out")


def test_existing_symlink_in_the_destination_is_never_followed(tmp_path):
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "sub").symlink_to(outside)
    with tarfile.open(tmp_path / "m.tar", "w") as tf:
        _add(tf, "sub/model.bin", data=b"x")
    with pytest.raises(UnsafeArchive, match="not a plain directory"):
        extract(tmp_path / "m.tar", dest)
    assert list(outside.iterdir()) == []


def test_links_that_stay_inside_are_kept(tmp_path):
    with tarfile.open(tmp_path / "ok.tar", "w") as tf:
        _add(tf, "blobs/abc", data=b"weights")
        _add(tf, "snap/model.bin", kind=tarfile.SYMTYPE, link="../blobs/abc")
        _add(tf, "hard", kind=tarfile.LNKTYPE, link="blobs/abc")
    extract(tmp_path / "ok.tar", tmp_path / "dest")
    assert (tmp_path / "dest" / "snap" / "model.bin").read_bytes() == b"weights"
    assert (tmp_path / "dest" / "hard").read_bytes() == b"weights"


def _zeros_tgz(path, size: int, files: int = 1) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for i in range(files):
            _add(tf, f"f{i}", data=bytes(size))


def test_a_decompression_bomb_is_refused_by_ratio(tmp_path):
    _zeros_tgz(tmp_path / "bomb.tgz", 8 * 2**20)  # ~8 KiB on disk
    assert os.path.getsize(tmp_path / "bomb.tgz") < 64 * 1024
    with pytest.raises(UnsafeArchive, match="MODELPLANE_ARCHIVE_MAX_RATIO"):
        extract(tmp_path / "bomb.tgz", tmp_path / "dest", Limits(max_ratio=100, ratio_floor=2**20))
    assert sum(p.stat().st_size for p in (tmp_path / "dest").rglob("*") if p.is_file()) <= 2**20


def test_the_default_limits_refuse_the_reported_bomb(tmp_path):
    """The report: a 257 KB archive unpacked to 256 MiB. With the defaults it stops at the 64 MiB floor."""
    raw = gzip.compress(bytes(2**20), 9)
    assert len(raw) < 2048
    with tarfile.open(tmp_path / "bomb.tgz", "w:gz") as tf:
        info = tarfile.TarInfo("big")
        info.size = 256 * 2**20
        tf.addfile(info, io.BufferedReader(_Zeros(info.size)))  # type: ignore[arg-type]
    with pytest.raises(UnsafeArchive):
        extract(tmp_path / "bomb.tgz", tmp_path / "dest")


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buf), self.left)
        buf[:n] = bytes(n)
        self.left -= n
        return n


def test_entry_count_and_total_size_limits(tmp_path, monkeypatch):
    _zeros_tgz(tmp_path / "many.tgz", 1, files=11)
    monkeypatch.setenv("MODELPLANE_ARCHIVE_MAX_ENTRIES", "10")
    with pytest.raises(UnsafeArchive, match="more than 10 entries"):
        extract(tmp_path / "many.tgz", tmp_path / "a")
    monkeypatch.delenv("MODELPLANE_ARCHIVE_MAX_ENTRIES")
    monkeypatch.setenv("MODELPLANE_ARCHIVE_MAX_BYTES", "5")
    with pytest.raises(UnsafeArchive, match="MODELPLANE_ARCHIVE_MAX_BYTES"):
        extract(tmp_path / "many.tgz", tmp_path / "b")


def test_cache_leaves_no_lock_files(tmp_path):
    cache = Cache(tmp_path / "cache")
    for version in ("1", "2"):
        cache.get_or_fetch("s3://b/m", version, lambda d: (d / "model.bin").write_bytes(b"x"))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if p.name.endswith(".lock")) == []
    assert len(cache.entries()) == 2
    cache.prune()
    assert list((tmp_path / "cache").iterdir()) == []
