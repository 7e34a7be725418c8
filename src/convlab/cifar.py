"""Read the CIFAR-10 python archive safely, and compute its content checksum.

Nothing is extracted to disk: members are read into memory after their names and types are
checked, so no member can write outside a target folder. The pickles are read by an unpickler
that only admits the few globals a CIFAR-10 batch uses, as pickled by Python 2 (the official
archive) or re-pickled by Python 3 at protocols 2 to 5, and answers each with an inert stand-in,
so a crafted archive cannot run code. Every problem raises ArchiveError naming the member and
what is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convlab.errors import ConvlabError

ROOT = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
REQUIRED_MEMBERS = (*TRAIN_BATCHES, TEST_BATCH, META)
OPTIONAL_MEMBERS = ("readme.html",)
CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
IMAGE_SHAPE = (3, 32, 32)
PIXELS = 3 * 32 * 32


class ArchiveError(ConvlabError, ValueError):
    """The file is not a CIFAR-10 python archive we accept."""


@dataclass(frozen=True)
class Cifar10:
    """Images as rows of 3072 uint8 (R, G, B planes of 32x32), labels as uint8, official order."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def content_sha256(self) -> str:
        """sha256 over x_train, y_train, x_test, y_test bytes: the same for any repack."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            digest.update(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
        return digest.hexdigest()


# The unpickler never calls numpy or a codec on the archive's bytes. The globals a CIFAR-10
# batch names are answered with the inert stand-ins below, which only record what the pickle
# says; arrays are then built from those records by np.frombuffer after their dtype, shape and
# byte count have been checked. Any other global is refused. The official archive (Python 2,
# protocol 2) names numpy's _reconstruct, ndarray and dtype; a copy re-pickled by Python 3 may
# also name _codecs.encode (protocol 2's spelling of bytes) or numpy's _frombuffer (protocol 5),
# each under numpy 1's module path (numpy.core) or numpy 2's (numpy._core).
class _NdarrayName:
    """Stands for numpy.ndarray, the class argument of _reconstruct."""


class _DtypeRecord:
    def __init__(self, code: object = None, *_: object) -> None:
        self.code = code.decode("latin-1") if isinstance(code, bytes) else code
        self.order: object = "|"

    def __setstate__(self, state: object) -> None:
        if isinstance(state, tuple) and len(state) > 1:
            order = state[1]
            self.order = order.decode("latin-1") if isinstance(order, bytes) else order


class _ArrayRecord:
    """What _reconstruct + __setstate__ said: (version, shape, dtype, is_fortran, raw bytes)."""

    state: object = None

    def __setstate__(self, state: object) -> None:
        self.state = state


@dataclass(frozen=True)
class _BufferRecord:
    """What _frombuffer(buf, dtype, shape, order) was asked for; nothing is built yet."""

    buf: object
    dtype: object
    shape: object
    order: object


def _reconstruct(cls: object, *_: object) -> _ArrayRecord:
    if cls is not _NdarrayName:
        raise ArchiveError("pickle reconstructs something other than a numpy array")
    return _ArrayRecord()


def _frombuffer(*args: object) -> _BufferRecord:
    # numpy 2 may add a fifth argument, axis_order, for arrays kept in neither C nor Fortran
    # order; CIFAR-10's 2-D arrays never need it, so only its absence (None) is accepted.
    if len(args) == 5 and args[4] is None:
        args = args[:4]
    if len(args) != 4:
        raise ArchiveError(
            f"numpy _frombuffer called with {len(args)} arguments, not (buf, dtype, shape, order)"
        )
    return _BufferRecord(*args)


def _encode(*args: object) -> bytes:
    """Python 3's protocol 2 writes bytes b as _codecs.encode(b.decode('latin1'), 'latin1')."""
    if len(args) != 2 or not isinstance(args[0], str) or args[1] != "latin1":
        shown = ", ".join(repr(a)[:40] for a in args)
        raise ArchiveError(f"_codecs.encode({shown}) is not the (str, 'latin1') that spells bytes")
    try:
        return args[0].encode("latin1")
    except UnicodeEncodeError:
        raise ArchiveError("_codecs.encode of a string with characters beyond latin-1") from None


