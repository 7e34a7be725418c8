"""Expected failures, and how a stage reports them: one line and exit 1, Ctrl-C one line and 130.

Every failure a stage expects (a bad param, a damaged input, a full disk, a refused download) is a
ConvlabError, defined beside the code that raises it. This module imports nothing of convlab, so
a stage that needs no torch (download) loads none to report its errors.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class ConvlabError(Exception):
    """A failure a stage expects; its message says, in one line, what is wrong and what to do."""


# What a re-run does after Ctrl-C: training saves its state after every epoch, the others start over.
_AFTER_CTRL_C = {"train": "`dvc repro` resumes from the last finished epoch"}
_START_OVER = "run `dvc repro` to run it again"
INTERRUPTED_EXIT = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C


def one_line(err: BaseException, limit: int = 100) -> str:
    """An exception as `Type: its first sentence`, short enough for a one-line message (torch's
    and zipfile's messages run on for lines about things that do not apply here)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text.split(". ")[0]
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def os_error_line(err: OSError) -> str:
    """An operating-system error on a file in one line: what the system said and which file.
    FileNotFoundError is, in a stage, an input that an earlier stage makes: the fix is to run it."""
    where = f" {err.filename}" if err.filename is not None else ""
    what = err.strerror or one_line(err)
    if isinstance(err, FileNotFoundError):
        return f"{what}:{where}; run dvc repro to make it"
    return f"{what}:{where}"


def run_stage(name: str, main: Callable[[list[str]], None]) -> None:
    """Run a stage's main; an expected error prints `name: error: message` and exits 1, Ctrl-C
    prints `name: stopped (Ctrl-C); ...` and exits 130. Outputs are written atomically, so either
    way nothing half-written is left."""
    try:
        main(sys.argv[1:])
    except ConvlabError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(1)
    except OSError as err:  # a file the system refuses: not a bug of the stage, said in one line
        print(f"{name}: error: {os_error_line(err)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{name}: stopped (Ctrl-C); {_AFTER_CTRL_C.get(name, _START_OVER)}", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)
