"""The archive reader accepts CIFAR-10 and refuses everything else with a clear error, running no code."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import signal
import tarfile
from collections.abc import Iterator
from pathlib import Path

import crafted
import numpy as np
import pytest
from crafted import MiB

from convlab.bounds import ARCHIVE_LIMITS, ArchiveLimits, size_text
from convlab.cifar import CLASSES, ArchiveError, Cifar10, read_archive
from convlab.synthetic import batch_bytes, meta_bytes, synthetic_images, write_archive


def test_reads_all_images_in_official_order(small_archive: Path) -> None:
    data = read_archive(small_archive)
    assert data.x_train.shape == (1000, 3072) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (300, 3072)
    expected, labels = synthetic_images(1000, seed=0)
    assert np.array_equal(data.x_train, expected)
    assert np.array_equal(data.y_train, labels)


def test_content_checksum_is_sha256_of_the_four_arrays_in_order() -> None:
    x = np.arange(6, dtype=np.uint8).reshape(2, 3)
    y = np.array([1, 2], dtype=np.uint8)
    import hashlib

    expected = hashlib.sha256(x.tobytes() + y.tobytes() + x.tobytes() + y.tobytes()).hexdigest()
    assert Cifar10(x, y, x, y).content_sha256() == expected


def test_repacked_archive_has_the_same_content_checksum(tmp_path: Path, small_archive: Path) -> None:
    repacked = tmp_path / "repacked.tar.gz"
    with tarfile.open(small_archive) as source, tarfile.open(repacked, "w:gz", compresslevel=9) as target:
        for info in reversed(source.getmembers()):  # another order, another compression
            target.addfile(info, source.extractfile(info) if info.isfile() else None)
    assert repacked.read_bytes() != small_archive.read_bytes()
    assert read_archive(repacked).content_sha256() == read_archive(small_archive).content_sha256()


class _Exploit:
    """Unpickling this would run os.system: the reader must refuse before that happens."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        import os

        return (os.system, (f"touch {self.marker}",))


def _raw_tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _valid_members() -> dict[str, bytes]:
    x, y = synthetic_images(20, seed=3)
    members = {f"data_batch_{i}": batch_bytes(x, y, "b") for i in range(1, 6)}
    members["test_batch"] = batch_bytes(x, y, "t")
    members["batches.meta"] = meta_bytes(20)
    return members


def _archive_with(tmp_path: Path, **replace: bytes) -> Path:
    return write_archive(tmp_path / "a.tar.gz", per_batch=20, test_size=20, members=replace)


def test_truncated_archive(tmp_path: Path, small_archive: Path) -> None:
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(small_archive.read_bytes()[: small_archive.stat().st_size // 2])
    with pytest.raises(ArchiveError, match="truncated or corrupt"):
        read_archive(cut)


def test_corrupt_gzip(tmp_path: Path, small_archive: Path) -> None:
    data = bytearray(small_archive.read_bytes())
    data[1000:1100] = bytes(100)
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="truncated or corrupt"):
        read_archive(bad)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a gzip archive"),
        (b"<!DOCTYPE html><html>404</html>", "error page"),
        (b"PK\x03\x04zipfile", "not a gzip archive"),
    ],
)
def test_not_a_gzip(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.tar.gz"
    path.write_bytes(content)
    with pytest.raises(ArchiveError, match=message):
        read_archive(path)


def test_gzip_but_not_tar(tmp_path: Path) -> None:
    path = tmp_path / "x.tar.gz"
    path.write_bytes(gzip.compress(b"just text, no tar headers" * 40))
    with pytest.raises(ArchiveError, match="not a valid tar archive"):
        read_archive(path)


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("cifar-10-batches-py/../../evil", tarfile.REGTYPE, "escapes the target"),
        ("../data_batch_1", tarfile.REGTYPE, "escapes the target"),
        ("/etc/cron.d/evil", tarfile.REGTYPE, "absolute path"),
        ("cifar-10-batches-py/data_batch_6", tarfile.REGTYPE, "unexpected member"),
        ("other/data_batch_1", tarfile.REGTYPE, "not inside cifar-10-batches-py"),
        ("cifar-10-batches-py/readme.html", tarfile.SYMTYPE, "is a link"),
        ("cifar-10-batches-py/readme.html", tarfile.LNKTYPE, "is a link"),
        ("cifar-10-batches-py/readme.html", tarfile.FIFOTYPE, "not a regular file"),
        # isfile() is true of both; a sparse member's few bytes can read as gigabytes of holes
        ("cifar-10-batches-py/readme.html", tarfile.GNUTYPE_SPARSE, "not a regular file"),
        ("cifar-10-batches-py/readme.html", tarfile.CONTTYPE, "not a regular file"),
    ],
)
def test_member_that_could_escape_or_does_not_belong(
    tmp_path: Path, name: str, kind: bytes, message: str
) -> None:
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for member, data in _valid_members().items():
        entries.append((tarfile.TarInfo(f"cifar-10-batches-py/{member}"), data))
    odd = tarfile.TarInfo(name)
    odd.type = kind
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        odd.linkname = "/etc/passwd"
    entries.insert(0, (odd, b"x" if kind == tarfile.REGTYPE else None))
    with pytest.raises(ArchiveError, match=message):
        read_archive(_raw_tar(tmp_path / "a.tar.gz", entries))