_STAND_INS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NdarrayName,
    ("numpy", "dtype"): _DtypeRecord,
    ("_codecs", "encode"): _encode,
}
# Plain numeric dtypes, little-endian or byte-order free. CIFAR-10 stores uint8 images; the
# others are read only so that the batch check can say which dtype a wrong archive holds.
_NUMERIC_CODES = {"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _STAND_INS:
            raise ArchiveError(
                f"pickle asks for {module}.{name}, which CIFAR-10 never uses; refusing to load it"
            )
        return _STAND_INS[(module, name)]


def _to_array(record: _ArrayRecord | _BufferRecord) -> np.ndarray:
    """Build the array a record describes, or raise naming what does not fit."""
    if isinstance(record, _BufferRecord):
        shape, dtype, raw = record.shape, record.dtype, record.buf
        if record.order not in ("C", "F"):
            raise ArchiveError(f"numpy array order {record.order!r}: only 'C' and 'F' are accepted")
        fortran = record.order == "F"
        # Protocol 5 carries the data as bytearray (a writable array) or bytes (a read-only one).
        if isinstance(raw, bytearray):
            raw = bytes(raw)
    else:
        state = record.state
        if not (isinstance(state, tuple) and len(state) == 5):
            raise ArchiveError("malformed numpy array state")
        _, shape, dtype, fortran, raw = state
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        raise ArchiveError(f"malformed numpy array shape {shape!r}")
    if not (
        isinstance(dtype, _DtypeRecord)
        and isinstance(dtype.code, str)
        and dtype.code in _NUMERIC_CODES
        and dtype.order in ("|", "<", "=")
    ):
        code = getattr(dtype, "code", dtype)
        raise ArchiveError(f"numpy array of dtype {code!r}: only plain numeric arrays are accepted")
    if not isinstance(raw, bytes) or not isinstance(fortran, bool):
        raise ArchiveError("malformed numpy array data")
    kind = np.dtype(f"<{dtype.code}")
    if len(raw) != math.prod(shape) * kind.itemsize:
        raise ArchiveError(
            f"numpy array of shape {shape} holds {len(raw)} bytes, not {math.prod(shape) * kind.itemsize}"
        )
    return np.frombuffer(raw, dtype=kind).reshape(shape, order="F" if fortran else "C")


def _unpickle(raw: bytes, member: str) -> dict:
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
        if not isinstance(obj, dict):
            raise ArchiveError(f"expected a dict, found {type(obj).__name__}")
        records = (_ArrayRecord, _BufferRecord)
        return {k: _to_array(v) if isinstance(v, records) else v for k, v in obj.items()}
    except ArchiveError as err:
        raise ArchiveError(f"{member}: {err}") from None
    except Exception as err:  # a malformed pickle can raise almost anything
        raise ArchiveError(f"{member}: not a readable pickle ({type(err).__name__}: {err})") from None


def _member_name(info: tarfile.TarInfo) -> str | None:
    """The batch name for an accepted member, None for the root folder; raise for anything else."""
    name = info.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"member {name!r} has an absolute path; refusing the archive")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"member {name!r} escapes the target folder; refusing the archive")
    if info.issym() or info.islnk():
        raise ArchiveError(f"member {name!r} is a link; refusing the archive")
    if parts == [ROOT] and info.isdir():
        return None
    if len(parts) != 2 or parts[0] != ROOT:
        raise ArchiveError(f"member {name!r} is not inside {ROOT}/; refusing the archive")
    if not info.isfile():
        raise ArchiveError(f"member {name!r} is not a regular file; refusing the archive")
    if parts[1] not in REQUIRED_MEMBERS + OPTIONAL_MEMBERS:
        raise ArchiveError(
            f"unexpected member {name!r}: a CIFAR-10 archive holds only "
            + ", ".join(REQUIRED_MEMBERS + OPTIONAL_MEMBERS)
        )
    return parts[1]


