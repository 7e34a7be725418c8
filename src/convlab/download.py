"""Fetch the archive from data.url (http, https or a file of this machine), within limits.

Stdlib urllib: it does all this needs, and pooch would still need the byte cap, the deadline and
the redirect rule written around it. What a URL may make this do is bounded: each read waits at
most READ_TIMEOUT, the whole download (retries included) at most DEADLINE, at most
cifar.MAX_ARCHIVE_BYTES are written, and a redirect is followed only to another http(s) URL. The
file lands under a temp name and is renamed into place only once cifar.verify accepts it. A
user name or password in the URL is sent as HTTP basic auth and never printed.
"""

from __future__ import annotations

import base64
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from convlab.cifar import MAX_ARCHIVE_BYTES, MiB, verify
from convlab.errors import ConvlabError
from convlab.params import url_problem

READ_TIMEOUT = 60.0  # seconds one read may wait for a byte
DEADLINE = 2 * 3600.0  # seconds for the whole download: the official archive at 24 KB/s
ATTEMPTS = 3  # network failures are retried, from the start, after BACKOFF, 2 BACKOFF, ... seconds
BACKOFF = 2.0
OFFLINE_HINT = "offline? run with CIFAR10_URL=file:///path/to/cifar-10-python.tar.gz"


class DownloadError(ConvlabError, RuntimeError):
    """The URL could not be fetched within the limits, or served something else than asked."""


def _login_removed(url: str, mark: str) -> str:
    parts = urllib.parse.urlsplit(url)
    login, at, host = parts.netloc.rpartition("@")
    return urllib.parse.urlunsplit(parts._replace(netloc=mark + host)) if at else url


def shown_url(url: str) -> str:
    """The URL without its user name and password, for every message."""
    return _login_removed(url, "***@")


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def http_error_302(  # type: ignore[override]
        self, req: urllib.request.Request, fp: BinaryIO, code: int, msg: str, headers: Message
    ) -> BinaryIO | None:
        target = urllib.parse.urljoin(req.full_url, headers.get("location") or "")
        if url_problem(target) is not None or not target.startswith(("http://", "https://")):
            raise DownloadError(f"{shown_url(req.full_url)} redirects to {shown_url(target)[:80]!r}: refused")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _copy(source: BinaryIO, target: BinaryIO, url: str, total: int | None, deadline: float, cap: int) -> None:
    if total is not None and total > cap:
        raise DownloadError(f"{shown_url(url)} declares {total:,} bytes, over the {cap // MiB} MiB cap")
    done = 0
    with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name[:30], mininterval=1.0) as bar:
        while chunk := source.read1(MiB):  # what has come, not a full MiB: the deadline is checked
            done += len(chunk)
            if done > cap:
                raise DownloadError(f"{shown_url(url)} sent more than {cap // MiB} MiB, the download cap")
            if time.monotonic() > deadline:
                raise DownloadError(f"{shown_url(url)} took longer than {DEADLINE:g} s, the deadline")
            target.write(chunk)
            bar.update(len(chunk))
    if total is not None and done < total:  # a connection that broke: retried as a network failure
        raise ConnectionError(f"the connection closed after {done:,} of {total:,} bytes")


def _fetch(url: str, target: BinaryIO, deadline: float, cap: int) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        path = Path(urllib.request.url2pathname(parts.path))
        with path.open("rb") as source:
            _copy(source, target, url, os.fstat(source.fileno()).st_size, deadline, cap)
        return
    headers = {"User-Agent": "convlab"}
    if parts.username is not None or parts.password is not None:
        login = f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(login.encode()).decode()
        url = _login_removed(url, "")
    opener = urllib.request.build_opener(_HttpOnlyRedirects())
    with opener.open(urllib.request.Request(url, headers=headers), timeout=READ_TIMEOUT) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length is not None and length.isdigit() else None
        _copy(response, target, url, total, deadline, cap)


def download(
    url: str, destination: str | Path, md5: str, content_sha256: str, cap: int = MAX_ARCHIVE_BYTES
) -> str:
    """Fetch url to destination atomically; return how cifar.verify accepted it."""
    if (problem := url_problem(url)) is not None:
        raise DownloadError(f"cannot download {shown_url(url)[:80]!r}: expected {problem}")
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(f".{destination.name}.part")  # one writer at a time: DVC's lock
    deadline = time.monotonic() + DEADLINE
    try:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with part.open("wb") as target:
                    _fetch(url, target, deadline, cap)
                break
            except urllib.error.HTTPError as err:
                if err.code < 500 or attempt == ATTEMPTS:
                    raise DownloadError(
                        f"{shown_url(url)} answered HTTP {err.code}; {OFFLINE_HINT}"
                    ) from None
            except (urllib.error.URLError, OSError) as err:
                if isinstance(err, FileNotFoundError) or attempt == ATTEMPTS:
                    reason = getattr(err, "reason", None) or err.strerror or str(err) or type(err).__name__
                    if isinstance(err, TimeoutError) or isinstance(reason, TimeoutError):
                        reason = f"nothing came for {READ_TIMEOUT:g} s, the read timeout"
                    raise DownloadError(f"cannot fetch {shown_url(url)}: {reason}; {OFFLINE_HINT}") from None
            time.sleep(min(BACKOFF * 2 ** (attempt - 1), max(0.0, deadline - time.monotonic())))
        how = verify(part, md5, content_sha256, name=shown_url(url))
        os.replace(part, destination)
        return how
    finally:
        part.unlink(missing_ok=True)