def test_missing_batch(tmp_path: Path) -> None:
    members = _valid_members()
    del members["data_batch_3"]
    entries = [(tarfile.TarInfo(f"cifar-10-batches-py/{m}"), d) for m, d in members.items()]
    with pytest.raises(ArchiveError, match="lacks data_batch_3"):
        read_archive(_raw_tar(tmp_path / "a.tar.gz", entries))


def test_duplicate_member(tmp_path: Path) -> None:
    members = _valid_members()
    entries = [(tarfile.TarInfo(f"cifar-10-batches-py/{m}"), d) for m, d in members.items()]
    entries.append((tarfile.TarInfo("cifar-10-batches-py/test_batch"), members["test_batch"]))
    with pytest.raises(ArchiveError, match="appears twice"):
        read_archive(_raw_tar(tmp_path / "a.tar.gz", entries))


def test_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _Exploit(marker), b"labels": []}, protocol=2)
    with pytest.raises(ArchiveError, match="posix.system|os.system|refusing to load"):
        read_archive(_archive_with(tmp_path, data_batch_2=evil))
    assert not marker.exists()


@pytest.mark.parametrize(
    "global_name",
    [
        b"builtins\neval",
        b"subprocess\nPopen",
        b"numpy\nload",
        b"numpy\nfrombuffer",
        b"numpy.core.numeric\nfrombuffer",
        b"_codecs\ndecode",
        b"codecs\nencode",
    ],
)
def test_any_global_beyond_the_stand_ins_is_refused(tmp_path: Path, global_name: bytes) -> None:
    crafted = b"\x80\x02c" + global_name + b"\nq\x00."
    with pytest.raises(ArchiveError, match="never uses"):
        read_archive(_archive_with(tmp_path, test_batch=crafted))


@pytest.mark.parametrize("global_name", [b"_codecs\nencode", b"numpy._core.numeric\n_frombuffer"])
def test_an_allowed_global_alone_is_not_a_batch(tmp_path: Path, global_name: bytes) -> None:
    """A pickle of the bare stand-in (not a call of it) is refused as not being a dict."""
    crafted = b"\x80\x02c" + global_name + b"\nq\x00."
    with pytest.raises(ArchiveError, match="expected a dict, found function"):
        read_archive(_archive_with(tmp_path, test_batch=crafted))


def _batch(data: object, labels: object) -> bytes:
    from convlab.synthetic import _pickle

    return _pickle({b"batch_label": b"x", b"data": data, b"labels": labels, b"filenames": []})


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (_batch(np.zeros((20, 3072), np.float32), [0] * 20), "uint8 array, found float32"),
        (_batch(np.zeros((20, 1024), np.uint8), [0] * 20), r"shape \(20, 1024\)"),
        (_batch(np.zeros((20, 32, 32, 3), np.uint8), [0] * 20), "shape"),
        (_batch(np.zeros((0, 3072), np.uint8), []), "shape"),
        (_batch(np.zeros((20, 3072), np.uint8), [0] * 19), "19 labels for 20 images"),
        (_batch(np.zeros((20, 3072), np.uint8), [10] * 20), "label 10 is outside 0..9"),
        (_batch(np.zeros((20, 3072), np.uint8), [-1] * 20), "label -1 is outside 0..9"),
        (_batch(np.zeros((20, 3072), np.uint8), ["cat"] * 20), "must hold integers"),
        (_batch([[0] * 3072] * 20, [0] * 20), "uint8 array, found list"),
        (b"\x80\x02]q\x00.", "expected a dict"),
        (b"not a pickle at all", "not a readable pickle"),
    ],
)
def test_malformed_batch(tmp_path: Path, batch: bytes, message: str) -> None:
    with pytest.raises(ArchiveError, match=message) as err:
        read_archive(_archive_with(tmp_path, data_batch_4=batch))
    assert "data_batch_4" in str(err.value)


