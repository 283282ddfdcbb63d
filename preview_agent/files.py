"""Project files: path rules, atomic writes, per-path versions and the manifest.

Nothing here is async and nothing talks to the network, so every rule is unit-testable. Writes walk
the project tree with directory file descriptors and ``O_NOFOLLOW``: a symlink anywhere on the way is
refused outright (not resolved and compared), so swapping a directory for a link between the check
and the write cannot redirect a write outside ``PROJECT_DIR``.

When the agent runs as root and the dev server as an unprivileged uid (``sandbox.py``), everything the
agent creates here is handed to that uid (``owner``): files with ``fchown`` before the rename, new
directories right after they are opened, so ``npm install`` and the dev server can still change them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

MAX_PATH_CHARS = 1024
MAX_SEGMENT_BYTES = 255
# Folders of tools rather than of the editor: never scanned, and never emptied by a snapshot in
# ``replace`` mode (at any depth, so a monorepo's ``packages/web/node_modules`` is kept too).
TOOL_DIRS = frozenset({"node_modules", ".git", ".next", ".expo", ".cache", ".turbo", ".vite"})
SCAN_LIMIT = 20_000
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_INVISIBLE = frozenset("\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Outcome = Literal["written", "unchanged", "stale", "deleted"]
Owner = tuple[int, int] | None  # (uid, gid) to give created files and directories; None: keep the agent's


class FileRefused(Exception):
    """A request the agent will not carry out; ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class FileState:
    version: int
    sha256: str | None  # None: deleted at this version (a tombstone keeps late updates out)


def check_path(path: object) -> tuple[str, ...]:
    """Return the segments of a safe project-relative path, or raise ``FileRefused``."""
    if not isinstance(path, str) or not path:
        raise FileRefused("invalid_path", "path must be a non-empty string")
    if len(path) > MAX_PATH_CHARS:
        raise FileRefused("path_too_long", f"path is longer than {MAX_PATH_CHARS} characters")
    if "\x00" in path:
        raise FileRefused("nul_byte", "path contains a NUL byte")
    if any(unicodedata.category(ch) == "Cc" or ch in _INVISIBLE for ch in path):
        raise FileRefused("control_character", "path contains control or invisible characters")
    # The compatibility form catches look-alikes (fullwidth dots, slash, backslash) other tools fold.
    for form in (path, unicodedata.normalize("NFKC", path)):
        _check_form(form)
    segments = tuple(path.split("/"))
    if any(segment in ("", ".") for segment in segments):
        raise FileRefused("not_canonical", "path has empty or '.' segments")
    if any(len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES for segment in segments):
        raise FileRefused("path_too_long", "a path segment is longer than 255 bytes")
    return segments


def _check_form(form: str) -> None:
    if "\\" in form:
        raise FileRefused("backslash", "path contains a backslash")
    if form.startswith("/") or _WINDOWS_DRIVE.match(form):
        raise FileRefused("absolute_path", "path must be relative to the project")
    if ".." in form.split("/"):
        raise FileRefused("parent_segment", "path contains a '..' segment")


