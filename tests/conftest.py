"""Shared fixtures: small archives in the official format and a loopback HTTP server."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from loopback import LoopbackServer  # noqa: E402

from convlab.synthetic import write_archive  # noqa: E402


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 x 64 training and 100 test images: a stage or training run in a second or two, for tests
    of how things run rather than of what they learn."""
    return write_archive(
        tmp_path_factory.mktemp("tiny") / "cifar-10-python.tar.gz", per_batch=64, test_size=100
    )


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 x 200 training and 300 test images, official layout and pickle format."""
    return write_archive(
        tmp_path_factory.mktemp("archive") / "cifar-10-python.tar.gz", per_batch=200, test_size=300
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LoopbackServer]:
    with LoopbackServer(tmp_path / "served") as running:
        (tmp_path / "served").mkdir()
        yield running


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Temp files whose writes fail as on a full disk: their descriptor is /dev/full's, so the
    kernel itself answers every write with ENOSPC, through the same Python and torch layers."""
    real_mkstemp = tempfile.mkstemp

    def mkstemp(**kwargs: str) -> tuple[int, str]:
        fd, name = real_mkstemp(**kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
