"""The download is verified, atomic, retried with resume, and refuses what is not CIFAR-10."""

from __future__ import annotations

import fcntl
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from loopback import LoopbackServer, Script

from convlab.cifar import file_md5, read_archive
from convlab.download import DownloadError, download

WRONG_MD5 = "0" * 32


@pytest.fixture
def served(server: LoopbackServer, small_archive: Path) -> tuple[LoopbackServer, str, str]:
    shutil.copy(small_archive, server.root / "cifar-10-python.tar.gz")
    return server, file_md5(small_archive), read_archive(small_archive).content_sha256()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_http_download_accepted_by_md5(served, tmp_path: Path, small_archive: Path) -> None:
    server, md5, sha = served
    dest = tmp_path / "raw" / "cifar-10-python.tar.gz"
    verified = download(server.url("cifar-10-python.tar.gz"), dest, md5, "0" * 64)
    assert verified.matched == "md5"
    assert dest.read_bytes() == small_archive.read_bytes()
    assert _leftovers(dest.parent) == ["cifar-10-python.tar.gz"]


def test_repacked_archive_accepted_by_content_checksum(served, tmp_path: Path) -> None:
    server, md5, sha = served
    verified = download(server.url("cifar-10-python.tar.gz"), tmp_path / "a.tar.gz", WRONG_MD5, sha)
    assert verified.matched == "content_sha256" and verified.content_sha256 == sha


def test_file_url(tmp_path: Path, small_archive: Path) -> None:
    md5 = file_md5(small_archive)
    download(small_archive.as_uri(), tmp_path / "a.tar.gz", md5, "0" * 64)
    assert file_md5(tmp_path / "a.tar.gz") == md5


def test_missing_file_url(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="cannot read"):
        download((tmp_path / "absent.tar.gz").as_uri(), tmp_path / "out" / "a.tar.gz", WRONG_MD5, "0" * 64)
    assert _leftovers(tmp_path / "out") == []


def test_wrong_checksums_leave_nothing(served, tmp_path: Path) -> None:
    server, _, _ = served
    with pytest.raises(DownloadError, match="both differ"):
        download(server.url("cifar-10-python.tar.gz"), tmp_path / "out" / "a.tar.gz", WRONG_MD5, "1" * 64)
    assert _leftovers(tmp_path / "out") == []


def test_other_archive_with_right_layout_is_refused(
    server: LoopbackServer, tmp_path: Path, small_archive
) -> None:
    from convlab.synthetic import write_archive

    write_archive(server.root / "other.tar.gz", per_batch=200, test_size=300, seed=7)
    sha = read_archive(small_archive).content_sha256()
    with pytest.raises(DownloadError, match="content sha256"):
        download(server.url("other.tar.gz"), tmp_path / "out" / "a.tar.gz", WRONG_MD5, sha)
    assert _leftovers(tmp_path / "out") == []


def test_html_error_page_is_refused(served, tmp_path: Path) -> None:
    server, md5, sha = served
    server.script = Script(always="html")
    with pytest.raises(DownloadError, match="not a gzip archive"):
        download(server.url("cifar-10-python.tar.gz"), tmp_path / "out" / "a.tar.gz", md5, sha)
    assert _leftovers(tmp_path / "out") == []


def test_empty_file_is_refused(server: LoopbackServer, tmp_path: Path) -> None:
    (server.root / "empty.tar.gz").write_bytes(b"")
    with pytest.raises(DownloadError, match="empty file"):
        download(server.url("empty.tar.gz"), tmp_path / "out" / "a.tar.gz", WRONG_MD5, "0" * 64)
    assert _leftovers(tmp_path / "out") == []


def test_not_found_fails_at_once(served, tmp_path: Path) -> None:
    server, md5, sha = served
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url("nope.tar.gz"), tmp_path / "out" / "a.tar.gz", md5, sha, backoff=0)
    assert len(server.script.requests) == 1  # a 404 is not retried


def test_dropped_connection_is_resumed_with_a_range_request(served, tmp_path: Path, small_archive) -> None:
    server, md5, sha = served
    server.script = Script(faults=["drop"])
    dest = tmp_path / "a.tar.gz"
    download(server.url("cifar-10-python.tar.gz"), dest, md5, sha, backoff=0.01)
    assert dest.read_bytes() == small_archive.read_bytes()
    first, second = server.script.requests
    assert "Range" not in first
    assert second["Range"] == f"bytes={small_archive.stat().st_size // 2}-"


def test_server_without_ranges_restarts_the_download(served, tmp_path: Path, small_archive) -> None:
    server, md5, sha = served
    server.script = Script(faults=["drop", "error"], ranges=False)
    dest = tmp_path / "a.tar.gz"
    download(server.url("cifar-10-python.tar.gz"), dest, md5, sha, backoff=0.01)
    assert dest.read_bytes() == small_archive.read_bytes()
    assert len(server.script.requests) == 3


