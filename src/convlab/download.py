"""Fetch the CIFAR-10 archive from an http(s) or file URL and accept it only if it is CIFAR-10.

The download goes to a temp file beside the destination, is retried with backoff (resuming with
an HTTP Range request where the server allows it), is verified, and only then renamed into
place. Any failure leaves no destination file behind, and a temp file that a killed download left
is removed by the next one. A host that cannot be resolved fails at once, and every network
failure names the way out: a copy of the archive on disk.

Whatever a URL sends is held to one DownloadBudget (convlab.bounds) in one copy loop, for file and
http(s) URLs alike: at most max_bytes, which is also all it can put on disk (a Content-Length that
declares more is refused before a byte is read, and one that is not a byte count is refused); no
stall (less than stall_bytes in stall_seconds, which is also how long any one read may wait); and
one deadline for all attempts, their pauses included. The URL and every redirect a server answers
with must pass params.url_problem, the one rule for URLs, and a server may not redirect to a file
of this machine. A file URL is read only if it names a regular file. No message quotes what the
URL served.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import http.client
import os
import re
import socket
import string
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from convlab.atomic import write_error
from convlab.bounds import (
    ARCHIVE_LIMITS,
    CHUNK,
    CIFAR10_ARCHIVE_BYTES,
    DOWNLOAD_BUDGET,
    ArchiveLimits,
    BoundedReader,
    DownloadBudget,
    open_regular,
    shown,
    size_text,
)
from convlab.cifar import ArchiveError, file_md5, read_archive
from convlab.errors import ConvlabError, one_line
from convlab.params import url_problem

# HTTP statuses worth another try: timeouts, rate limits and server-side failures.
_RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
# Appended to every failure to fetch over the network: offline, the only way on is a local copy.
OFFLINE_HINT = (
    "to use a copy on disk instead, run CIFAR10_URL=file:///path/to/cifar-10-python.tar.gz dvc repro "
    "(or dvc exp run -S data.url=file:///path/to/cifar-10-python.tar.gz)"
)
_BYTE_COUNT = re.compile(r"[0-9]{1,19}")  # what a Content-Length may be: ASCII digits, no sign


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


class _OutOfTime(Exception):
    """The download's deadline has passed."""


class _WriteFailed(Exception):
    """Writing the temp file failed (a full disk, a file size limit): not the source's fault. Its
    argument is the OSError."""


class _Clock:
    """The budget's time: one deadline for the whole download, and the current stall window."""

    def __init__(self, budget: DownloadBudget) -> None:
        self.budget = budget
        self.deadline = time.monotonic() + budget.deadline_seconds
        self.restart()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def wait_limit(self) -> float:
        """How long one connect or read may wait: a stall, or what is left before the deadline."""
        left = self.left()
        if left <= 0:
            raise _OutOfTime
        return min(self.budget.stall_seconds, left)

    def restart(self) -> None:
        self.window_start = time.monotonic()
        self.window_bytes = 0

    def arrived(self, count: int) -> None:
        now = time.monotonic()
        if now > self.deadline:
            raise _OutOfTime
        self.window_bytes += count
        if self.window_bytes >= self.budget.stall_bytes:
            self.window_start, self.window_bytes = now, 0
        elif now - self.window_start > self.budget.stall_seconds:
            raise _Retryable(self.stall())

    def stall(self) -> str:
        """What a stall is, for the message; after a read that waited too long, the deadline."""
        if self.left() <= 0:
            raise _OutOfTime
        return (
            f"stalled: less than {size_text(self.budget.stall_bytes)} in "
            f"{self.budget.stall_seconds:g} s, the stall limit"
        )


def _over_cap(url: str, cap: int) -> DownloadError:
    return DownloadError(
        f"{url} sent more than {size_text(cap)}, the download cap "
        f"(a CIFAR-10 archive is {size_text(CIFAR10_ARCHIVE_BYTES)})"
    )


def _copy(
    source: BinaryIO, target: BinaryIO, clock: _Clock, url: str, total: int | None, done: int, label: str
) -> int:
    """The one copy loop: source to target from byte `done` on, within the budget's bytes and time.
    Errors reading the source propagate as they are; errors writing the target are _WriteFailed."""
    reader = BoundedReader(
        source, clock.budget.max_bytes - done, lambda: _over_cap(url, clock.budget.max_bytes)
    )
    clock.restart()
    with tqdm(total=total, initial=done, unit="B", unit_scale=True, desc=label, mininterval=1.0) as bar:
        while chunk := reader.read(CHUNK):
            clock.arrived(len(chunk))
            try:
                target.write(chunk)
            except OSError as err:
                raise _WriteFailed(err) from None
            done += len(chunk)
            bar.update(len(chunk))
    try:
        target.flush()
    except OSError as err:
        raise _WriteFailed(err) from None
    return done


