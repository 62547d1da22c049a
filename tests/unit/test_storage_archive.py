"""Archives unpack safely: escapes, absolute paths, devices and outward links are refused with a clear error."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from modelplane.storage import UnsafeArchive
from modelplane.storage.archive import extract


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_good_tar_and_zip_unpack(tmp_path):
    _tar(tmp_path / "m.tar.gz", [_file("model/model.joblib", b"abc"), _link("model/alias", "model.joblib")])
    extract(tmp_path / "m.tar.gz", tmp_path / "out")
    assert (tmp_path / "out" / "model" / "model.joblib").read_bytes() == b"abc"
    with zipfile.ZipFile(tmp_path / "m.zip", "w") as zf:
        zf.writestr("a/b.txt", "hi")
    extract(tmp_path / "m.zip", tmp_path / "zout")
    assert (tmp_path / "zout" / "a" / "b.txt").read_text() == "hi"


@pytest.mark.parametrize(
    "member",
    [
        _file("../escape.txt"),
        _file("/etc/absolute.txt"),
        _file("a/../../escape.txt"),
        _link("evil", "/etc/passwd"),
        _link("evil", "../../outside"),
        _link("hard", "/etc/passwd", tarfile.LNKTYPE),
    ],
)
def test_malicious_tar_entries_are_rejected(tmp_path, member):
    _tar(tmp_path / "bad.tar.gz", [member])
    with pytest.raises(UnsafeArchive):
        extract(tmp_path / "bad.tar.gz", tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_device_files_are_rejected(tmp_path):
    info = tarfile.TarInfo("dev")
    info.type = tarfile.CHRTYPE
    _tar(tmp_path / "dev.tar", [(info, None)])
    with pytest.raises(UnsafeArchive, match="device"):
        extract(tmp_path / "dev.tar", tmp_path / "out")


def test_zip_slip_is_rejected(tmp_path):
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr("../../escape.txt", "x")
    with pytest.raises(UnsafeArchive):
        extract(tmp_path / "bad.zip", tmp_path / "out")


def test_corrupt_archive_is_a_clear_error(tmp_path):
    from modelplane.storage import StorageError

    (tmp_path / "broken.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(StorageError, match="Failed to unpack archive"):
        extract(tmp_path / "broken.tar.gz", tmp_path / "out")
