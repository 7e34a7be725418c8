"""What every stage entry point shares: turn expected failures into one clear line and exit 1,
and Ctrl-C into one line and exit 130."""

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

# What a re-run does after Ctrl-C: training saves its state after every epoch, the others start over.
_AFTER_CTRL_C = {"train": "`dvc repro` resumes from the last finished epoch"}
_START_OVER = "run `dvc repro` to run it again"
INTERRUPTED_EXIT = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C


def run_stage(name: str, main: Callable[[list[str]], None]) -> None:
    """Run a stage's main; an expected error prints `name: error: message` and exits 1, Ctrl-C
    prints `name: stopped (Ctrl-C); ...` and exits 130. Outputs are written atomically, so either
    way nothing half-written is left."""
    try:
        main(sys.argv[1:])
    except EXPECTED_ERRORS as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{name}: stopped (Ctrl-C); {_AFTER_CTRL_C.get(name, _START_OVER)}", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)