def _read_members(path: Path) -> dict[str, bytes]:
    with path.open("rb") as handle:
        head = handle.read(60)
    if head[:2] != b"\x1f\x8b":
        raise ArchiveError(
            f"{path} is not a gzip archive (it starts with {head!r}); "
            "was an error page or an empty file saved instead?"
        )
    try:
        # Decompress the whole stream first: gzip's CRC and length check then catch corruption
        # anywhere, which a tar reader that stops at the first bad header would miss.
        with gzip.open(path, "rb") as stream:
            tar_bytes = stream.read()
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as err:
        raise ArchiveError(f"{path} is truncated or corrupt ({type(err).__name__}: {err})") from None
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for info in tar:
                name = _member_name(info)
                if name is None:
                    continue
                if name in members:
                    raise ArchiveError(f"member {info.name!r} appears twice; refusing the archive")
                handle = tar.extractfile(info)
                assert handle is not None  # regular files always have contents
                members[name] = handle.read()
    except tarfile.TarError as err:
        raise ArchiveError(f"{path} is not a valid tar archive ({err})") from None
    missing = [m for m in REQUIRED_MEMBERS if m not in members]
    if missing:
        raise ArchiveError(f"{path} lacks {', '.join(missing)}: not a complete CIFAR-10 archive")
    return members


def _check_classes(meta: dict) -> None:
    names = meta.get(b"label_names")
    if not isinstance(names, list):
        raise ArchiveError(f"{META}: no label_names list")
    decoded = tuple(n.decode(errors="replace") if isinstance(n, bytes) else n for n in names)
    if decoded != CLASSES:
        raise ArchiveError(f"{META}: class names {decoded} differ from CIFAR-10's {CLASSES}")


def _batch_arrays(batch: dict, member: str) -> tuple[np.ndarray, np.ndarray]:
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        kind = f"{data.dtype} array" if isinstance(data, np.ndarray) else type(data).__name__
        raise ArchiveError(f"{member}: 'data' must be a uint8 array, found {kind}")
    if data.ndim != 2 or data.shape[1] != PIXELS or data.shape[0] == 0:
        raise ArchiveError(f"{member}: 'data' has shape {data.shape}, expected (N, {PIXELS})")
    if not isinstance(labels, (list, np.ndarray)):
        raise ArchiveError(f"{member}: 'labels' must be a list, found {type(labels).__name__}")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels):
        raise ArchiveError(f"{member}: 'labels' must hold integers")
    label_array = np.asarray(labels, dtype=np.int64)
    if label_array.shape != (data.shape[0],):
        raise ArchiveError(f"{member}: {label_array.size} labels for {data.shape[0]} images; they must match")
    bad = label_array[(label_array < 0) | (label_array > 9)]
    if bad.size:
        raise ArchiveError(f"{member}: label {int(bad[0])} is outside 0..9")
    return data, label_array.astype(np.uint8)


def read_archive(path: str | Path) -> Cifar10:
    """Read and check a cifar-10-python.tar.gz; raise ArchiveError on anything unexpected."""
    members = _read_members(Path(path))
    _check_classes(_unpickle(members[META], META))
    train = [_batch_arrays(_unpickle(members[m], m), m) for m in TRAIN_BATCHES]
    x_test, y_test = _batch_arrays(_unpickle(members[TEST_BATCH], TEST_BATCH), TEST_BATCH)
    return Cifar10(
        x_train=np.concatenate([x for x, _ in train]),
        y_train=np.concatenate([y for _, y in train]),
        x_test=x_test,
        y_test=y_test,
    )


def file_md5(path: str | Path) -> str:
    digest = hashlib.md5()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
