"""The downloaded archive, the first thing that comes from outside: accepted only as CIFAR-10,
never executed, and bounded however it is built."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
from pathlib import Path

import pytest

from convlab import cifar
from convlab.cifar import ROOT, ArchiveError, file_md5, read_archive, verify
from convlab.synthetic import write_archive


class RunsCode:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch pwned",))


def test_a_pickle_that_would_run_code_never_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    archive = write_archive(tmp_path / "a.tar.gz", per_batch=20, test_size=20,
                            members={"data_batch_1": pickle.dumps(RunsCode(), protocol=2)})  # fmt: skip
    with pytest.raises(ArchiveError, match="asks for 'posix.system', which CIFAR-10's never do"):
        verify(archive, "0" * 32, "0" * 64)
    assert not (tmp_path / "pwned").exists()


def test_a_repacked_copy_is_accepted_by_its_content_and_anything_else_refused(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "a.tar.gz", per_batch=20, test_size=20)
    content = read_archive(archive).content_sha256()
    assert verify(archive, file_md5(archive), "0" * 64) == "md5"
    assert verify(archive, "0" * 32, content) == "content"
    other = write_archive(tmp_path / "b.tar.gz", per_batch=20, test_size=20, seed=1)
    with pytest.raises(ArchiveError, match="is not the expected CIFAR-10 archive: md5"):
        verify(other, "0" * 32, content)


def tar_gz(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buffer.getvalue()))
    return path


def member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = len(data), kind, link
    return info, data


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        (
            [member(f"{ROOT}/../../etc/passwd", b"x")],
            "holds 'cifar-10-batches-py/../../etc/passwd', which CIFAR-10 does not",
        ),
        (
            [member(f"{ROOT}/data_batch_1", kind=tarfile.SYMTYPE, link="/etc/passwd")],
            "which CIFAR-10 does not",
        ),
        ([member("/abs/data_batch_1", b"x")], "which CIFAR-10 does not"),
        ([member(f"{ROOT}/readme.html", b"x")], "lacks data_batch_1"),
    ],
)
def test_members_that_are_not_cifar10s_are_refused(tmp_path: Path, members: list, expected: str) -> None:
    with pytest.raises(ArchiveError, match=expected.replace(".", r"\.").replace("(", r"\(")):
        read_archive(tar_gz(tmp_path / "a.tar.gz", members))


def test_a_gzip_bomb_stops_at_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Members each within their cap, together past the tar's: 6 MiB of zeros in a few KiB."""
    monkeypatch.setattr(cifar, "MAX_TAR_BYTES", 4 << 20)
    monkeypatch.setattr(cifar, "MAX_MEMBER_BYTES", 2 << 20)
    zeros = [member(f"{ROOT}/data_batch_{i}", bytes(2 << 20)) for i in (1, 2, 3)]
    with pytest.raises(ArchiveError, match="decompresses to more than 4 MiB"):
        read_archive(tar_gz(tmp_path / "bomb.tar.gz", zeros))


def test_a_member_declared_over_the_cap_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cifar, "MAX_MEMBER_BYTES", 1 << 20)
    archive = tar_gz(tmp_path / "a.tar.gz", [member(f"{ROOT}/data_batch_1", bytes(2 << 20))])
    with pytest.raises(ArchiveError, match="data_batch_1 is over 1 MiB"):
        read_archive(archive)


@pytest.mark.parametrize(
    "content",
    [b"<html>Service unavailable</html>", b"", gzip.compress(b"not a tar", mtime=0)],
    ids=["html", "empty", "gzip"],
)
def test_what_is_not_a_tar_gz_is_one_line(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "a.tar.gz").write_bytes(content)
    with pytest.raises(ArchiveError, match=r"is not a readable \.tar\.gz"):
        read_archive(tmp_path / "a.tar.gz")
