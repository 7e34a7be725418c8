"""Bounded against any input (issue 19): what a mirror, a URL or a crafted archive sends is held to
convlab.bounds' limits, and each refusal is one line that names the limit.

Through the stage a user runs (`python stages/download.py` in a copy of the project, with
CIFAR10_URL pointing at the crafted input, as a user would), in a child process under a memory
cap (RLIMIT_AS) and a file-size cap (RLIMIT_FSIZE): if a bound failed, the kernel would stop the
child (a MemoryError, a failed write), and the test would fail without exhausting the machine.
Then the mechanisms themselves: the bounded reader, regular files only, bounded messages.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import crafted
import pytest
from crafted import MiB
from loopback import LoopbackServer, Script
from project import copy_project, environment

from convlab.bounds import BoundedReader, open_regular, shown, size_text
from convlab.cifar import file_md5

pytestmark = pytest.mark.slow  # mostly the download stage as a real subprocess, under limits

OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"  # params.yaml's: no crafted file has it
MEMORY_CAP = 1 << 30  # the stage needs about 150 MB of address space; an unbounded read, gigabytes
FILE_SIZE_CAP = 64 * MiB  # the crafted files are a few MB; a download past its cap would hit this
ARCHIVE = "data/raw/cifar-10-python.tar.gz"


def _caps(memory: int, file_size: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    return apply


def run_capped(
    args: list[str], cwd: Path, memory: int = MEMORY_CAP, file_size: int = FILE_SIZE_CAP, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env=environment(TQDM_DISABLE="1", OPENBLAS_NUM_THREADS="1", **env),
        preexec_fn=_caps(memory, file_size),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inputs")


@pytest.fixture(scope="module")
def web(inputs: Path) -> Iterator[LoopbackServer]:
    with LoopbackServer(inputs) as running:
        yield running


def refused(project: Path, url: str, **env: str) -> str:
    """Run the download stage on url; return its one line on stderr, after checking that it
    failed with exit 1, printed nothing else there and left nothing in data/raw."""
    result = run_capped([sys.executable, "stages/download.py"], project, CIFAR10_URL=url, **env)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert sorted(p.name for p in (project / "data/raw").iterdir()) == [".gitignore"]
    return lines[0]


def _not_md5(path: Path) -> str:
    return f"md5 {file_md5(path)} is not the expected {OFFICIAL_MD5}"


# --- memory: archives whose content would take gigabytes ---------------------------------------


def test_gzip_bomb(project: Path, inputs: Path) -> None:
    """6 GiB of zeros in 6 MB: read whole, a MemoryError. Streams to the 512 MiB tar limit."""
    bomb = crafted.gzip_bomb(inputs / "bomb.tar.gz", 6 << 30)
    assert refused(project, bomb.as_uri()) == (
        f"download: error: {_not_md5(bomb)}, and {bomb.as_uri()} decompresses to more than 512 MiB, "
        "the limit for a CIFAR-10 archive (the official one is 163 MiB, its tar 177 MiB)"
    )


def test_tar_member_declaring_8_gib(project: Path, inputs: Path) -> None:
    """Refused at its header: tarfile reads nothing of it."""
    head = crafted.header("cifar-10-batches-py/data_batch_1", 8 << 30)
    path = crafted.gzip_bomb(inputs / "declares.tar.gz", 64 * MiB, head=head)
    assert refused(project, path.as_uri()) == (
        f"download: error: {_not_md5(path)}, and member 'cifar-10-batches-py/data_batch_1' declares "
        "8 GiB, more than the 96 MiB limit for one member (a CIFAR-10 batch is 29.5 MiB)"
    )


@pytest.mark.parametrize(
    ("label_names", "limit"),
    [
        # 20 levels of lists of two references each: 1 TiB for whatever walks it (the message did)
        (
            crafted.shared_lists(20),
            "pickle amounts to more than 96 MiB with its shared references"
            " counted each time they are used, the limit (a CIFAR-10 batch is 29.5 MiB)",
        ),
        # 100,000 lists deep: a RecursionError for whatever walks it (the message did)
        (
            crafted.nested_lists(100_000),
            "pickle nests deeper than 16 levels, the limit (a CIFAR-10 batch nests 5)",
        ),
        # the unpickler sizes its memo by the largest index: 32 GiB
        (
            b"]r\xff\xff\xff\xff",
            "pickle stores object number 4,294,967,295, beyond the 300,000 a pickle "
            "may have (one per opcode)",
        ),
    ],
    ids=["shared-references", "deep-nesting", "memo-index"],
)
def test_pickle_that_would_build_too_much(
    project: Path, inputs: Path, label_names: bytes, limit: str
) -> None:
    path = crafted.with_meta(inputs / f"pickle-{len(label_names)}.tar.gz", label_names)
    assert refused(project, path.as_uri()) == f"download: error: {_not_md5(path)}, and batches.meta: {limit}"


# --- disk: sources that never end ----------------------------------------------------------------


def test_device_is_not_read(project: Path) -> None:
    """file:///dev/zero wrote 3.7 GB in 15 s."""
    assert refused(project, "file:///dev/zero") == (
        "download: error: cannot read file:///dev/zero: a character device, not a regular file"
    )


