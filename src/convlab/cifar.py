"""The CIFAR-10 python archive: its checksums, and reading it without trusting it.

The archive comes from outside (a URL, a mirror, a copy on disk), so this is where its bytes are
checked. Nothing is extracted to disk: the gzip stream is read through a counter that stops at
MAX_TAR_BYTES (a gzip bomb ends there), each member must be one of the few files CIFAR-10 holds
and no larger than MAX_MEMBER_BYTES, and the pickles are loaded by an unpickler that admits only
the numpy names a CIFAR-10 batch uses, so a crafted pickle cannot run code. An archive is accepted
when its md5 is the one params names or, for a repacked copy, when its pixels and labels hash to
the content checksum params names; that content checksum is recorded with the prepared data.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convlab.errors import ConvlabError

MiB = 1 << 20
# The official archive is 163 MiB and its tar 177 MiB; a batch pickle is 30 MB. These caps hold any
# copy of CIFAR-10 with room to spare and stop anything much larger.
MAX_ARCHIVE_BYTES = 512 * MiB
MAX_TAR_BYTES = 512 * MiB
MAX_MEMBER_BYTES = 96 * MiB
ROOT = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
MEMBERS = (*TRAIN_BATCHES, TEST_BATCH, META, "readme.html")
CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
PIXELS = 3 * 32 * 32


class ArchiveError(ConvlabError, ValueError):
    """The file is not a CIFAR-10 python archive that is accepted."""


@dataclass(frozen=True)
class Cifar10:
    """Images as rows of 3072 uint8 (R, G, B planes of 32x32), labels as uint8, official order."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def content_sha256(self) -> str:
        """sha256 over x_train, y_train, x_test and y_test: the same for any repack of the data."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            digest.update(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
        return digest.hexdigest()


def _numpy_reconstruct() -> object:
    """numpy's array-rebuilding function, which numpy 1 and numpy 2 keep in different modules."""
    return np.ndarray.__reduce__(np.zeros(1, np.uint8))[0]


# The only globals the official batches name (Python 2, protocol 2), under numpy 1's and 2's paths.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _NumpyOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED:
            raise ArchiveError(f"its pickle asks for {f'{module}.{name}'[:80]!r}, which CIFAR-10's never do")
        return _ALLOWED[(module, name)]


class _Capped:
    """A stream that raises ArchiveError once more than `limit` bytes have come out of it."""

    def __init__(self, stream: gzip.GzipFile, limit: int, name: str) -> None:
        self.stream, self.left, self.name = stream, limit, name

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(min(size, self.left + 1) if size >= 0 else self.left + 1)
        self.left -= len(data)
        if self.left < 0:
            raise ArchiveError(f"{self.name} decompresses to more than {MAX_TAR_BYTES // MiB} MiB")
        return data


def _members(path: Path, name: str) -> dict[str, bytes]:
    if path.stat().st_size > MAX_ARCHIVE_BYTES:
        raise ArchiveError(f"{name} is larger than {MAX_ARCHIVE_BYTES // MiB} MiB")
    members: dict[str, bytes] = {}
    with path.open("rb") as raw, gzip.GzipFile(fileobj=raw) as unzipped:
        # "r|": a stream, read once front to back; no member is extracted to disk.
        with tarfile.open(fileobj=_Capped(unzipped, MAX_TAR_BYTES, name), mode="r|") as tar:  # type: ignore[call-overload]
            for info in tar:
                folder, _, member = info.name.partition("/")
                if info.isdir() and info.name.rstrip("/") == ROOT:
                    continue
                if (
                    folder != ROOT
                    or member not in MEMBERS
                    or info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE)
                ):
                    raise ArchiveError(f"{name} holds {info.name[:80]!r}, which CIFAR-10 does not")
                if info.size > MAX_MEMBER_BYTES or member in members:
                    raise ArchiveError(
                        f"{name}: {member} is over {MAX_MEMBER_BYTES // MiB} MiB or appears twice"
                    )
                handle = tar.extractfile(info)
                assert handle is not None  # a regular member always has contents
                members[member] = handle.read()
    missing = [m for m in (*TRAIN_BATCHES, TEST_BATCH, META) if m not in members]
    if missing:
        raise ArchiveError(f"{name} lacks {', '.join(missing)}: not a complete CIFAR-10 archive")
    return members


def _unpickle(data: bytes, member: str) -> dict:
    try:
        obj = _NumpyOnly(io.BytesIO(data), encoding="latin1").load()
    except ArchiveError as err:
        raise ArchiveError(f"{member}: {err}") from None
    except Exception as err:  # a damaged pickle can raise almost anything
        raise ArchiveError(f"{member} is not a readable pickle ({type(err).__name__})") from None
    if not isinstance(obj, dict):
        raise ArchiveError(f"{member} holds a {type(obj).__name__}, not a batch")
    return obj


def _batch(data: bytes, member: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(data, member)
    x, labels = batch.get("data"), batch.get("labels")
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != PIXELS:
        raise ArchiveError(f"{member}: 'data' is not an (N, {PIXELS}) uint8 array")
    if not isinstance(labels, list) or len(labels) != len(x) or any(type(v) is not int for v in labels):
        raise ArchiveError(f"{member}: 'labels' is not a list of {len(x)} integers")
    if labels and not 0 <= min(labels) <= max(labels) < len(CLASSES):
        raise ArchiveError(f"{member}: a label is outside 0..{len(CLASSES) - 1}")
    return x, np.asarray(labels, dtype=np.uint8)


def read_archive(path: str | Path, name: str | None = None) -> Cifar10:
    """Read and check a cifar-10-python.tar.gz (ArchiveError on anything CIFAR-10 is not); messages
    call it `name` (the URL it came from, say), by default its path."""
    name = name or str(path)
    try:
        members = _members(Path(path), name)
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, OSError, RecursionError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ArchiveError(f"{name} is not a readable .tar.gz ({type(err).__name__})") from None
    names = _unpickle(members[META], META).get("label_names")
    if names != list(CLASSES):
        raise ArchiveError(f"{META}: the class names are not CIFAR-10's")
    train = [_batch(members.pop(m), m) for m in TRAIN_BATCHES]
    x_test, y_test = _batch(members.pop(TEST_BATCH), TEST_BATCH)
    return Cifar10(
        x_train=np.concatenate([x for x, _ in train]),
        y_train=np.concatenate([y for _, y in train]),
        x_test=x_test,
        y_test=y_test,
    )


def file_md5(path: str | Path) -> str:
    digest = hashlib.md5()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: str | Path, md5: str, content_sha256: str, name: str | None = None) -> str:
    """How the archive is accepted ('md5' or 'content'), or ArchiveError: its md5 is `md5`, or what
    it holds (read as above) hashes to `content_sha256`."""
    actual = file_md5(path)
    if actual == md5:
        return "md5"
    content = read_archive(path, name).content_sha256()
    if content != content_sha256:
        raise ArchiveError(
            f"{name or path} is not the expected CIFAR-10 archive: md5 {actual} (expected {md5}), "
            f"content sha256 {content[:16]}... (expected {content_sha256[:16]}...)"
        )
    return "content"
