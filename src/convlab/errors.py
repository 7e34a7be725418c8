"""Expected failures, and how a stage or a tool reports them: one line and exit 1, Ctrl-C exit 130.

Every failure a stage expects (a bad param, a refused archive, a refused checkpoint) is a
ConvlabError whose message says what is wrong and what to do. A file that is missing is an output
of another stage: the message names the `dvc repro <stage>` that makes it, found in dvc.yaml by DVC
itself, so no table of paths and stages is kept here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

INTERRUPTED_EXIT = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C


class ConvlabError(Exception):
    """A failure the project expects; its message is one line: what is wrong and what to do."""


def remake(path: str | Path) -> str:
    """The command that re-makes `path`: `dvc repro <the stage whose output it is>`."""
    try:
        from dvc.repo import Repo

        with Repo() as repo:
            outs = repo.find_outs_by_path(str(path), strict=False)
        return f"dvc repro {outs[0].stage.addressing}"
    except Exception:  # not in a DVC project, or no stage makes it: the general answer
        return "dvc repro"


def missing(path: str | Path, what: str = "not found") -> ConvlabError:
    """`path` is an output the pipeline makes and it is absent (or lacks `what`)."""
    return ConvlabError(f"{path}: {what}; run `{remake(path)}`")


def run_main(name: str, main: Callable[[list[str]], None]) -> None:
    """Run main(argv); an expected failure prints `name: error: <one line>` and exits 1."""
    try:
        main(sys.argv[1:])
    except ConvlabError as err:
        fail(name, str(err))
    except FileNotFoundError as err:
        fail(name, str(missing(err.filename or "a file")))
    except OSError as err:  # the system refused a file: a full disk, a permission
        fail(name, f"{err.strerror or err}: {err.filename or ''}".rstrip(": "))
    except KeyboardInterrupt:
        print(f"{name}: stopped (Ctrl-C); the same command goes on from where it stopped", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)


def fail(name: str, message: str) -> None:
    print(f"{name}: error: {message}", file=sys.stderr)
    sys.exit(1)