def test_declared_length_over_the_cap_is_refused_before_reading(
    project: Path, web: LoopbackServer, small_archive: Path
) -> None:
    (web.root / "big.tar.gz").write_bytes(small_archive.read_bytes())
    web.script = Script(content_length=[str(8 << 30)])
    url = web.url("big.tar.gz")
    assert refused(project, url) == (
        f"download: error: {url} declares 8 GiB (Content-Length), more than the 512 MiB download cap "
        "(a CIFAR-10 archive is 163 MiB)"
    )


ENDLESS = """
import sys
from convlab.bounds import DownloadBudget
from convlab.download import DownloadError, download
try:
    download(sys.argv[1], sys.argv[2], "0" * 32, "0" * 64, budget=DownloadBudget(max_bytes=2 << 20))
except DownloadError as err:
    print(err)
"""


def test_endless_body_stops_at_the_download_cap(project: Path, tmp_path: Path, web: LoopbackServer) -> None:
    """An endless body wrote 1.8 GB in 15 s. With a 2 MiB cap under an 8 MiB file-size limit, a
    cap that failed would end in 'File too large' instead of this line."""
    web.script = Script(always="endless")
    url = web.url("endless")
    dest = tmp_path / "raw" / "a.tar.gz"
    result = run_capped([sys.executable, "-c", ENDLESS, url, str(dest)], project, file_size=8 * MiB)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{url} sent more than 2 MiB, the download cap (a CIFAR-10 archive is 163 MiB)\n"
    assert list(dest.parent.iterdir()) == []


FULL_DISK = 'mount -t tmpfs -o size=256k tmpfs data/raw && "$0" stages/download.py; ls -A data/raw'


