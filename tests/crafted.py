"""Crafted inputs for the bounds tests: gzip bombs, tars whose headers declare more than they hold,
and pickles that nest, share or loop. Each is small on disk and cheap to build; what it would
cost to read without bounds is in its docstring."""

from __future__ import annotations

import gzip
import struct
import tarfile
from pathlib import Path

from convlab.cifar import META, ROOT
from convlab.synthetic import write_archive

MiB = 1 << 20


def gzip_bomb(path: Path, decompressed: int, head: bytes = b"") -> Path:
    """A .tar.gz of `head` and then `decompressed` zero bytes, about 1/1000 of that on disk: gzip
    members of 1 MiB of zeros, one after another (a valid multi-member gzip, like `cat a.gz b.gz`)."""
    member = gzip.compress(bytes(MiB), compresslevel=9, mtime=0)
    with path.open("wb") as out:
        if head:
            out.write(gzip.compress(head, mtime=0))
        for _ in range(decompressed // MiB):
            out.write(member)
    return path


def tar_gz(path: Path, blocks: list[bytes]) -> Path:
    """Raw tar blocks (headers and data, any of them crafted), end-of-archive added, gzipped."""
    raw = b"".join(blocks) + bytes(2 * tarfile.BLOCKSIZE)
    path.write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
    return path


def header(name: str, size: int, kind: bytes = tarfile.REGTYPE, form: int = tarfile.GNU_FORMAT) -> bytes:
    """A tar header that declares `size` bytes, without them: GNU format writes sizes of 8 GiB and
    more in base-256, pax format in an extended header before it."""
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(format=form, encoding="utf-8", errors="surrogateescape")


def pax_chain(count: int) -> bytes:
    """`count` pax extended headers in a row before one member: tarfile reads each by recursion."""
    record = b"20 comment=crafted.\n"  # a pax record: its own length, then key=value
    block = record + bytes(tarfile.BLOCKSIZE - len(record))
    ext = tarfile.TarInfo("././@PaxHeader")
    ext.type, ext.size = tarfile.XHDTYPE, len(record)
    one = ext.tobuf(format=tarfile.USTAR_FORMAT) + block
    return one * count + header(f"{ROOT}/readme.html", 0, form=tarfile.USTAR_FORMAT)


def with_meta(path: Path, label_names: bytes) -> Path:
    """A small archive, right in all but batches.meta, whose label_names is the given pickled
    value (opcodes for one object, protocol 2, memo indices from 100 up)."""
    meta = b"\x80\x02}U\x0blabel_names" + label_names + b"s."  # {b'label_names': value}
    return write_archive(path, per_batch=20, test_size=20, members={META: meta})


def nested_lists(depth: int) -> bytes:
    """[[[...]]] `depth` deep: EMPTY_LIST `depth` times, then APPEND each into the one below."""
    return b"]" * depth + b"a" * (depth - 1)


def shared_lists(levels: int, leaf: int = MiB) -> bytes:
    """A list of two references to a list of two references to ... a bytes of `leaf` bytes:
    `levels` lists in the pickle, 2 ** levels references to the leaf for whatever walks it
    (repr, a comparison, numpy): 1 TiB from 20 levels of a 1 MiB leaf, 1 MiB of pickle."""
    out = b"(" + b"T" + struct.pack("<I", leaf) + bytes(leaf) + b"l" + _binput(100) + b"0"  # [leaf]
    for level in range(1, levels + 1):
        out += b"(" + _binget(99 + level) * 2 + b"l"
        if level < levels:
            out += _binput(100 + level) + b"0"  # kept in the memo only (POP), for the next level
    return out


def _binput(index: int) -> bytes:
    return b"r" + struct.pack("<I", index)  # LONG_BINPUT


def _binget(index: int) -> bytes:
    return b"j" + struct.pack("<I", index)  # LONG_BINGET
