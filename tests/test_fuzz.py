"""Property tests: no archive bytes and no params values make the code fail in an unexpected way."""

from __future__ import annotations

import copy
import gzip
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convlab.cifar import ArchiveError, read_archive
from convlab.params import ParamsError, parse_params
from convlab.synthetic import write_archive

PROJECT = Path(__file__).parents[1]
RAW = yaml.safe_load((PROJECT / "params.yaml").read_text())


def _tiny_archive(protocol: int | None = None) -> bytes:
    path = Path(tempfile.mkdtemp()) / "fuzz.tar.gz"
    return write_archive(path, per_batch=4, test_size=4, protocol=protocol).read_bytes()


TINY_BYTES = _tiny_archive()
# The tar inside, as the official archive pickles it (None) and as Python 3 re-pickles it at
# protocol 2 (bytes through _codecs.encode) and 5 (arrays through numpy's _frombuffer): every
# stand-in the unpickler answers with gets damaged input.
TAR_BYTES = {p: gzip.decompress(TINY_BYTES if p is None else _tiny_archive(p)) for p in (None, 2, 5)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(TINY_BYTES) - 1), st.integers(0, 255)), min_size=1, max_size=8
    ),
    cut=st.one_of(st.none(), st.integers(0, len(TINY_BYTES))),
)
def test_damaged_archive_is_read_or_refused_with_archive_error(tmp_path_factory, edits, cut) -> None:
    data = bytearray(TINY_BYTES)
    for position, value in edits:
        data[position] = value
    if cut is not None:
        data = data[:cut]
    path = tmp_path_factory.mktemp("fuzz") / "a.tar.gz"
    path.write_bytes(bytes(data))
    try:
        read_archive(path)
    except ArchiveError:
        pass  # the clear, expected refusal; anything else fails the test


@pytest.mark.parametrize("protocol", TAR_BYTES)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(
        # Positions are taken modulo the tar's length, which differs between the protocols.
        st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
        min_size=1,
        max_size=16,
    )
)
def test_damaged_tar_or_pickle_inside_a_valid_gzip_is_refused_with_archive_error(
    tmp_path_factory, protocol, edits
) -> None:
    """Edits behind gzip's CRC reach the tar parser and the unpickler directly."""
    data = bytearray(TAR_BYTES[protocol])
    for position, value in edits:
        data[position % len(data)] = value
    path = tmp_path_factory.mktemp("fuzz") / "a.tar.gz"
    path.write_bytes(gzip.compress(bytes(data), compresslevel=1))
    try:
        read_archive(path)
    except ArchiveError:
        pass


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
KEYS = [(s, k) for s, section in RAW.items() if isinstance(section, dict) for k in section] + [("seed", None)]


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(KEYS), value=VALUES)
def test_any_params_value_is_accepted_or_refused_naming_the_key(key, value) -> None:
    raw = copy.deepcopy(RAW)
    section, name = key
    if name is None:
        raw[section] = value
    else:
        raw[section][name] = value
    try:
        parse_params(raw)
    except ParamsError as err:
        assert (section if name is None else f"{section}.{name}") in str(err)