def test_wrong_class_names(tmp_path: Path) -> None:
    from convlab.synthetic import _pickle

    meta = _pickle({b"label_names": [b"a"] * 10})
    with pytest.raises(ArchiveError, match="class names"):
        read_archive(_archive_with(tmp_path, **{"batches.meta": meta}))


class _FakeArray:
    """Pickles like a numpy array, with whatever state a crafted archive might claim."""

    def __init__(self, state: tuple, cls: object = np.ndarray) -> None:
        self.state, self.cls = state, cls

    def __reduce__(self) -> tuple:
        return (np._core.multiarray._reconstruct, (self.cls, (0,), b"b"), self.state)


@pytest.mark.parametrize(
    ("state", "cls", "message"),
    [
        ((1, (20, 3072), np.dtype("u1"), False, b"\0" * 100), np.ndarray, "holds 100 bytes, not 61440"),
        ((1, (20, 3072), np.dtype("O"), False, b""), np.ndarray, "dtype 'O8'"),
        ((1, (20, 3072), np.dtype(">u2"), False, b"\0" * 122880), np.ndarray, "dtype 'u2'"),
        ((1, (-1, 3072), np.dtype("u1"), False, b""), np.ndarray, "malformed numpy array shape"),
        ((1, (20, 3072)), np.ndarray, "malformed numpy array state"),
        ((1, (20, 3072), np.dtype("u1"), False, b"\0" * 61440), np.dtype, "other than a numpy array"),
    ],
)
def test_crafted_array_state_is_refused_before_numpy_sees_it(tmp_path: Path, state, cls, message) -> None:
    from convlab.synthetic import _pickle

    batch = _pickle({b"data": _FakeArray(state, cls), b"labels": [0] * 20})
    with pytest.raises(ArchiveError, match=message):
        read_archive(_archive_with(tmp_path, data_batch_1=batch))


# Re-pickled copies: the same images and labels written by Python 3's pickle, as a repacked
# archive would be. Each protocol spells arrays and bytes its own way (protocol 2 by
# _codecs.encode, protocol 5 by numpy's _frombuffer); the globals each must name are asserted so
# that the test cannot pass by never reaching the stand-in it protects.
_SPELLINGS = {2: b"_codecs", 3: b"_reconstruct", 4: b"_reconstruct", 5: b"_frombuffer"}


@pytest.fixture(scope="module")
def official_content(tmp_path_factory: pytest.TempPathFactory) -> Cifar10:
    return read_archive(write_archive(tmp_path_factory.mktemp("a") / "a.tar.gz", per_batch=20, test_size=30))


def _assert_same(data: Cifar10, expected: Cifar10) -> None:
    for name in ("x_train", "y_train", "x_test", "y_test"):
        actual, wanted = getattr(data, name), getattr(expected, name)
        assert actual.dtype == wanted.dtype and np.array_equal(actual, wanted), name
    assert data.content_sha256() == expected.content_sha256()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_archive_repickled_by_python3_reads_the_same(
    tmp_path: Path, official_content: Cifar10, protocol: int
) -> None:
    x, y = synthetic_images(20, seed=0)
    assert _SPELLINGS[protocol] in batch_bytes(x, y, "b", protocol=protocol)
    path = write_archive(tmp_path / "a.tar.gz", per_batch=20, test_size=30, protocol=protocol)
    _assert_same(read_archive(path), official_content)


@pytest.mark.parametrize("protocol", [2, 5])
def test_labels_repickled_as_a_numpy_array_read_the_same(
    tmp_path: Path, official_content: Cifar10, protocol: int
) -> None:
    """A repack that kept the labels as an int64 array instead of the official list."""
    from convlab.synthetic import _pickle

    x_test, y_test = synthetic_images(30, seed=1)
    batch = {b"batch_label": b"t", b"data": x_test, b"labels": y_test.astype(np.int64), b"filenames": []}
    path = _archive_with_test_batch(tmp_path, _pickle(batch, protocol))
    _assert_same(read_archive(path), official_content)


