"""What every stage entry point shares: turn expected failures into one clear line and exit 1."""

from __future__ import annotations

import sys
from collections.abc import Callable

from convlab.atomic import DiskFullError
from convlab.checkpoint import CheckpointError
from convlab.cifar import ArchiveError
from convlab.data import DataError
from convlab.download import DownloadError
from convlab.inputs import DamagedInputError
from convlab.params import ParamsError
from convlab.train import DivergenceError

# FileNotFoundError: a stage run by hand before the stage that makes its input.
EXPECTED_ERRORS = (
    ParamsError,
    ArchiveError,
    DataError,
    DownloadError,
    DivergenceError,
    CheckpointError,
    DamagedInputError,
    DiskFullError,
    FileNotFoundError,
)


def run_stage(name: str, main: Callable[[list[str]], None]) -> None:
    """Run a stage's main; an expected error prints `name: error: message` and exits 1."""
    try:
        main(sys.argv[1:])
    except EXPECTED_ERRORS as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(1)
