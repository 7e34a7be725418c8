"""Read the CIFAR-10 python archive safely, and compute its content checksum.

Nothing is extracted to disk: members are read into memory after their names, types and sizes
are checked, so no member can write outside a target folder. The archive streams through one
bounded reader: the file, the decompressed tar, each member's declared size and the number of
tar headers are held to convlab.bounds' limits as they are read, so a gzip bomb or a member that
declares gigabytes is refused before it is in memory. The pickles are first walked opcode by
opcode, without building anything, and refused if they would nest, share or amount to more than a
CIFAR-10 batch can; then an unpickler that only admits the few globals a CIFAR-10 batch uses, as
pickled by Python 2 (the official archive) or re-pickled by Python 3 at protocols 2 to 5, answers
each with an inert stand-in, so a crafted archive cannot run code. Every problem raises
ArchiveError naming the member and what is wrong (or the limit it reached), in one line that quotes
at most a few characters of the file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import pickle
import pickletools
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convlab.bounds import (
    ARCHIVE_LIMITS,
    CHUNK,
    CIFAR10_ARCHIVE_BYTES,
    MAX_ARRAY_DIMS,
    ArchiveLimits,
    BoundedReader,
    open_regular,
    shown,
    size_text,
)
from convlab.errors import ConvlabError, one_line

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
        described = ", ".join(shown(a) for a in args[:3]) + (", ..." if len(args) > 3 else "")
        raise ArchiveError(f"_codecs.encode({described}) is not the (str, 'latin1') that spells bytes")
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
            asked = shown(f"{module}.{name}", 60)
            raise ArchiveError(f"pickle asks for {asked}, which CIFAR-10 never uses; refusing to load it")
        return _STAND_INS[(module, name)]


def _to_array(record: _ArrayRecord | _BufferRecord) -> np.ndarray:
    """Build the array a record describes, or raise naming what does not fit."""
    if isinstance(record, _BufferRecord):
        shape, dtype, raw = record.shape, record.dtype, record.buf
        if record.order not in ("C", "F"):
            raise ArchiveError(f"numpy array order {shown(record.order)}: only 'C' and 'F' are accepted")
        fortran = record.order == "F"
        # Protocol 5 carries the data as bytearray (a writable array) or bytes (a read-only one).
        if isinstance(raw, bytearray):
            raw = bytes(raw)
    else:
        state = record.state
        if not (isinstance(state, tuple) and len(state) == 5):
            raise ArchiveError("malformed numpy array state")
        _, shape, dtype, fortran, raw = state
    if not _is_shape(shape):
        raise ArchiveError(f"malformed numpy array shape {shown(shape)}")
    if not (
        isinstance(dtype, _DtypeRecord)
        and isinstance(dtype.code, str)
        and dtype.code in _NUMERIC_CODES
        and dtype.order in ("|", "<", "=")
    ):
        code = getattr(dtype, "code", dtype)
        raise ArchiveError(f"numpy array of dtype {shown(code)}: only plain numeric arrays are accepted")
    if not isinstance(raw, bytes) or not isinstance(fortran, bool):
        raise ArchiveError("malformed numpy array data")
    kind = np.dtype(f"<{dtype.code}")
    if len(raw) != math.prod(shape) * kind.itemsize:
        raise ArchiveError(
            f"numpy array of shape {shape} holds {len(raw)} bytes, not {math.prod(shape) * kind.itemsize}"
        )
    return np.frombuffer(raw, dtype=kind).reshape(shape, order="F" if fortran else "C")


def _is_shape(shape: object) -> bool:
    """A tuple of a few sizes of up to 32 bits: their product is then cheap to compute, where a
    crafted shape of huge integers would take minutes to multiply."""
    return (
        isinstance(shape, tuple)
        and len(shape) <= MAX_ARRAY_DIMS
        and all(type(n) is int and 0 <= n and n.bit_length() <= 32 for n in shape)
    )


# --- the pickle's structure, checked before the unpickler builds any of it ---------------------
# The check walks the opcodes (pickletools.genops reads them without building anything) and keeps,
# for each object the pickle would build, a _Node: how big it is with every shared reference
# counted each time it is used, and how deep its containers nest. An object that is already inside
# another may be referred to again (CIFAR-10 shares a dtype and the 'latin1' codec name) but never
# changed again, and nothing may go inside itself, so what the counts say stays true of the
# finished object, and no structure can grow behind the counts' back or loop.
_MARK = object()
_MEMO_WRITES = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}
_MEMO_READS = {"GET", "BINGET", "LONG_BINGET"}
# Opcodes that change the object below their arguments instead of making a new one, and how many
# arguments they take (None: all down to the mark).
_MUTATORS = {"APPEND": 1, "SETITEM": 2, "BUILD": 1, "APPENDS": None, "SETITEMS": None, "ADDITEMS": None}
_NO_STACK_EFFECT = {"PROTO", "FRAME", "STOP"}


def _stack_effect(op: pickletools.OpcodeInfo) -> tuple[int, bool, bool]:
    """(objects popped besides those down to a mark, whether it pops to a mark, whether it pushes)."""
    before = op.stack_before
    marked = pickletools.markobject in before
    return (before.index(pickletools.markobject) if marked else len(before)), marked, bool(op.stack_after)


_STACK_EFFECTS = {op.name: _stack_effect(op) for op in pickletools.opcodes}


class _Node:
    __slots__ = ("depth", "expanded", "used")

    def __init__(self, expanded: int, depth: int) -> None:
        self.expanded = expanded  # bytes and text by their length, anything else as 1
        self.depth = depth  # 0 for a scalar, 1 for a container of scalars, ...
        self.used = False  # placed inside another object


class _Malformed(Exception):
    """A pickle whose opcodes do not fit together; the unpickler would refuse it too."""


def _check_pickle(raw: bytes, limits: ArchiveLimits) -> None:
    """Raise ArchiveError naming the limit if the pickle would take more opcodes, nest deeper or
    amount to more (shared references expanded) than a CIFAR-10 batch can."""
    stack: list[object] = []
    memo: dict[int, object] = {}
    for count, (op, arg, _) in enumerate(pickletools.genops(raw), 1):
        if count > limits.pickle_ops:
            raise ArchiveError(
                f"pickle has more than {limits.pickle_ops:,} opcodes, the limit "
                "(a CIFAR-10 batch has about 30,000)"
            )
        name = op.name
        pops, marked, pushes = _STACK_EFFECTS[name]
        if name in _MEMO_WRITES:
            index = len(memo) if name == "MEMOIZE" else arg
            # The unpickler sizes its memo by the largest index: 2**32 would be 32 GiB.
            if index >= limits.pickle_ops:
                raise ArchiveError(
                    f"pickle stores object number {index:,}, beyond the {limits.pickle_ops:,} "
                    "a pickle may have (one per opcode)"
                )
            memo[index] = _top(stack)
        elif name in _MEMO_READS:
            if arg not in memo:
                raise _Malformed(f"memo entry {arg} is read before it is written")
            stack.append(memo[arg])
        elif name == "DUP":
            stack.append(_top(stack))
        elif name == "MARK":
            stack.append(_MARK)
        elif name in _MUTATORS:
            _mutate(stack, _MUTATORS[name], limits)
        elif pops or marked:
            _build(stack, pops, marked, pushes, arg, limits)
        elif pushes:  # a scalar or an empty container, the most common by far: kept short
            node = _Node(len(arg) if isinstance(arg, (str, bytes, bytearray)) else 1, 0)
            if node.expanded > limits.pickle_expanded_bytes:
                _within(node, limits)
            stack.append(node)
        elif name not in _NO_STACK_EFFECT:
            raise _Malformed(f"opcode {name} is not understood")


def _top(stack: list[object]) -> _Node:
    if not stack or stack[-1] is _MARK:
        raise _Malformed("an opcode needs an object where there is none")
    return stack[-1]  # type: ignore[return-value]


def _pop(stack: list[object]) -> _Node:
    node = _top(stack)
    stack.pop()
    return node


def _pop_to_mark(stack: list[object]) -> list[_Node]:
    items: list[_Node] = []
    while stack:
        item = stack.pop()
        if item is _MARK:
            return items
        items.append(item)  # type: ignore[arg-type]
    raise _Malformed("an opcode needs a mark where there is none")


def _build(
    stack: list[object], pops: int, marked: bool, pushes: bool, arg: object, limits: ArchiveLimits
) -> None:
    """An opcode that takes objects off the stack and (mostly) puts a new one made of them there."""
    parts = _pop_to_mark(stack) if marked else []
    parts += [_pop(stack) for _ in range(pops)]
    for part in parts:
        part.used = True
    if pushes:
        own = len(arg) if isinstance(arg, (str, bytes, bytearray)) else 1
        node = _Node(own + sum(p.expanded for p in parts), 1 + max(p.depth for p in parts) if parts else 0)
        _within(node, limits)
        stack.append(node)


def _mutate(stack: list[object], arity: int | None, limits: ArchiveLimits) -> None:
    """APPEND(S), SETITEM(S), ADDITEMS and BUILD: add to (or set the state of) the object below."""
    items = _pop_to_mark(stack) if arity is None else [_pop(stack) for _ in range(arity)]
    target = _top(stack)
    if target.used:
        raise ArchiveError("pickle changes an object after placing it inside another; CIFAR-10's never do")
    for item in items:
        if item is target:
            raise ArchiveError("pickle places an object inside itself; CIFAR-10's never do")
        item.used = True
        target.expanded += item.expanded
        target.depth = max(target.depth, item.depth + 1)
    _within(target, limits)


def _within(node: _Node, limits: ArchiveLimits) -> None:
    if node.depth > limits.pickle_depth:
        raise ArchiveError(
            f"pickle nests deeper than {limits.pickle_depth} levels, the limit (a CIFAR-10 batch nests 5)"
        )
    if node.expanded > limits.pickle_expanded_bytes:
        raise ArchiveError(
            f"pickle amounts to more than {size_text(limits.pickle_expanded_bytes)} with its shared "
            "references counted each time they are used, the limit (a CIFAR-10 batch is 29.5 MiB)"
        )


def _unpickle(raw: bytes, member: str, limits: ArchiveLimits) -> dict:
    try:
        try:
            _check_pickle(raw, limits)
        except _Malformed as err:
            raise ArchiveError(f"not a readable pickle ({err})") from None
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
        if not isinstance(obj, dict):
            raise ArchiveError(f"expected a dict, found {type(obj).__name__}")
        records = (_ArrayRecord, _BufferRecord)
        return {k: _to_array(v) if isinstance(v, records) else v for k, v in obj.items()}
    except ArchiveError as err:
        raise ArchiveError(f"{member}: {err}") from None
    except Exception as err:  # a malformed pickle can raise almost anything
        raise ArchiveError(f"{member}: not a readable pickle ({one_line(err)})") from None


# --- the tar inside the gzip, streamed ----------------------------------------------------------
_EXTENDED_HEADERS = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


def _bounded_tarinfo(limits: ArchiveLimits) -> type[tarfile.TarInfo]:
    """A TarInfo that checks every header's declared size (and counts the headers) before tarfile
    reads what the header announces: tarfile itself reads a pax or long-name header's whole
    declared size at once, and follows a chain of them by recursion."""
    headers = 0

    class BoundedTarInfo(tarfile.TarInfo):
        def _proc_member(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:
            nonlocal headers
            headers += 1
            if headers > limits.tar_headers:
                raise ArchiveError(
                    f"the tar has more than {limits.tar_headers} headers, the limit (CIFAR-10's has 9)"
                )
            if self.type in _EXTENDED_HEADERS and self.size > limits.extended_header_bytes:
                raise ArchiveError(
                    f"a tar extended header declares {size_text(self.size)}, more than the "
                    f"{size_text(limits.extended_header_bytes)} limit for one"
                )
            member = super()._proc_member(tarfile)
            # After any pax header has set it, and before a byte of the member is read.
            if member.size > limits.member_bytes:
                raise ArchiveError(
                    f"member {shown(member.name, 60)} declares {size_text(member.size)}, more than the "
                    f"{size_text(limits.member_bytes)} limit for one member (a CIFAR-10 batch is 29.5 MiB)"
                )
            return member

    return BoundedTarInfo


def _member_name(info: tarfile.TarInfo) -> str | None:
    """The batch name for an accepted member, None for the root folder; raise for anything else."""
    name = info.name
    quoted = shown(name, 60)
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"member {quoted} has an absolute path; refusing the archive")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"member {quoted} escapes the target folder; refusing the archive")
    if info.issym() or info.islnk():
        raise ArchiveError(f"member {quoted} is a link; refusing the archive")
    if parts == [ROOT] and info.isdir():
        return None
    if len(parts) != 2 or parts[0] != ROOT:
        raise ArchiveError(f"member {quoted} is not inside {ROOT}/; refusing the archive")
    # Not isfile(), which also admits sparse members: a few bytes that read as gigabytes of holes.
    if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
        raise ArchiveError(f"member {quoted} is not a regular file; refusing the archive")
    if parts[1] not in REQUIRED_MEMBERS + OPTIONAL_MEMBERS:
        raise ArchiveError(
            f"unexpected member {quoted}: a CIFAR-10 archive holds only "
            + ", ".join(REQUIRED_MEMBERS + OPTIONAL_MEMBERS)
        )
    return parts[1]


class _Gunzip:
    """gzip's decompressed stream whose every failure is an ArchiveError (tarfile would turn zlib's
    into a ReadError that blames the tar), and stays one: reading again raises it again."""

    def __init__(self, stream: gzip.GzipFile, name: str) -> None:
        self.stream, self.name = stream, name
        self.failure: ArchiveError | None = None

    def read(self, size: int) -> bytes:
        # read, not read1: GzipFile's read1 returns 8 KiB at most, which makes 23,000 calls of the
        # real tar; read(size) returns size bytes (at most the bounded reader's CHUNK) or the end.
        if self.failure is None:
            try:
                return self.stream.read(size)
            except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as err:
                self.failure = ArchiveError(f"{self.name} is truncated or corrupt ({one_line(err)})")
        raise self.failure


def _too_big(name: str, what: str, limit: int) -> Callable[[], ArchiveError]:
    def error() -> ArchiveError:
        return ArchiveError(
            f"{name} {what} more than {size_text(limit)}, the limit for a CIFAR-10 archive "
            f"(the official one is {size_text(CIFAR10_ARCHIVE_BYTES)}, its tar 177 MiB)"
        )

    return error


def _read_members(path: Path, limits: ArchiveLimits, name: str) -> dict[str, bytes]:
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limits.archive_bytes:
            raise _too_big(name, f"is {size_text(size)},", limits.archive_bytes)()
        if handle.read(2) != b"\x1f\x8b":
            # What the file does hold is not quoted: it may be anything on this machine.
            raise ArchiveError(
                f"{name} is not a gzip archive (it does not start with gzip's bytes 1f 8b); "
                "was an error page or an empty file saved instead?"
            )
        handle.seek(0)
        # The file may grow while it is read: its bytes are bounded as they come, too.
        compressed = BoundedReader(
            handle, limits.archive_bytes, _too_big(name, "grew to", limits.archive_bytes)
        )
        with gzip.GzipFile(fileobj=compressed, mode="rb") as unzipped:  # type: ignore[arg-type]
            tar = BoundedReader(
                _Gunzip(unzipped, name),  # type: ignore[arg-type]
                limits.tar_bytes,
                _too_big(name, "decompresses to", limits.tar_bytes),
            )
            try:
                members = _tar_members(tar, name, limits)
            except ArchiveError as err:
                # Corruption anywhere (gzip's CRC and length are checked at its end) explains a
                # strange tar better than the tar's own complaint: the stream's error comes first,
                # unless it is only that the rest is longer than the limit.
                try:
                    _drain(tar)
                except ArchiveError as stream_error:
                    if tar.count <= tar.limit:
                        raise stream_error from None
                raise err
            _drain(tar)
    missing = [m for m in REQUIRED_MEMBERS if m not in members]
    if missing:
        raise ArchiveError(f"{name} lacks {', '.join(missing)}: not a complete CIFAR-10 archive")
    return members


def _drain(stream: BoundedReader) -> None:
    """Read to the end (bounded like the rest), so that gzip checks its CRC and length."""
    while stream.read(CHUNK):
        pass


def _tar_members(stream: BoundedReader, archive: str, limits: ArchiveLimits) -> dict[str, bytes]:
    members: dict[str, bytes] = {}
    try:
        # "r|": a stream read once, front to back, never sought; nothing is read ahead of the checks.
        with tarfile.open(
            fileobj=stream,  # type: ignore[arg-type]
            mode="r|",
            tarinfo=_bounded_tarinfo(limits),
            bufsize=CHUNK,  # tarfile's own 10 KiB would take 18,000 reads for the real tar
        ) as tar:
            for info in tar:
                name = _member_name(info)
                if name is None:
                    continue
                if name in members:
                    raise ArchiveError(f"member {shown(info.name, 60)} appears twice; refusing the archive")
                handle = tar.extractfile(info)
                assert handle is not None  # regular files always have contents
                members[name] = handle.read(info.size)
                if len(members[name]) != info.size:
                    raise ArchiveError(f"{archive} is truncated: {name} ends early")
    except tarfile.TarError as err:
        raise ArchiveError(f"{archive} is not a valid tar archive ({one_line(err)})") from None
    return members


def _check_classes(meta: dict) -> None:
    names = meta.get(b"label_names")
    if not isinstance(names, list):
        raise ArchiveError(f"{META}: no label_names list")
    if len(names) != len(CLASSES):
        raise ArchiveError(f"{META}: {len(names)} class names, where CIFAR-10 has {len(CLASSES)}")
    for index, (name, expected) in enumerate(zip(names, CLASSES, strict=True)):
        if name not in (expected, expected.encode()):
            raise ArchiveError(
                f"{META}: class names differ from CIFAR-10's: number {index} is {shown(name)}, "
                f"not {expected!r}"
            )


def _batch_arrays(batch: dict, member: str) -> tuple[np.ndarray, np.ndarray]:
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        kind = f"{data.dtype} array" if isinstance(data, np.ndarray) else type(data).__name__
        raise ArchiveError(f"{member}: 'data' must be a uint8 array, found {kind}")
    if data.ndim != 2 or data.shape[1] != PIXELS or data.shape[0] == 0:
        raise ArchiveError(f"{member}: 'data' has shape {data.shape}, expected (N, {PIXELS})")
    return data, _labels(labels, data.shape[0], member)


def _labels(labels: object, count: int, member: str) -> np.ndarray:
    """The labels as uint8, checked in Python before numpy converts them (numpy would raise
    OverflowError on an integer beyond 64 bits)."""
    if isinstance(labels, np.ndarray):
        if labels.dtype.kind not in "iu":
            raise ArchiveError(f"{member}: 'labels' must hold integers")
        if labels.ndim != 1:
            raise ArchiveError(f"{member}: 'labels' has shape {labels.shape}, expected ({count},)")
        values = labels
    elif isinstance(labels, list):
        if not all(type(v) is int for v in labels):
            raise ArchiveError(f"{member}: 'labels' must hold integers")
        values = labels
    else:
        raise ArchiveError(f"{member}: 'labels' must be a list, found {type(labels).__name__}")
    if len(values) != count:
        raise ArchiveError(f"{member}: {len(values)} labels for {count} images; they must match")
    bad = next((v for v in values if not 0 <= v <= 9), None)
    if bad is not None:
        raise ArchiveError(f"{member}: label {shown(int(bad))} is outside 0..9")
    return np.asarray(values, dtype=np.uint8)


def read_archive(
    path: str | Path, limits: ArchiveLimits = ARCHIVE_LIMITS, name: str | None = None
) -> Cifar10:
    """Read and check a cifar-10-python.tar.gz; raise ArchiveError on anything unexpected or over
    `limits`, OSError if path is not a regular file that can be read. Messages call the archive
    `name` (the URL it came from, say), by default its path."""
    members = _read_members(Path(path), limits, str(path) if name is None else name)
    _check_classes(_unpickle(members.pop(META), META, limits))
    # Each member's bytes are let go once its arrays are built (they keep only what they need).
    train = [_batch_arrays(_unpickle(members.pop(m), m, limits), m) for m in TRAIN_BATCHES]
    x_test, y_test = _batch_arrays(_unpickle(members.pop(TEST_BATCH), TEST_BATCH, limits), TEST_BATCH)
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