def _archive_with_test_batch(tmp_path: Path, batch: bytes) -> Path:
    return write_archive(tmp_path / "a.tar.gz", per_batch=20, test_size=30, members={"test_batch": batch})


def _as_numpy1(pickled: bytes) -> bytes:
    """numpy 1 named its modules numpy.core.*, numpy 2 names them numpy._core.*.

    Only valid on protocol 2, whose GLOBAL opcode spells names as text without a length prefix.
    """
    assert b"numpy._core." in pickled
    return pickled.replace(b"numpy._core.", b"numpy.core.")


class _FakeBuffer:
    """Pickles as numpy's _frombuffer call, with whatever arguments a crafted archive might give."""

    def __init__(self, *args: object) -> None:
        self.args = args

    def __reduce__(self) -> tuple:
        return (np._core.numeric._frombuffer, self.args)


def test_numpy1_module_names_are_accepted(tmp_path: Path, official_content: Cifar10) -> None:
    x_test, y_test = synthetic_images(30, seed=1)
    reconstructed = _as_numpy1(batch_bytes(x_test, y_test, "t", protocol=2))
    assert b"numpy.core.multiarray\n_reconstruct" in reconstructed
    _assert_same(read_archive(_archive_with_test_batch(tmp_path, reconstructed)), official_content)

    from convlab.synthetic import _pickle

    data = _FakeBuffer(x_test.tobytes(), np.dtype("u1"), x_test.shape, "C")
    frombuffer = _as_numpy1(_pickle({b"data": data, b"labels": [int(v) for v in y_test]}, protocol=2))
    assert b"numpy.core.numeric\n_frombuffer" in frombuffer
    _assert_same(read_archive(_archive_with_test_batch(tmp_path, frombuffer)), official_content)


def test_fortran_ordered_buffer_is_read_in_its_order(tmp_path: Path, official_content: Cifar10) -> None:
    from convlab.synthetic import _pickle

    x_test, y_test = synthetic_images(30, seed=1)
    batch = {b"data": np.asfortranarray(x_test), b"labels": [int(v) for v in y_test]}
    pickled = _pickle(batch, protocol=5)
    assert b"_frombuffer" in pickled
    _assert_same(read_archive(_archive_with_test_batch(tmp_path, pickled)), official_content)


class _FakeEncode:
    """Pickles as a _codecs.encode call with arbitrary arguments (Python 3's spelling of bytes)."""

    def __init__(self, *args: object) -> None:
        self.args = args

    def __reduce__(self) -> tuple:
        import codecs

        return (codecs.encode, self.args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data", "utf-8"), "not the \\(str, 'latin1'\\)"),
        (("eJwDAAAAAAE=", "base64"), "not the \\(str, 'latin1'\\)"),
        (("x\x9c\x03\x00\x00\x00\x00\x01", "zlib"), "not the \\(str, 'latin1'\\)"),
        ((b"data", "latin1"), "not the \\(str, 'latin1'\\)"),
        ((3, "latin1"), "not the \\(str, 'latin1'\\)"),
        (("data",), "not the \\(str, 'latin1'\\)"),
        (("data", "latin1", "strict"), "not the \\(str, 'latin1'\\)"),
        (("\u0101", "latin1"), "beyond latin-1"),
    ],
)
def test_codecs_encode_other_than_bytes_spelling_is_refused(
    tmp_path: Path, args: tuple, message: str
) -> None:
    from convlab.synthetic import _pickle

    batch = _pickle({b"data": _FakeEncode(*args), b"labels": [0] * 20}, protocol=2)
    assert b"_codecs\nencode" in batch
    with pytest.raises(ArchiveError, match=message) as err:
        read_archive(_archive_with(tmp_path, data_batch_5=batch))
    assert "data_batch_5" in str(err.value)


