"""Storage: safe unpacking of .tar, .tar.gz/.tgz and .zip model archives."""

from __future__ import annotations

import stat
import tarfile
import zipfile
from pathlib import Path

from modelplane.storage.base import StorageError, UnsafeArchive

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _inside(root: Path, target: Path) -> bool:
    return target == root or root in target.parents


def _check_name(root: Path, name: str) -> Path:
    if name.startswith("/") or Path(name).is_absolute():
        raise UnsafeArchive(f"archive entry {name!r} is an absolute path")
    target = (root / name).resolve()
    if not _inside(root, target):
        raise UnsafeArchive(f"archive entry {name!r} would be written outside the target directory")
    return target


def extract(archive: Path, dest: Path) -> None:
    """Unpack `archive` into `dest`, refusing absolute paths, '..' escapes, devices, FIFOs and outward links."""
    root = dest.resolve()
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_name(root, info.filename)
                    mode = info.external_attr >> 16
                    if stat.S_ISLNK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                        raise UnsafeArchive(f"archive entry {info.filename!r} is a link or device file")
                zf.extractall(root)
            return
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                target = _check_name(root, member.name)
                if member.isdev() or member.isfifo():
                    raise UnsafeArchive(f"archive entry {member.name!r} is a device file or FIFO")
                if member.issym() or member.islnk():
                    link = member.linkname
                    base = target.parent if member.issym() else root
                    if Path(link).is_absolute() or not _inside(root, (base / link).resolve()):
                        raise UnsafeArchive(f"archive link {member.name!r} -> {link!r} points outside the target")
            tf.extractall(root, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise StorageError(f"Failed to unpack archive file {archive.name}: {exc}") from exc