def test_server_that_keeps_failing_is_given_up_on(served, tmp_path: Path) -> None:
    server, md5, sha = served
    server.script = Script(always="error")
    with pytest.raises(DownloadError, match="in 3 attempts.*HTTP 503"):
        download(
            server.url("cifar-10-python.tar.gz"),
            tmp_path / "out" / "a.tar.gz",
            md5,
            sha,
            attempts=3,
            backoff=0.01,
        )
    assert len(server.script.requests) == 3
    assert _leftovers(tmp_path / "out") == []


def _names_the_way_out(message: str) -> bool:
    return (
        "CIFAR10_URL=file:///path/to/cifar-10-python.tar.gz dvc repro" in message
        and "dvc exp run -S data.url=file:///" in message
    )


def test_unreachable_host(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="cannot connect") as err:
        download(
            "http://127.0.0.1:9/cifar.tar.gz",
            tmp_path / "a.tar.gz",
            WRONG_MD5,
            "0" * 64,
            attempts=2,
            backoff=0.01,
        )
    assert _names_the_way_out(str(err.value))


def test_http_error_names_the_way_out(served, tmp_path: Path) -> None:
    server, md5, sha = served
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        download(server.url("nope.tar.gz"), tmp_path / "a.tar.gz", md5, sha, backoff=0)
    assert _names_the_way_out(str(err.value))


def test_unknown_host_fails_at_once_with_one_line_naming_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline, the name lookup fails; waiting and asking again (with backoff) only wastes time."""
    lookups: list[str] = []

    def offline(host: str, *args: object, **kwargs: object) -> list:
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    started = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download(
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            tmp_path / "out" / "a.tar.gz",
            WRONG_MD5,
            "0" * 64,
            backoff=5.0,
        )
    message = str(err.value)
    assert lookups == ["www.cs.toronto.edu"]
    assert time.monotonic() - started < 2.0  # no backoff sleep
    assert "cannot resolve www.cs.toronto.edu (Name or service not known)" in message
    assert "\n" not in message and "attempt" not in message
    assert _names_the_way_out(message)
    assert _leftovers(tmp_path / "out") == []


def test_temp_file_of_a_killed_download_is_removed_by_the_next(tmp_path: Path, small_archive: Path) -> None:
    """SIGKILL leaves no chance to clean up: the next download removes what the dead one left."""
    dest = tmp_path / "raw" / "cifar-10-python.tar.gz"
    md5 = file_md5(small_archive)
    # The child dies by SIGKILL after writing part of the archive into its temp file.
    child = f"""
import os, signal
import convlab.download as d
def copy_then_die(source, target, *rest):
    target.write(source.read(1000))
    target.flush()
    os.kill(os.getpid(), signal.SIGKILL)
d._copy = copy_then_die
d.download({small_archive.as_uri()!r}, {str(dest)!r}, {md5!r}, "0" * 64)
"""
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGKILL, result.stderr
    (left,) = _leftovers(dest.parent)
    assert left.startswith(".cifar-10-python.tar.gz.") and left.endswith(".part")

    download(small_archive.as_uri(), dest, md5, "0" * 64)
    assert _leftovers(dest.parent) == ["cifar-10-python.tar.gz"]


def test_temp_file_of_a_running_download_is_left_alone(tmp_path: Path, small_archive: Path) -> None:
    dest = tmp_path / "a.tar.gz"
    live = tmp_path / ".a.tar.gz.running.part"
    stale = tmp_path / ".a.tar.gz.killed.part"
    other = tmp_path / ".b.tar.gz.killed.part"  # another file's temp: not ours to judge
    for path in (live, stale, other):
        path.write_bytes(b"partial")
    with live.open("rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # what a download in progress holds
        download(small_archive.as_uri(), dest, file_md5(small_archive), "0" * 64)
        assert _leftovers(tmp_path) == [".a.tar.gz.running.part", ".b.tar.gz.killed.part", "a.tar.gz"]
    assert not stale.exists()


def test_unsupported_scheme(tmp_path: Path) -> None:
    """CIFAR10_URL bypasses params: download applies params.url_problem, the one URL rule, itself."""
    with pytest.raises(DownloadError, match="^cannot download 'ftp://127.0.0.1/c.tar.gz': expected an http://"):
        download("ftp://127.0.0.1/c.tar.gz", tmp_path / "a.tar.gz", WRONG_MD5, "0" * 64)


def test_truncated_archive_served_complete_is_refused(
    server: LoopbackServer, tmp_path: Path, small_archive
) -> None:
    data = small_archive.read_bytes()
    (server.root / "cut.tar.gz").write_bytes(data[: len(data) // 3])
    sha = read_archive(small_archive).content_sha256()
    with pytest.raises(DownloadError, match="truncated or corrupt"):
        download(server.url("cut.tar.gz"), tmp_path / "out" / "a.tar.gz", WRONG_MD5, sha)
    assert _leftovers(tmp_path / "out") == []