_PIXELS = np.zeros((20, 3072), np.uint8).tobytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((_PIXELS[:100], np.dtype("u1"), (20, 3072), "C"), "holds 100 bytes, not 61440"),
        ((_PIXELS + b"\0", np.dtype("u1"), (20, 3072), "C"), "holds 61441 bytes, not 61440"),
        ((bytearray(100), np.dtype("u1"), (20, 3072), "C"), "holds 100 bytes, not 61440"),
        ((_PIXELS, np.dtype("O"), (20, 3072), "C"), "dtype 'O8'"),
        ((_PIXELS, np.dtype(">u2"), (20, 1536), "C"), "dtype 'u2'"),
        ((_PIXELS, "u1", (20, 3072), "C"), "dtype 'u1'"),
        ((_PIXELS, np.dtype("u1"), (-1, 3072), "C"), "malformed numpy array shape"),
        ((_PIXELS, np.dtype("u1"), [20, 3072], "C"), "malformed numpy array shape"),
        ((_PIXELS, np.dtype("u1"), (20.0, 3072), "C"), "malformed numpy array shape"),
        # huge sizes would take minutes to multiply before the byte count could be compared
        ((_PIXELS, np.dtype("u1"), (2**100000, 2**100000), "C"), "malformed numpy array shape a tuple of 2"),
        ((_PIXELS, np.dtype("u1"), (1,) * 5 + (20, 3072), "C"), "malformed numpy array shape"),
        ((_PIXELS.decode("latin1"), np.dtype("u1"), (20, 3072), "C"), "malformed numpy array data"),
        ((list(range(10)), np.dtype("u1"), (10,), "C"), "malformed numpy array data"),
        ((_PIXELS, np.dtype("u1"), (20, 3072), "K"), "order 'K'"),
        ((_PIXELS, np.dtype("u1"), (20, 3072), None), "order None"),
        ((_PIXELS, np.dtype("u1"), (3072, 20), "K", (1, 0)), "called with 5 arguments"),
        ((_PIXELS, np.dtype("u1"), (20, 3072)), "called with 3 arguments"),
        ((_PIXELS, np.dtype("u1"), (20, 3072), "C", None, None), "called with 6 arguments"),
    ],
)
def test_crafted_frombuffer_is_refused_before_numpy_sees_it(
    tmp_path: Path, args: tuple, message: str
) -> None:
    batch = pickle.dumps({b"data": _FakeBuffer(*args), b"labels": [0] * 20}, protocol=5)
    with pytest.raises(ArchiveError, match=message) as err:
        read_archive(_archive_with(tmp_path, data_batch_2=batch))
    assert "data_batch_2" in str(err.value)


def test_out_of_band_buffer_is_refused(tmp_path: Path) -> None:
    """Protocol 5 can leave an array's bytes outside the pickle; an archive has nowhere to keep them."""
    buffers: list[pickle.PickleBuffer] = []
    data = np.zeros((20, 3072), np.uint8)
    batch = pickle.dumps({b"data": data, b"labels": [0] * 20}, protocol=5, buffer_callback=buffers.append)
    assert buffers  # the data really went out of band
    with pytest.raises(ArchiveError, match="not a readable pickle"):
        read_archive(_archive_with(tmp_path, data_batch_2=batch))


# --- bounds: each limit from convlab.bounds refuses in one line that names it ---------------------
# Cases that would take gigabytes if a bound failed run in a capped child process instead
# (tests/test_bounds.py); these fail small if they fail.


def _one_line_error(path: Path, limits: ArchiveLimits = ARCHIVE_LIMITS) -> str:
    with pytest.raises(ArchiveError) as err:
        read_archive(path, limits)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_archive_file_over_the_limit_is_refused_before_it_is_read(
    tmp_path: Path, small_archive: Path
) -> None:
    size = size_text(small_archive.stat().st_size)
    message = _one_line_error(small_archive, ArchiveLimits(archive_bytes=1000))
    assert message.startswith(
        f"{small_archive} is {size}, more than 1000 bytes, the limit for a CIFAR-10 archive"
    )


def test_gzip_bomb_stops_at_the_tar_limit(tmp_path: Path) -> None:
    bomb = crafted.gzip_bomb(tmp_path / "bomb.tar.gz", 64 * MiB)
    message = _one_line_error(bomb, ArchiveLimits(tar_bytes=4 * MiB))
    assert message == (
        f"{bomb} decompresses to more than 4 MiB, the limit for a CIFAR-10 archive "
        "(the official one is 163 MiB, its tar 177 MiB)"
    )


