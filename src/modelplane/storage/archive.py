"""Storage: safe unpacking of .tar, .tar.gz/.tgz and .zip model archives.

No entry is ever written outside the target, whatever the Python version: every entry is created relative to a
directory file descriptor, walking its parents one component at a time with O_NOFOLLOW (so no symlink, in the
archive or already on disk, is ever followed while writing), and symlinks are created last, each one checked by
resolving its chain component by component with readlink (never os.path.realpath, whose silent give-up on long
paths is what CVE-2025-4517 exploits); a link whose chain cannot be proven to stay inside is refused. Unpacked
bytes, the ratio to the archive's size and the entry count are bounded (settings in the environment)."""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from modelplane.storage.base import StorageError, UnsafeArchive

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_MAX_HOPS = 40  # symlinks followed while checking one link (the kernel's own limit)
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    """How much one archive may unpack to. The ratio applies above `ratio_floor` bytes (tiny files of zeros
    compress well and harm nobody)."""

    max_bytes: int = 256 * 2**30
    max_ratio: float = 200.0
    ratio_floor: int = 64 * 2**20
    max_entries: int = 100_000

    @classmethod
    def from_env(cls) -> Limits:
        env, default = os.environ, cls()
        return cls(
            max_bytes=int(env.get("MODELPLANE_ARCHIVE_MAX_BYTES", default.max_bytes)),
            max_ratio=float(env.get("MODELPLANE_ARCHIVE_MAX_RATIO", default.max_ratio)),
            max_entries=int(env.get("MODELPLANE_ARCHIVE_MAX_ENTRIES", default.max_entries)),
        )


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _parts(name: str) -> list[str]:
    """The path components of an entry name; refuses absolute paths, '..', NUL and drive letters."""
    if "\0" in name:
        raise UnsafeArchive(f"archive entry {name!r} has a NUL byte in its name")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"archive entry {name!r} is an absolute path")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"archive entry {name!r} would be written outside the target directory")
    return parts


class _Target:
    """The destination directory, written only through directory file descriptors."""

    def __init__(self, root: Path, limits: Limits, archive_size: int) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.fd = os.open(root, _DIR_FLAGS)
        self.limits = limits
        self.allowed = min(limits.max_bytes, max(limits.ratio_floor, int(limits.max_ratio * archive_size)))
        self.written = 0
        self.entries = 0

    def close(self) -> None:
        os.close(self.fd)

    def count(self, name: str) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise UnsafeArchive(
                f"the archive has more than {self.limits.max_entries} entries (MODELPLANE_ARCHIVE_MAX_ENTRIES)"
            )

    def reserve(self, size: int, name: str) -> None:
        if self.written + size > self.allowed:
            raise UnsafeArchive(
                f"unpacking {name!r} would exceed {self.allowed} bytes: the limit is the smaller of "
                f"MODELPLANE_ARCHIVE_MAX_BYTES ({self.limits.max_bytes}) and MODELPLANE_ARCHIVE_MAX_RATIO "
                f"({self.limits.max_ratio:g}) times the archive's size"
            )

    @contextlib.contextmanager
    def _dir(self, parts: list[str]) -> Iterator[int]:
        """An fd for the directory `parts` under the root, creating missing ones; never follows a symlink."""
        fd = os.dup(self.fd)
        try:
            for part in parts:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:  # ELOOP (a symlink) or ENOTDIR (a file)
                    raise UnsafeArchive(f"archive path component {part!r} is not a plain directory") from exc
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def directory(self, name: str) -> None:
        with self._dir(_parts(name)):
            pass

    def file(self, name: str, source: IO[bytes]) -> None:
        parts = _parts(name)
        if not parts:
            raise UnsafeArchive(f"archive entry {name!r} has no file name")
        with self._dir(parts[:-1]) as parent:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(parts[-1], dir_fd=parent)  # a later entry replaces an earlier one (never its target)
            try:
                out = os.open(parts[-1], _FILE_FLAGS, 0o644, dir_fd=parent)
            except OSError as exc:
                raise UnsafeArchive(f"cannot create archive entry {name!r}: {exc.strerror}") from exc
            with os.fdopen(out, "wb") as fh:
                while chunk := source.read(_CHUNK):
                    self.reserve(len(chunk), name)
                    self.written += len(chunk)
                    fh.write(chunk)

    def symlink(self, name: str, target: str) -> None:
        parts = _parts(name)
        if not parts or not target or "\0" in target or target.startswith("/"):
            raise UnsafeArchive(f"archive link {name!r} -> {target!r} points outside the target")
        with self._dir(parts[:-1]) as parent:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(parts[-1], dir_fd=parent)
            os.symlink(target, parts[-1], dir_fd=parent)

    def proven_inside(self, name: str) -> bool:
        """Resolve the link `name` one component at a time (readlink, never realpath); False on any doubt."""
        parts = _parts(name)
        current: list[str] = []
        pending = list(reversed(parts))
        hops = 0
        missing = False  # below a missing component nothing can be a link: the rest is resolved lexically
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if not current:
                    return False
                current.pop()
                continue
            if not missing:
                path = os.path.join(self.root, *current, part)
                try:
                    mode = os.lstat(path).st_mode
                except FileNotFoundError:
                    missing = True
                except OSError:  # ENAMETOOLONG, ELOOP, EACCES: cannot be proven
                    return False
                else:
                    if stat.S_ISLNK(mode):
                        hops += 1
                        if hops > _MAX_HOPS:
                            return False
                        try:
                            link = os.readlink(path)
                        except OSError:
                            return False
                        if link.startswith("/") or "\0" in link:
                            return False
                        pending.extend(reversed(link.split("/")))
                        continue
            current.append(part)
        return True

    def unlink(self, name: str) -> None:
        parts = _parts(name)
        with contextlib.suppress(OSError), self._dir(parts[:-1]) as parent:
            os.unlink(parts[-1], dir_fd=parent)


