"""The download: a URL from params or $CIFAR10_URL, held to a byte cap, a read timeout, a deadline
and http(s) redirects; the archive lands only once accepted, and a password is never printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from loopback import LoopbackServer

from convlab import download as dl
from convlab.cifar import file_md5
from convlab.download import DownloadError, download
from convlab.synthetic import write_archive


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dl, "READ_TIMEOUT", 0.5)
    monkeypatch.setattr(dl, "BACKOFF", 0.0)


def fetch(url: str, target: Path, **kwargs: object) -> str:
    return download(url, target, "0" * 32, "0" * 64, **kwargs)  # type: ignore[arg-type]


def test_an_archive_over_http_lands_whole_once_accepted(server: LoopbackServer, tmp_path: Path) -> None:
    archive = write_archive(server.root / "c.tar.gz", per_batch=20, test_size=20)
    server.script.faults = ["drop", "error"]  # a broken connection, then a 503: both retried
    how = download(server.url("c.tar.gz"), tmp_path / "raw/c.tar.gz", file_md5(archive), "0" * 64)
    assert how == "md5" and (tmp_path / "raw/c.tar.gz").read_bytes() == archive.read_bytes()
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["c.tar.gz"]


@pytest.mark.parametrize(
    ("always", "cap", "expected"),
    [
        ("endless", 1 << 20, "sent more than 1 MiB, the download cap"),
        ("stall", 1 << 30, "nothing came for 0.5 s, the read timeout"),
        ("missing", 1 << 30, "answered HTTP 404; offline? run with CIFAR10_URL=file:///"),
        ("html", 1 << 30, "is not a readable .tar.gz"),
    ],
)
def test_a_bad_source_is_one_line_and_leaves_nothing(
    server: LoopbackServer, tmp_path: Path, always: str, cap: int, expected: str
) -> None:
    server.script.always = always
    with pytest.raises((DownloadError, ValueError)) as refused:
        fetch(server.url("c.tar.gz"), tmp_path / "c.tar.gz", cap=cap)
    assert expected in str(refused.value) and "\n" not in str(refused.value)
    assert list(tmp_path.iterdir()) == ["served"] or not (tmp_path / "c.tar.gz").exists()
    assert not list(tmp_path.glob(".*part"))


def test_a_server_that_drips_is_stopped_by_the_deadline(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dl, "DEADLINE", 0.5)
    server.script.always, server.script.drip_seconds = "drip", 0.01
    with pytest.raises(DownloadError, match="took longer than 0.5 s, the deadline"):
        fetch(server.url("c.tar.gz"), tmp_path / "c.tar.gz")


def test_a_redirect_to_a_local_file_is_refused(server: LoopbackServer, tmp_path: Path) -> None:
    server.script.always, server.script.location = "redirect", "file:///etc/passwd"
    with pytest.raises(DownloadError, match="redirects to 'file:///etc/passwd': refused"):
        fetch(server.url("c.tar.gz"), tmp_path / "c.tar.gz")


def test_a_password_in_the_url_is_sent_but_never_printed(server: LoopbackServer, tmp_path: Path) -> None:
    url = server.url("c.tar.gz").replace("http://", "http://reader:s3cret@")
    server.script.always = "missing"
    with pytest.raises(DownloadError) as refused:
        fetch(url, tmp_path / "c.tar.gz")
    assert "s3cret" not in str(refused.value) and "http://***@127.0.0.1" in str(refused.value)
    assert server.script.requests[0]["Authorization"] == "Basic cmVhZGVyOnMzY3JldA=="


def test_a_file_url_is_copied_within_the_cap(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "c.tar.gz", per_batch=20, test_size=20)
    with pytest.raises(DownloadError, match="over the 0 MiB cap"):
        fetch(archive.as_uri(), tmp_path / "raw/c.tar.gz", cap=1000)
    with pytest.raises(DownloadError, match="No such file"):
        fetch((tmp_path / "gone.tar.gz").as_uri(), tmp_path / "raw/c.tar.gz")