@pytest.mark.parametrize("form", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu-base256", "pax"])
def test_member_declaring_gigabytes_is_refused_before_a_byte_is_read(tmp_path: Path, form: int) -> None:
    blocks = [crafted.header("cifar-10-batches-py/data_batch_1", 8 << 30, form=form), bytes(512)]
    message = _one_line_error(crafted.tar_gz(tmp_path / "a.tar.gz", blocks))
    assert message == (
        "member 'cifar-10-batches-py/data_batch_1' declares 8 GiB, more than the 96 MiB limit for one "
        "member (a CIFAR-10 batch is 29.5 MiB)"
    )


def test_extended_header_declaring_more_than_a_path_is_refused(tmp_path: Path) -> None:
    blocks = [crafted.header("././@PaxHeader", 1 << 30, kind=tarfile.XHDTYPE, form=tarfile.USTAR_FORMAT)]
    message = _one_line_error(crafted.tar_gz(tmp_path / "a.tar.gz", blocks))
    assert message == "a tar extended header declares 1 GiB, more than the 64 KiB limit for one"


def test_chain_of_extended_headers_stops_at_the_header_limit(tmp_path: Path) -> None:
    """tarfile follows pax headers by recursion: 2,000 in a row were a RecursionError."""
    message = _one_line_error(crafted.tar_gz(tmp_path / "a.tar.gz", [crafted.pax_chain(2000)]))
    assert message == "the tar has more than 64 headers, the limit (CIFAR-10's has 9)"


def test_pickle_with_more_opcodes_than_the_limit(tmp_path: Path) -> None:
    labels = b"(" + b"K\x00" * 2000 + b"l"  # a list of 2,000 zeros: 2,003 opcodes
    message = _one_line_error(
        crafted.with_meta(tmp_path / "a.tar.gz", labels), ArchiveLimits(pickle_ops=1000)
    )
    assert (
        message
        == "batches.meta: pickle has more than 1,000 opcodes, the limit (a CIFAR-10 batch has about 30,000)"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        # L = []; L.append(L): a loop for whatever walks it
        (b"]r\x07\x00\x00\x00j\x07\x00\x00\x00a", "pickle places an object inside itself"),
        # L = []; t = (L,); L.append(1): t would change after the check counted it
        (
            b"]r\x07\x00\x00\x00\x85j\x07\x00\x00\x00K\x01a0",
            "pickle changes an object after placing it inside another",
        ),
        (b"j\x07\x00\x00\x00", "not a readable pickle (memo entry 7 is read before it is written)"),
        (b"a", "not a readable pickle (an opcode needs an object where there is none)"),
    ],
)
def test_pickle_that_loops_or_changes_what_it_shared_is_refused(
    tmp_path: Path, value: bytes, message: str
) -> None:
    assert _one_line_error(crafted.with_meta(tmp_path / "a.tar.gz", value)).startswith(
        f"batches.meta: {message}"
    )


def test_label_beyond_64_bits_is_refused_in_one_line(tmp_path: Path) -> None:
    """numpy raised OverflowError converting it; Python refuses to print it (over 4,300 digits)."""
    batch = _batch(np.zeros((20, 3072), np.uint8), [2**20000] * 20)
    message = _one_line_error(_archive_with(tmp_path, data_batch_3=batch))
    assert message == "data_batch_3: label an integer of 20001 bits is outside 0..9"


def test_class_names_of_another_count(tmp_path: Path) -> None:
    from convlab.synthetic import _pickle

    meta = _pickle({b"label_names": [c.encode() for c in CLASSES] + [b"x" * 10**6]})
    message = _one_line_error(_archive_with(tmp_path, **{"batches.meta": meta}))
    assert message == "batches.meta: 11 class names, where CIFAR-10 has 10"


def test_a_file_that_is_not_an_archive_is_not_quoted(tmp_path: Path) -> None:
    """file:///etc/passwd put its first 60 bytes in the message."""
    secret = tmp_path / "passwd"
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\nsecret-token-1234\n")
    message = _one_line_error(secret)
    assert message == (
        f"{secret} is not a gzip archive (it does not start with gzip's bytes 1f 8b); "
        "was an error page or an empty file saved instead?"
    )


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "cifar-10-python.tar.gz"
    os.mkfifo(fifo)
    with _alarm(5), pytest.raises(OSError) as err:
        read_archive(fifo)
    assert (err.value.strerror, err.value.filename) == ("a FIFO, not a regular file", str(fifo))


@contextlib.contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the test run) if the block takes longer than seconds."""

    def expire(*_: object) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
