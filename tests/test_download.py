"""The download is verified, atomic, retried with resume, and refuses what is not CIFAR-10."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from loopback import LoopbackServer, Script

from convlab.atomic import WriteError
from convlab.bounds import DownloadBudget, size_text
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
    with pytest.raises(
        DownloadError, match="^cannot download 'ftp://127.0.0.1/c.tar.gz': expected an http://"
    ):
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


# --- the budget: bytes, stalls and one deadline, with short limits passed in ----------------------
# (An endless body, and the stage's one line for each class, are in tests/test_bounds.py, run
# under memory and file-size caps.)


def _fails_within(seconds: float, *args: object, **kwargs: object) -> str:
    """Run download(*args, **kwargs), expecting a one-line DownloadError within seconds."""
    started = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download(*args, **kwargs)  # type: ignore[arg-type]
    assert time.monotonic() - started < seconds
    message = str(err.value)
    assert "\n" not in message
    return message


def test_stalled_server_is_given_up_on_per_attempt(server: LoopbackServer, tmp_path: Path) -> None:
    """Headers, then nothing: each attempt ends after stall_seconds, and the next resumes."""
    server.script = Script(always="stall")
    url = server.url("cifar-10-python.tar.gz")
    budget = DownloadBudget(stall_seconds=0.3)
    message = _fails_within(3, url, tmp_path / "out" / "a.tar.gz", WRONG_MD5, "0" * 64, 2, 0.01, budget)
    stall = "stalled: less than 64 KiB in 0.3 s, the stall limit"
    assert message.startswith(
        f"could not download {url} in 2 attempts: attempt 1: {stall}; attempt 2: {stall}; "
    )
    assert _leftovers(tmp_path / "out") == []


def test_dripping_server_is_a_stall(server: LoopbackServer, tmp_path: Path) -> None:
    """One byte every 0.05 s never times a read out: too few bytes in the window is a stall too."""
    server.script = Script(always="drip", drip_seconds=0.05)
    url = server.url("cifar-10-python.tar.gz")
    budget = DownloadBudget(stall_seconds=0.5, stall_bytes=1024)
    message = _fails_within(3, url, tmp_path / "out" / "a.tar.gz", WRONG_MD5, "0" * 64, 1, 0, budget)
    stall = "stalled: less than 1 KiB in 0.5 s, the stall limit"
    assert message.startswith(f"could not download {url} in 1 attempts: attempt 1: {stall}; ")


def test_deadline_ends_a_download_that_never_stalls(server: LoopbackServer, tmp_path: Path) -> None:
    """A slow drip within the stall window still meets the deadline, which counts every attempt."""
    server.script = Script(always="drip", drip_seconds=0.02)
    url = server.url("cifar-10-python.tar.gz")
    budget = DownloadBudget(stall_seconds=30, stall_bytes=1, deadline_seconds=1.0)
    message = _fails_within(3, url, tmp_path / "out" / "a.tar.gz", WRONG_MD5, "0" * 64, 5, 0, budget)
    assert message.startswith(f"could not download {url} within 1 s, the download deadline; ")
    assert _leftovers(tmp_path / "out") == []


def test_deadline_cuts_the_pause_between_attempts(server: LoopbackServer, tmp_path: Path) -> None:
    server.script = Script(always="error")
    url = server.url("cifar-10-python.tar.gz")
    budget = DownloadBudget(deadline_seconds=1.0)
    message = _fails_within(2, url, tmp_path / "a.tar.gz", WRONG_MD5, "0" * 64, 5, 30.0, budget)
    assert message.startswith(
        f"could not download {url} within 1 s, the download deadline (attempt 1: HTTP 503 try later); "
    )
    assert len(server.script.requests) == 1


def test_file_larger_than_the_cap_is_not_copied(tmp_path: Path, small_archive: Path) -> None:
    url = small_archive.as_uri()
    size = size_text(small_archive.stat().st_size)
    budget = DownloadBudget(max_bytes=1000)
    message = _fails_within(5, url, tmp_path / "out" / "a.tar.gz", WRONG_MD5, "0" * 64, budget=budget)
    assert (
        message == f"{url} is {size}, more than the 1000 bytes download cap (a CIFAR-10 archive is 163 MiB)"
    )
    assert _leftovers(tmp_path / "out") == []


def test_declared_length_over_the_cap(served, tmp_path: Path, small_archive: Path) -> None:
    server, md5, sha = served
    url = server.url("cifar-10-python.tar.gz")
    size = size_text(small_archive.stat().st_size)
    message = _fails_within(5, url, tmp_path / "a.tar.gz", md5, sha, budget=DownloadBudget(max_bytes=1000))
    assert message == (
        f"{url} declares {size} (Content-Length), more than the 1000 bytes download cap "
        "(a CIFAR-10 archive is 163 MiB)"
    )
    assert len(server.script.requests) == 1  # not retried: the next answer would be the same


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        (["-1"], "'-1'"),
        (["1e3"], "'1e3'"),
        (["+5"], "'+5'"),
        (["1_000"], "'1_000'"),  # int() would take it
        (["10", "20"], "'10, 20'"),  # two that disagree
    ],
)
def test_content_length_that_is_not_one_byte_count(served, tmp_path: Path, values, shown: str) -> None:
    server, md5, sha = served
    server.script = Script(content_length=values)
    url = server.url("cifar-10-python.tar.gz")
    message = _fails_within(5, url, tmp_path / "a.tar.gz", md5, sha)
    assert message == f"{url} sent Content-Length {shown}, which is not a byte count; refusing it"
    assert len(server.script.requests) == 1


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("ftp://127.0.0.1/c.tar.gz", "an http://, https:// or file:// URL"),
        ("gopher://127.0.0.1/c.tar.gz", "an http://, https:// or file:// URL"),
        ("file:///etc/passwd", "an http:// or https:// URL, not a file of this machine"),
        ("file://otherhost/c.tar.gz", "a file URL of this machine (file:///path), not of another host"),
    ],
)
def test_redirect_must_pass_the_url_rule(served, tmp_path: Path, location: str, expected: str) -> None:
    server, md5, sha = served
    server.script = Script(always="redirect", location=location)
    url = server.url("cifar-10-python.tar.gz")
    message = _fails_within(5, url, tmp_path / "out" / "a.tar.gz", md5, sha)
    assert message == f"{url} redirects to {location!r}, which is refused: expected {expected}"
    assert len(server.script.requests) == 1
    assert _leftovers(tmp_path / "out") == []


def test_redirect_within_the_rule_is_followed(served, tmp_path: Path, small_archive: Path) -> None:
    server, md5, sha = served
    server.script = Script(faults=["redirect"], location="/cifar-10-python.tar.gz")
    download(server.url("mirror/cifar.tar.gz"), tmp_path / "a.tar.gz", md5, sha)
    assert (tmp_path / "a.tar.gz").read_bytes() == small_archive.read_bytes()
    assert len(server.script.requests) == 2


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "a character device"), ("/", "a directory")])
def test_file_url_of_what_is_not_a_regular_file(tmp_path: Path, path: str, kind: str) -> None:
    message = _fails_within(5, f"file://{path}", tmp_path / "out" / "a.tar.gz", WRONG_MD5, "0" * 64)
    assert message == f"cannot read file://{path}: {kind}, not a regular file"
    assert _leftovers(tmp_path / "out") == []


def test_file_url_of_a_fifo_does_not_wait(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    message = _fails_within(5, fifo.as_uri(), tmp_path / "out" / "a.tar.gz", WRONG_MD5, "0" * 64)
    assert message == f"cannot read {fifo.as_uri()}: a FIFO, not a regular file"


def test_file_url_of_another_host_is_not_read_here(tmp_path: Path, small_archive: Path) -> None:
    url = "file://otherhost" + small_archive.as_uri()[len("file://") :]
    message = _fails_within(5, url, tmp_path / "a.tar.gz", file_md5(small_archive), "0" * 64)
    assert (
        message
        == f"cannot download {url!r}: expected a file URL of this machine (file:///path), not of another host"
    )


def test_full_disk_is_one_line_and_leaves_nothing(
    tmp_path: Path, small_archive: Path, full_disk: None
) -> None:
    """The download's own temp file goes through the one write error of every output."""
    dest = tmp_path / "out" / "a.tar.gz"
    with pytest.raises(WriteError, match=f"^no space left on device while writing {dest}$"):
        download(small_archive.as_uri(), dest, WRONG_MD5, "0" * 64)
    assert _leftovers(tmp_path / "out") == []