def test_a_real_full_disk_leaves_no_temp_file(project: Path, small_archive: Path) -> None:
    """data/raw on a 256 KiB tmpfs (in a private mount namespace, where unshare and mount are
    allowed): the archive does not fit, the stage says so in one line and the temp file goes."""
    mount = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c"]
    try:
        probe = subprocess.run([*mount, "mount -t tmpfs tmpfs data/raw"], cwd=project, capture_output=True)
    except FileNotFoundError:
        pytest.skip("no unshare here")
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    result = subprocess.run(
        [*mount, FULL_DISK, sys.executable],
        cwd=project,
        env=environment(TQDM_DISABLE="1", CIFAR10_URL=small_archive.as_uri()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        result.stderr
        == "download: error: no space left on device while writing data/raw/cifar-10-python.tar.gz\n"
    )
    assert result.stdout.splitlines()[1:] == []  # after the stage's first line, ls shows nothing


# --- time: a source that blocks ----------------------------------------------------------------


def test_fifo_is_not_waited_on(project: Path, inputs: Path) -> None:
    """A FIFO hung the stage until someone wrote to it (run_capped's timeout would end the test)."""
    fifo = inputs / "fifo.tar.gz"
    os.mkfifo(fifo)
    assert refused(project, fifo.as_uri()) == (
        f"download: error: cannot read {fifo.as_uri()}: a FIFO, not a regular file"
    )


# --- URLs: the one rule (params.url_problem), for CIFAR10_URL and every redirect ---------------


def test_file_url_of_another_host_is_refused(project: Path) -> None:
    assert refused(project, "file://otherhost/data/cifar-10-python.tar.gz") == (
        "download: error: cannot download 'file://otherhost/data/cifar-10-python.tar.gz': expected a "
        "file URL of this machine (file:///path), not of another host"
    )


def test_redirect_to_another_scheme_is_refused(project: Path, web: LoopbackServer) -> None:
    """A 302 to ftp:// was followed."""
    web.script = Script(always="redirect", location="ftp://127.0.0.1/cifar-10-python.tar.gz")
    url = web.url("cifar-10-python.tar.gz")
    assert refused(project, url) == (
        f"download: error: {url} redirects to 'ftp://127.0.0.1/cifar-10-python.tar.gz', which is "
        "refused: expected an http://, https:// or file:// URL"
    )
    assert len(web.script.requests) == 1


def test_content_length_that_is_not_a_number(project: Path, web: LoopbackServer, small_archive: Path) -> None:
    """It was a ValueError traceback."""
    (web.root / "odd.tar.gz").write_bytes(small_archive.read_bytes())
    web.script = Script(content_length=["12abc"])
    url = web.url("odd.tar.gz")
    assert refused(project, url) == (
        f"download: error: {url} sent Content-Length '12abc', which is not a byte count; refusing it"
    )


# --- messages: never the bytes of what was served ------------------------------------------------


def test_a_file_that_is_not_an_archive_is_not_quoted(project: Path, inputs: Path) -> None:
    """file:///etc/passwd put its first 60 bytes in the message."""
    passwd = inputs / "passwd"
    passwd.write_bytes(b"root:x:0:0:root:/root:/bin/bash\nsecret-token-1234\n")
    result = run_capped([sys.executable, "stages/download.py"], project, CIFAR10_URL=passwd.as_uri())
    assert result.returncode == 1
    assert result.stderr == (
        f"download: error: {_not_md5(passwd)}, and {passwd.as_uri()} is not a gzip archive (it does not "
        "start with gzip's bytes 1f 8b); was an error page or an empty file saved instead?\n"
    )
    assert "root:x" not in result.stdout + result.stderr and "secret" not in result.stdout + result.stderr


# --- the mechanisms --------------------------------------------------------------------------------


class _Source:
    """A source of `total` bytes that records the sizes it was asked for."""

    def __init__(self, total: int) -> None:
        self.left, self.asked = total, []

    def read1(self, size: int) -> bytes:
        self.asked.append(size)
        size = min(size, self.left)
        self.left -= size
        return bytes(size)


def _over() -> ValueError:
    return ValueError("over the limit")


def test_bounded_reader_gives_exactly_the_limit() -> None:
    reader = BoundedReader(_Source(3 * MiB), 3 * MiB, _over)  # type: ignore[arg-type]
    sizes = []
    while chunk := reader.read(10 << 30):  # asking for 10 GiB allocates at most one chunk
        sizes.append(len(chunk))
    assert sizes == [MiB, MiB, MiB] and reader.count == 3 * MiB


def test_bounded_reader_refuses_one_byte_more_and_stays_refusing() -> None:
    source = _Source(3 * MiB + 1)
    reader = BoundedReader(source, 3 * MiB, _over)  # type: ignore[arg-type]
    for _ in range(3):
        reader.read(MiB)
    with pytest.raises(ValueError, match="over the limit"):
        reader.read(MiB)
    assert source.asked[-1] == 1  # only one byte past the limit was asked for
    with pytest.raises(ValueError, match="over the limit"):
        reader.read(MiB)


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda p: p.mkdir(), "a directory"),
        (lambda p: os.mkfifo(p), "a FIFO"),
    ],
)
def test_open_regular_refuses_what_is_not_a_regular_file(tmp_path: Path, make, kind: str) -> None:
    path = tmp_path / "x"
    make(path)
    with pytest.raises(OSError) as err:
        open_regular(path)
    assert (err.value.strerror, err.value.filename) == (f"{kind}, not a regular file", str(path))


def test_open_regular_refuses_a_device_and_reads_a_file(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="a character device, not a regular file"):
        open_regular("/dev/null")
    (tmp_path / "f").write_bytes(b"abc")
    with open_regular(tmp_path / "f") as handle:
        assert handle.read() == b"abc"


def test_shown_is_short_whatever_the_value() -> None:
    loop: list[object] = []
    loop.append(loop)
    assert shown(2**20000) == "an integer of 20001 bits"
    assert shown(b"x" * 10**6) == repr(b"x" * 40) + "..."
    assert shown(loop) == "a list of 1 items"
    assert shown((20, 3072)) == "(20, 3072)"
    assert shown(("a",) * 3) == "a tuple of 3 items"
    assert shown(object()) == "a object"


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (1000, "1000 bytes"),
        (64 * 1024, "64 KiB"),
        (1536 * 1024, "1.5 MiB"),
        (512 * MiB, "512 MiB"),
        (8 << 30, "8 GiB"),
    ],
)
def test_size_text(count: int, text: str) -> None:
    assert size_text(count) == text