def decode_content(content: object, encoding: object, max_bytes: int) -> bytes:
    """Decode a ``file:update`` body, refusing oversize content before decoding it."""
    if not isinstance(content, str):
        raise FileRefused("invalid_content", "content must be a string")
    if encoding in (None, "utf-8", "utf8"):
        if len(content) > max_bytes:  # each character is at least one byte
            raise _too_large(max_bytes)
        data = content.encode("utf-8", "surrogateescape")
    elif encoding == "base64":
        if len(content) > (max_bytes // 3 + 1) * 4 + 4:
            raise _too_large(max_bytes)
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise FileRefused("invalid_content", "content is not valid base64") from None
    else:
        raise FileRefused("invalid_encoding", "encoding must be 'utf-8' or 'base64'")
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    return data


def _too_large(max_bytes: int) -> FileRefused:
    return FileRefused("too_large", f"file is larger than {max_bytes} bytes")


def check_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise FileRefused("invalid_version", "version must be a non-negative integer")
    return version


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileStore:
    """The project folder plus what the agent knows of each path's version and content hash."""

    def __init__(self, root: Path, *, max_bytes: int, owner: Owner = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.max_bytes = max_bytes
        self.owner = owner
        self.entries: dict[str, FileState] = {}

    @property
    def file_count(self) -> int:
        return sum(1 for state in self.entries.values() if state.sha256 is not None)

    def manifest(self) -> dict[str, dict[str, object]]:
        return {
            path: {"sha256": state.sha256, "version": state.version} for path, state in sorted(self.entries.items())
        }

    def write(self, path: str, data: bytes, version: int) -> tuple[Outcome, FileState]:
        segments = check_path(path)
        if len(data) > self.max_bytes:
            raise _too_large(self.max_bytes)
        digest = sha256_hex(data)
        current = self.entries.get(path)
        if current is not None and _is_stale(current, version):
            return ("unchanged" if current.sha256 == digest else "stale"), current
        state = FileState(version, digest)
        if current is not None and current.sha256 == digest:
            self.entries[path] = state  # the same bytes at a newer version: the disk and the dev server are left alone
            return "unchanged", state
        write_inside(self.root, segments, data, owner=self.owner)
        self.entries[path] = state
        return "written", state

    def delete(self, path: str, version: int) -> tuple[Outcome, FileState]:
        segments = check_path(path)
        current = self.entries.get(path)
        if current is not None and _is_stale(current, version):
            return ("deleted" if current.sha256 is None else "stale"), current
        return "deleted", self._tombstone(path, segments, version)

    def unlisted(self, named: Collection[str]) -> list[str]:
        """The files the agent tracks that ``named`` leaves out, outside tool folders: what a snapshot in
        ``replace`` mode deletes. Files nobody told the agent about (written later by npm or the dev
        server, or skipped by the boot scan) are not tracked, so they are never in this list."""
        return [
            path
            for path, state in sorted(self.entries.items())
            if state.sha256 is not None and path not in named and not in_tool_dir(path)
        ]

    def remove(self, path: str) -> FileState:
        """Delete a tracked file at the version it has (a snapshot in ``replace`` mode names no version for
        what it leaves out); the tombstone keeps any update at that version or below out."""
        current = self.entries[path]
        return self._tombstone(path, check_path(path), current.version)

    def _tombstone(self, path: str, segments: tuple[str, ...], version: int) -> FileState:
        try:
            with _parent_dir(self.root, segments, create=False) as dir_fd:
                _unlink(dir_fd, segments[-1])
        except FileNotFoundError:
            pass  # already gone: the tombstone below still records the newer version
        state = FileState(version, None)
        self.entries[path] = state
        return state

    def scan(self, limit: int = SCAN_LIMIT) -> int:
        """Record what is already on disk (version 0: origin unknown, any edit may replace it)."""
        count = 0
        for relative, full in _walk(self.root):
            if count >= limit:
                break
            with contextlib.suppress(OSError, FileRefused):
                if os.lstat(full).st_size <= self.max_bytes:
                    self.entries.setdefault(relative, FileState(0, _hash_file(self.root, relative)))
                    count += 1
        return count


def in_tool_dir(path: str) -> bool:
    return any(segment in TOOL_DIRS for segment in path.split("/")[:-1])


def write_inside(root: Path, segments: tuple[str, ...], data: bytes, *, owner: Owner = None) -> None:
    """Atomically write ``root/segments`` without following any symlink on the way."""
    with _parent_dir(root, segments, create=True, owner=owner) as dir_fd:
        _atomic_write(dir_fd, segments[-1], data, owner)


def open_inside(root: Path, segments: tuple[str, ...]) -> int:
    """A read-only descriptor of the regular file ``root/segments``, reached without following symlinks.

    The agent may run as root while the user's code can rename things under ``root``: resolving a path
    and then opening it could be redirected in between (to ``/proc/1/environ``, say); this cannot.
    """
    with _parent_dir(root, segments, create=False) as dir_fd:
        fd = os.open(segments[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileRefused("not_a_file", "path is not a regular file")
    return fd


def _is_stale(current: FileState, version: int) -> bool:
    """Versions only move forward; version 0 (found on disk at boot) yields to any edit."""
    return current.version > 0 and version <= current.version


@contextlib.contextmanager
def _parent_dir(root: Path, segments: tuple[str, ...], *, create: bool, owner: Owner = None) -> Iterator[int]:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in segments[:-1]:
            next_fd = _open_child_dir(fd, name, create=create, owner=owner)
            os.close(fd)
            fd = next_fd
        yield fd
    finally:
        os.close(fd)


def _open_child_dir(dir_fd: int, name: str, *, create: bool, owner: Owner = None) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=dir_fd)
        child = _open_child_dir(dir_fd, name, create=False)
        if owner is not None:
            os.fchown(child, *owner)  # the descriptor, not the name: a swapped name cannot redirect it
        return child
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _refuse_existing(dir_fd, name) from None
        raise


def _refuse_existing(dir_fd: int, name: str) -> FileRefused:
    if stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode):
        return FileRefused("symlink", "path goes through a symbolic link")
    return FileRefused("not_a_directory", "a parent of the path is a file")


def _check_target(dir_fd: int, name: str) -> None:
    try:
        mode = os.lstat(name, dir_fd=dir_fd).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise FileRefused("symlink", "path is a symbolic link")
    if stat.S_ISDIR(mode):
        raise FileRefused("is_directory", "path is a directory")


def _atomic_write(dir_fd: int, name: str, data: bytes, owner: Owner = None) -> None:
    _check_target(dir_fd, name)
    temp = f".{name[:32]}.{secrets.token_hex(6)}.velocity-tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temp, flags, 0o644, dir_fd=dir_fd)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise


def _unlink(dir_fd: int, name: str) -> None:
    _check_target(dir_fd, name)
    os.unlink(name, dir_fd=dir_fd)


def _walk(root: Path) -> Iterator[tuple[str, str]]:
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(name for name in dirnames if name not in TOOL_DIRS)
        for name in sorted(filenames):
            full = os.path.join(directory, name)
            if name.endswith(".velocity-tmp") or not os.path.isfile(full) or os.path.islink(full):
                continue
            yield os.path.relpath(full, root).replace(os.sep, "/"), full


def _hash_file(root: Path, relative: str) -> str:
    digest = hashlib.sha256()
    with os.fdopen(open_inside(root, tuple(relative.split("/"))), "rb") as handle:
        for block in iter(lambda: handle.read(65536), b""):
            digest.update(block)
    return digest.hexdigest()
