"""Fetch the CIFAR-10 archive from an http(s) or file URL and accept it only if it is CIFAR-10.

The download goes to a temp file beside the destination, is retried with backoff (resuming with
an HTTP Range request where the server allows it), is verified, and only then renamed into
place. Any failure leaves no destination file behind, and a temp file that a killed download left
is removed by the next one. A host that cannot be resolved fails at once, and every network
failure names the way out: a copy of the archive on disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from convlab.cifar import ArchiveError, file_md5, read_archive
from convlab.errors import ConvlabError

CHUNK = 1 << 20
# HTTP statuses worth another try: timeouts, rate limits and server-side failures.
_RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
# Appended to every failure to fetch over the network: offline, the only way on is a local copy.
OFFLINE_HINT = (
    "to use a copy on disk instead, run CIFAR10_URL=file:///path/to/cifar-10-python.tar.gz dvc repro "
    "(or dvc exp run -S data.url=file:///path/to/cifar-10-python.tar.gz)"
)


class DownloadError(ConvlabError, RuntimeError):
    """The URL could not be fetched, or what it served is not the expected archive."""


@dataclass(frozen=True)
class Verified:
    """How an archive was accepted."""

    md5: str
    content_sha256: str | None  # computed only when the md5 did not match
    matched: str  # "md5" or "content_sha256"


class _Retryable(Exception):
    """A transient failure: the attempt may be repeated."""


def _copy(source: BinaryIO, target: BinaryIO, total: int | None, done: int, label: str) -> int:
    with tqdm(total=total, initial=done, unit="B", unit_scale=True, desc=label, mininterval=1.0) as bar:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            target.write(chunk)
            done += len(chunk)
            bar.update(len(chunk))
    return done


def _fetch_file(url: str, target: BinaryIO) -> None:
    path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    try:
        with path.open("rb") as source:
            _copy(source, target, path.stat().st_size, 0, path.name)
    except OSError as err:
        raise DownloadError(f"cannot read {url}: {err.strerror or err}") from None


def _http_attempt(url: str, target: BinaryIO, timeout: float) -> None:
    """One attempt: resume from target's current size if the server honours a Range request."""
    have = target.tell()
    headers = {"User-Agent": "convlab"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # our range starts past the end: start over
            target.seek(0)
            target.truncate()
            raise _Retryable(f"HTTP 416 for a resumed range at byte {have}") from None
        if err.code in _RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {err.code} {err.reason}") from None
        raise DownloadError(f"{url} answered HTTP {err.code} {err.reason}; {OFFLINE_HINT}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)  # urllib wraps the socket's error in a URLError
        if isinstance(reason, socket.gaierror):
            # No address for the name (offline, or no DNS): unlike a dropped connection, asking
            # again a few seconds later does not help, so fail at once.
            host = urllib.parse.urlparse(url).hostname
            raise DownloadError(
                f"cannot resolve {host} ({reason.strerror or reason}); {OFFLINE_HINT}"
            ) from None
        raise _Retryable(f"cannot connect: {reason}") from None
    with response:
        if have and response.status != 206:  # server ignored the range: start over
            target.seek(0)
            target.truncate()
            have = 0
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None else None
        try:
            done = _copy(response, target, expected, have, Path(urllib.parse.urlparse(url).path).name)
        except (OSError, urllib.error.URLError) as err:
            raise _Retryable(f"connection broke after {target.tell()} bytes: {err}") from None
        if expected is not None and done < expected:
            raise _Retryable(f"connection closed after {done} of {expected} bytes")


def _fetch_http(url: str, target: BinaryIO, attempts: int, backoff: float, timeout: float) -> None:
    errors = []
    for attempt in range(1, attempts + 1):
        try:
            _http_attempt(url, target, timeout)
            return
        except _Retryable as err:
            errors.append(f"attempt {attempt}: {err}")
            if attempt < attempts:
                time.sleep(backoff * 2 ** (attempt - 1))
    raise DownloadError(
        f"could not download {url} in {attempts} attempts: {'; '.join(errors)}; {OFFLINE_HINT}"
    )


def verify(path: str | Path, md5: str, content_sha256: str) -> Verified:
    """Accept the archive when its md5 or its content checksum is the expected one."""
    actual_md5 = file_md5(path)
    if actual_md5 == md5:
        return Verified(md5=actual_md5, content_sha256=None, matched="md5")
    try:
        content = read_archive(path).content_sha256()
    except ArchiveError as err:
        raise DownloadError(f"md5 {actual_md5} is not the expected {md5}, and {err}") from None
    if content != content_sha256:
        raise DownloadError(
            f"not the expected CIFAR-10 archive: md5 {actual_md5} (expected {md5}) and content "
            f"sha256 {content} (expected {content_sha256}) both differ"
        )
    return Verified(md5=actual_md5, content_sha256=content, matched="content_sha256")


def _remove_stale_parts(destination: Path) -> None:
    """Remove the temp files of earlier downloads to destination that were killed mid-way.

    A running download holds an exclusive lock on its temp file, and the kernel drops the lock
    when the process dies however it dies (SIGKILL included), so a temp file that can be locked
    belongs to no one; one that cannot is a concurrent download's and is left alone.
    """
    for part in destination.parent.glob(f".{glob.escape(destination.name)}.*.part"):
        try:
            with part.open("rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                part.unlink()
        except (BlockingIOError, FileNotFoundError):
            continue  # alive, or removed by someone else since the glob


def download(
    url: str,
    destination: str | Path,
    md5: str,
    content_sha256: str,
    attempts: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> Verified:
    """Fetch url to destination atomically; return how the archive was verified."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("http", "https", "file"):
        raise DownloadError(f"cannot download {url!r}: only http, https and file URLs are supported")
    _remove_stale_parts(destination)
    fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w+b") as target:
            # Held until the file is renamed into place: it marks the temp file as in use.
            fcntl.flock(target, fcntl.LOCK_EX)
            if scheme == "file":
                _fetch_file(url, target)
            else:
                _fetch_http(url, target, attempts, backoff, timeout)
            target.flush()
            if os.path.getsize(tmp) == 0:
                raise DownloadError(f"{url} served an empty file")
            verified = verify(tmp, md5, content_sha256)
            os.replace(tmp, destination)
            return verified
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
