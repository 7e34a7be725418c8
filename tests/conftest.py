"""Shared fixtures: small archives in the official format, a loopback HTTP server, a cache."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from loopback import LoopbackServer  # noqa: E402

from convlab.synthetic import write_archive  # noqa: E402


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Resume state in the test's folder, never the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 x 64 training and 100 test images: a stage in a second or two."""
    return write_archive(
        tmp_path_factory.mktemp("tiny") / "cifar-10-python.tar.gz", per_batch=64, test_size=100
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LoopbackServer]:
    (tmp_path / "served").mkdir()
    with LoopbackServer(tmp_path / "served") as running:
        yield running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The two whole-pipeline tests first, then the quick tests, then the other slow ones: each
    xdist worker (`--dist loadgroup` holds two tests per worker) starts on one pipeline test with
    only a quick test queued behind it, so the suite lasts about as long as its longest test."""

    def order(item: pytest.Item) -> int:
        slow = item.get_closest_marker("slow") is not None
        return 0 if slow and item.path.name == "test_pipeline.py" else 2 if slow else 1

    items.sort(key=order)