def _fetch_file(url: str, target: BinaryIO, clock: _Clock) -> None:
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    cap = clock.budget.max_bytes
    try:
        with open_regular(path) as source:
            size = os.fstat(source.fileno()).st_size
            if size > cap:
                raise DownloadError(
                    f"{url} is {size_text(size)}, more than the {size_text(cap)} download cap "
                    f"(a CIFAR-10 archive is {size_text(CIFAR10_ARCHIVE_BYTES)})"
                )
            _copy(source, target, clock, url, size, 0, path.name)
    except OSError as err:
        raise DownloadError(f"cannot read {url}: {err.strerror or one_line(err)}") from None
    except _Retryable as err:  # a stall: on this machine, trying again would not help
        raise DownloadError(f"reading {url} {err}") from None
    except _OutOfTime:
        raise DownloadError(
            f"reading {url} took longer than {clock.budget.deadline_seconds:g} s, the download deadline"
        ) from None


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to what data.url itself could be (params.url_problem, the one rule)
    and not to a file of this machine, which a server has no business choosing."""

    def http_error_302(
        self, req: urllib.request.Request, fp: BinaryIO, code: int, msg: str, headers: Message
    ) -> BinaryIO | None:
        location = headers.get("location") or headers.get("uri")
        if location is not None:
            # Quoted and joined as urllib does before it follows the redirect.
            target = urllib.parse.urljoin(
                req.full_url, urllib.parse.quote(location, encoding="iso-8859-1", safe=string.punctuation)
            )
            problem = url_problem(target)
            if problem is None and urllib.parse.urlsplit(target).scheme == "file":
                problem = "an http:// or https:// URL, not a file of this machine"
            if problem is not None:
                fp.close()
                raise DownloadError(
                    f"{req.full_url} redirects to {shown(target, 80)}, which is refused: expected {problem}"
                )
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _content_length(url: str, response: http.client.HTTPResponse) -> int | None:
    """The byte count the response declares, None if it declares none; refused unless it is one."""
    values = response.headers.get_all("Content-Length") or []
    if not values:
        return None
    if len(set(values)) > 1 or not _BYTE_COUNT.fullmatch(values[0].strip()):
        raise DownloadError(
            f"{url} sent Content-Length {shown(', '.join(values))}, which is not a byte count; refusing it"
        )
    return int(values[0])


def _http_attempt(url: str, target: BinaryIO, clock: _Clock, opener: urllib.request.OpenerDirector) -> None:
    """One attempt: resume from target's current size if the server honours a Range request."""
    have = target.tell()
    headers = {"User-Agent": "convlab"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = opener.open(request, timeout=clock.wait_limit())
    except urllib.error.HTTPError as err:
        err.close()
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
        length = _content_length(url, response)
        cap = clock.budget.max_bytes
        if length is not None and have + length > cap:
            raise DownloadError(
                f"{url} declares {size_text(have + length)} (Content-Length), more than the "
                f"{size_text(cap)} download cap (a CIFAR-10 archive is {size_text(CIFAR10_ARCHIVE_BYTES)})"
            )
        expected = have + length if length is not None else None
        try:
            done = _copy(
                response, target, clock, url, expected, have, Path(urllib.parse.urlparse(url).path).name
            )
        except TimeoutError:  # a read that waited longer than a stall
            raise _Retryable(clock.stall()) from None
        except (OSError, urllib.error.URLError, http.client.HTTPException) as err:
            raise _Retryable(f"connection broke after {target.tell()} bytes: {one_line(err)}") from None
        if expected is not None and done < expected:
            raise _Retryable(f"connection closed after {done} of {expected} bytes")


def _fetch_http(url: str, target: BinaryIO, clock: _Clock, attempts: int, backoff: float) -> None:
    opener = urllib.request.build_opener(_CheckedRedirects())
    errors: list[str] = []
    try:
        for attempt in range(1, attempts + 1):
            try:
                _http_attempt(url, target, clock, opener)
                return
            except _Retryable as err:
                errors.append(f"attempt {attempt}: {err}")
            if attempt < attempts:
                pause = backoff * 2 ** (attempt - 1)
                if pause >= clock.left():  # no time for another attempt after the pause
                    raise _OutOfTime
                time.sleep(pause)
    except _OutOfTime:
        tried = f" ({'; '.join(errors)})" if errors else ""
        raise DownloadError(
            f"could not download {url} within {clock.budget.deadline_seconds:g} s, the download "
            f"deadline{tried}; {OFFLINE_HINT}"
        ) from None
    raise DownloadError(
        f"could not download {url} in {attempts} attempts: {'; '.join(errors)}; {OFFLINE_HINT}"
    )


def verify(
    path: str | Path,
    md5: str,
    content_sha256: str,
    limits: ArchiveLimits = ARCHIVE_LIMITS,
    name: str | None = None,
) -> Verified:
    """Accept the archive when its md5 or its content checksum is the expected one; the content is
    read (within limits) only when the md5 differs. Messages call the archive `name` (default: path)."""
    actual_md5 = file_md5(path)
    if actual_md5 == md5:
        return Verified(md5=actual_md5, content_sha256=None, matched="md5")
    try:
        content = read_archive(path, limits, name).content_sha256()
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
    budget: DownloadBudget = DOWNLOAD_BUDGET,
    limits: ArchiveLimits = ARCHIVE_LIMITS,
) -> Verified:
    """Fetch url to destination atomically, within budget; return how the archive was verified."""
    # CIFAR10_URL reaches here without params' checks: the one URL rule is applied again.
    problem = url_problem(url)
    if problem is not None:
        raise DownloadError(f"cannot download {shown(url, 80)}: expected {problem}")
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(destination)
    clock = _Clock(budget)
    fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w+b") as target:
            # Held until the file is renamed into place: it marks the temp file as in use.
            fcntl.flock(target, fcntl.LOCK_EX)
            try:
                if urllib.parse.urlsplit(url).scheme == "file":
                    _fetch_file(url, target, clock)
                else:
                    _fetch_http(url, target, clock, attempts, backoff)
            except _WriteFailed as err:
                raise write_error(destination, err.args[0]) from None
            if os.path.getsize(tmp) == 0:
                raise DownloadError(f"{url} served an empty file")
            verified = verify(tmp, md5, content_sha256, limits, name=url)  # not the temp file's name
            os.replace(tmp, destination)
            return verified
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
