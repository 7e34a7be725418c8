"""What any input may be, from what CIFAR-10 is, and the one reader that holds a stream to it.

Every limit on what a mirror, a URL or a file on disk can make convlab read, store or wait for is
named here, once, with why it fits the real archive. Each one that is reached ends the work with
one line that names it. The sizes of the real thing, for reference:

- the official cifar-10-python.tar.gz: 170,498,071 bytes (163 MiB); its tar: 185.7 MB (177 MiB);
- one batch pickle (10,000 x 3072 uint8 pixels, labels, file names): 30.95 MB and about 30,000
  pickle opcodes as the official archive pickles it (Python 2, protocol 2); re-pickled by Python 3,
  30.9 MB at protocols 3 to 5, 44.7 MB and 90,152 opcodes at protocol 2 (which spells bytes as
  latin-1 text, stored as UTF-8: a pixel of 128 or more takes two bytes). At worst, every pixel
  128 or more, such a batch is 62 MB and six of them 372 MB, which gzip -0 stores as they are.

Tests pass smaller limits through ArchiveLimits and DownloadBudget instead of changing these.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

MiB = 1 << 20
CIFAR10_ARCHIVE_BYTES = 170_498_071  # the official archive; quoted in messages as what to expect

# --- the archive, as a file and as the tar inside it -------------------------------------------
# A .tar.gz on disk or on the wire: 3.1 times the official archive, 1.4 times the largest repack
# that still holds CIFAR-10 (six worst-case protocol-2 batches stored by gzip -0, 372 MB). It is
# also the download cap, so the disk a download can fill is this much.
MAX_ARCHIVE_BYTES = 512 * MiB
# The decompressed tar, counted as it streams (a gzip bomb stops here): the same 512 MiB for the
# same reason; the official tar is 185.7 MB.
MAX_TAR_BYTES = 512 * MiB
# One member's declared size, checked before any of it is read: a batch is 31 MB, 45 MB re-pickled
# at protocol 2, 62 MB at that protocol's worst; 96 MiB is 1.6 times that worst.
MAX_MEMBER_BYTES = 96 * MiB
# Tar headers in all: CIFAR-10 has 9 entries (the folder, six batches, batches.meta, readme.html);
# a pax-format repack adds at most one extended header to each, 18. tarfile follows a chain of
# extended headers by recursion, so this also keeps a crafted chain from a RecursionError.
MAX_TAR_HEADERS = 64
# A pax or GNU long-name header holds a path (PATH_MAX is 4 KiB) and a few short records.
MAX_EXTENDED_HEADER_BYTES = 64 * 1024

# --- the pickles inside: what the restricted unpickler may build -------------------------------
# Opcodes per pickle, which bounds the objects built and the time to check them: 30,108 in an
# official batch, 90,152 in the most verbose repack (protocol 2 by Python 3, 8 per file name).
MAX_PICKLE_OPS = 300_000
# Nesting of containers: a batch nests 5 deep in every spelling (the dict > an array's state >
# its dtype > the dtype's arguments); three times that, far below a depth any walk of it could mind.
MAX_PICKLE_DEPTH = 16
# What a pickle amounts to when every shared reference is counted each time it is used (bytes
# and text by their length, anything else as 1): 31 MB for a batch in any of its spellings, because
# CIFAR-10 shares only small things (a dtype, the 'latin1' codec name). A pickle that refers to
# one big object many times, or nests shared lists to double its size at each level, stops here.
MAX_PICKLE_EXPANDED_BYTES = 96 * MiB
# numpy arrays: CIFAR-10 has (N, 3072) images and, in some repacks, (N,) labels.
MAX_ARRAY_DIMS = 4

# --- the download ------------------------------------------------------------------------------
# A stall: less than STALL_BYTES in STALL_SECONDS (no read waits longer, either). Any working
# link moves megabytes a minute; a dead or dripping one is given up on and resumed, attempt by
# attempt.
STALL_SECONDS = 60.0
STALL_BYTES = 64 * 1024
# All attempts together, retries and their pauses included: the official archive at 24 KB/s.
# Slower than that, a copy on disk is the way (every network failure says how).
DEADLINE_SECONDS = 2 * 3600.0

CHUNK = 1 << 20  # the most one read of a bounded reader returns


@dataclass(frozen=True)
class ArchiveLimits:
    """What a CIFAR-10 archive may be: its file, its tar, its members and their pickles."""

    archive_bytes: int = MAX_ARCHIVE_BYTES
    tar_bytes: int = MAX_TAR_BYTES
    member_bytes: int = MAX_MEMBER_BYTES
    tar_headers: int = MAX_TAR_HEADERS
    extended_header_bytes: int = MAX_EXTENDED_HEADER_BYTES
    pickle_ops: int = MAX_PICKLE_OPS
    pickle_depth: int = MAX_PICKLE_DEPTH
    pickle_expanded_bytes: int = MAX_PICKLE_EXPANDED_BYTES


@dataclass(frozen=True)
class DownloadBudget:
    """What one download may take: bytes (on disk too), time without progress, and time in all."""

    max_bytes: int = MAX_ARCHIVE_BYTES
    stall_seconds: float = STALL_SECONDS
    stall_bytes: int = STALL_BYTES
    deadline_seconds: float = DEADLINE_SECONDS


ARCHIVE_LIMITS = ArchiveLimits()
DOWNLOAD_BUDGET = DownloadBudget()


class BoundedReader:
    """Reads at most `limit` bytes of `source`; a read that would go past it raises `over()`.

    Each read returns at most min(size, CHUNK) bytes, from one read of the source where it has
    read1 (a socket, a buffered file, gzip), so a caller sees every arrival as it comes and a
    `size` of gigabytes allocates nothing. b"" means the end. Once over, it stays over.
    """

    def __init__(self, source: BinaryIO, limit: int, over: Callable[[], Exception]) -> None:
        self.source = source
        self.limit = limit
        self.over = over
        self.count = 0
        self._read = getattr(source, "read1", None) or source.read

    def read(self, size: int = -1) -> bytes:
        if self.count > self.limit:
            raise self.over()
        want = CHUNK if size < 0 else min(size, CHUNK)
        # One byte beyond the limit is enough to know the source has more than it may.
        data = self._read(min(want, self.limit - self.count + 1))
        self.count += len(data)
        if self.count > self.limit:
            raise self.over()
        return data


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open path for reading if it is a regular file, or raise OSError saying what it is instead.

    A FIFO would block the open (and then the reads) for as long as no one writes to it, and a
    device such as /dev/zero never ends; neither is opened for reading. The type is checked before
    the open (opening some devices does something) and again on the open descriptor, which is
    opened without blocking so that a FIFO swapped in between cannot hang it.
    """
    _require_regular(os.stat(path).st_mode, path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        _require_regular(os.fstat(fd).st_mode, path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


_KINDS = {
    stat.S_ISDIR: "a directory",
    stat.S_ISFIFO: "a FIFO",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}


def _require_regular(mode: int, path: str | os.PathLike[str]) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS.items() if test(mode)), "not a file")
    raise OSError(errno.EINVAL, f"{kind}, not a regular file", os.fspath(path))


def size_text(count: int) -> str:
    """A byte count for a message: 512 MiB, 64 KiB, 8 GiB, 1.5 MiB, 1000 bytes."""
    for unit, size in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count} bytes"


def shown(value: object, limit: int = 40) -> str:
    """A value from an untrusted input, for a one-line message: at most `limit` characters of it,
    and never a walk into a structure, so a huge, nested or self-referring value cannot make the
    message itself fail or run long (Python refuses to print integers of over 4,300 digits)."""
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 64 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, (str, bytes, bytearray)):
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    if isinstance(value, tuple) and len(value) <= 8 and all(_small_int(v) for v in value):
        return repr(value)  # a shape
    if isinstance(value, (tuple, list, dict, set, frozenset)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def _small_int(value: object) -> bool:
    return type(value) is int and value.bit_length() <= 64