def extract(archive: Path, dest: Path, limits: Limits | None = None) -> None:
    """Unpack `archive` into `dest`; refuses escapes, absolute paths, devices, FIFOs, links that cannot be proven
    to stay inside, and archives that unpack beyond the limits (UnsafeArchive)."""
    target = _Target(dest, limits or Limits.from_env(), archive.stat().st_size)
    try:
        if archive.name.lower().endswith(".zip"):
            _unzip(archive, target)
        else:
            _untar(archive, target)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise StorageError(f"Failed to unpack archive file {archive.name}: {exc}") from exc
    finally:
        target.close()


def _untar(archive: Path, target: _Target) -> None:
    links: list[tuple[str, str]] = []
    with tarfile.open(archive) as tf:
        for member in tf:  # streamed: the index of a huge archive is never held whole
            target.count(member.name)
            if member.isdev() or member.isfifo():
                raise UnsafeArchive(f"archive entry {member.name!r} is a device file or FIFO")
            if member.isdir():
                target.directory(member.name)
            elif member.issym():
                _parts(member.name)
                links.append((member.name, member.linkname))
            elif member.isfile() or member.islnk():
                if member.islnk():  # a hard link: a copy of the archive member it names, checked like any entry
                    _parts(member.linkname)
                target.reserve(member.size, member.name)
                source = tf.extractfile(member)
                if source is None:
                    raise UnsafeArchive(f"archive entry {member.name!r} has no data")
                with source:
                    target.file(member.name, source)
            else:
                raise UnsafeArchive(f"archive entry {member.name!r} has an unsupported type")
    _links(target, links)


def _links(target: _Target, links: list[tuple[str, str]]) -> None:
    for name, link in links:
        target.symlink(name, link)
    doubtful = [(name, link) for name, link in links if not target.proven_inside(name)]
    if doubtful:
        for name, _ in links:
            target.unlink(name)
        name, link = doubtful[0]
        raise UnsafeArchive(f"archive link {name!r} -> {link!r} points outside the target (or cannot be resolved)")


def _unzip(archive: Path, target: _Target) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target.count(info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                raise UnsafeArchive(f"archive entry {info.filename!r} is a link or device file")
            if info.is_dir():
                target.directory(info.filename)
                continue
            target.reserve(info.file_size, info.filename)
            with zf.open(info) as source:
                target.file(info.filename, source)
