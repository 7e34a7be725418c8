"""Atomic writes: a temp file beside the target, then rename; the one write path of every output.

A reader (or DVC, hashing outputs) sees either the old file or the complete new one, never a
half-written file, even if the process is killed mid-write. A write the system refuses (a full
disk, a read-only file system, no permission, a file where a folder should be) raises WriteError
naming the target and the reason in one line, after removing its temp file. A killed process
cannot remove its temp file, so the next write of the same target removes what earlier ones left.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from convlab.errors import ConvlabError

# The reasons a write fails, in the words the message uses; others take the system's own words.
_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a file stands where a folder of its path should be",
    errno.EEXIST: "a file stands where a folder of its path should be",
    errno.EISDIR: "a folder stands where the file should be",
}


class WriteError(ConvlabError, OSError):
    """A write the system refused; the old output, if any, is left as it was."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{reason} while writing {path}")
        self.reason = reason


class _Writer(io.BufferedWriter):
    """The temp file's handle. It remembers a write that failed, because torch.save turns a failed
    write of its own into a RuntimeError ('unexpected pos ...') that no longer says why."""

    failure: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except OSError as err:
            self.failure = err
            raise

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as err:
            self.failure = err
            raise


def _refusal(err: BaseException, handle: _Writer | None = None) -> str | None:
    """Why the system refused the write that raised err, or None when err has another cause (a
    bug, Ctrl-C)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, WriteError):
            return seen.reason
        if isinstance(seen, OSError):
            return _REASONS.get(seen.errno or 0) or (seen.strerror or str(seen)).lower()
        seen = seen.__cause__ or seen.__context__
    failure = handle.failure if handle is not None else None
    return None if failure is None else _REASONS.get(failure.errno or 0) or str(failure.strerror).lower()


def write_error(path: str | Path, err: OSError) -> WriteError:
    """The one-line WriteError of a write of `path` the system refused with err (for a write path
    that cannot go through atomic_open, as the download's locked temp file)."""
    return WriteError(path, _refusal(err) or str(err))


def check_writable(paths: Iterable[str | Path]) -> None:
    """Raise WriteError unless each path's folder can be made and a file written in it, and no
    folder stands where the file goes: a stage checks this before hours of work, not after."""
    for path in map(Path, paths):
        try:
            if path.is_dir():
                raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            raise WriteError(path, _refusal(err) or "unknown") from err


def temp_pattern(path: str | Path) -> re.Pattern[str]:
    """The names of the temp files and folders writes of `path` make beside it: `.NAME.RANDOM.tmp`
    and atomic_directory's `.NAME.RANDOM.old` (RANDOM is tempfile's, letters, digits and _, so a
    target `a` never matches the temps of `a.b`)."""
    return re.compile(rf"\.{re.escape(Path(path).name)}\.[a-z0-9_]+\.(tmp|old)")


def remove_stale_temps(path: str | Path) -> None:
    """Remove what killed writes of `path` left beside it. A target has one writer at a time (DVC
    locks the workspace), so any temp of it that exists before a write starts is stale."""
    path = Path(path)
    pattern = temp_pattern(path)
    with contextlib.suppress(FileNotFoundError):
        for entry in path.parent.iterdir():
            if not pattern.fullmatch(entry.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """Open a temp file for binary writing; on success it replaces `path`, on error it vanishes."""
    path = Path(path)
    tmp: str | None = None
    handle: _Writer | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        handle = _Writer(io.FileIO(fd, "wb"))
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if (reason := _refusal(err, handle)) is not None:
            raise WriteError(path, reason) from err
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path) as handle:
        handle.write(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temp folder to fill; on success it replaces `path` whole, on error it vanishes."""
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A stale .old folder holds the output a killed run was replacing; this run replaces it.
        remove_stale_temps(path)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if (reason := _refusal(err)) is not None:
            raise WriteError(path, reason) from err
        raise
