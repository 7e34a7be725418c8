"""run_stage answers every expected failure (a ConvlabError, or the system refusing a file) in one
line and exit 1, and Ctrl-C in one line and exit 130, saying truthfully what a re-run does;
anything else stays a traceback (a bug to see)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from project import environment, prepared_project

from convlab.atomic import WriteError
from convlab.checkpoint import CheckpointError
from convlab.data import DataError
from convlab.errors import one_line, run_stage
from convlab.params import ParamsError
from convlab.stage_files import DamagedInputError


def outcome(name: str, error: BaseException, capsys: pytest.CaptureFixture[str]) -> tuple[object, str]:
    def main(argv: list[str]) -> None:
        raise error

    with pytest.raises(SystemExit) as exit_:
        run_stage(name, main)
    return exit_.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "error",
    [
        ParamsError("train.seeds = 0 is not allowed"),
        DataError("data/prepared/val.npz is damaged (BadZipFile); run dvc repro"),
        CheckpointError("models/baseline.pt", "is damaged (x)"),
        DamagedInputError("plots/test/baseline.csv", "empty"),
        WriteError("models/baseline.pt", "no space left on device"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_expected_error_is_one_line_and_exit_1(
    error: Exception, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stderr = outcome("evaluate_test", error, capsys)
    assert code == 1
    assert stderr == f"evaluate_test: error: {error}\n"


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "data/prepared/test.npz"),
            "No such file or directory: data/prepared/test.npz; run dvc repro to make it",
        ),
        (PermissionError(errno.EACCES, "Permission denied", "models"), "Permission denied: models"),
    ],
    ids=["missing", "permission"],
)
def test_a_file_the_system_refuses_is_one_line(
    error: OSError, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stderr = outcome("report", error, capsys)
    assert code == 1 and stderr == f"report: error: {line}\n"


def test_one_line_keeps_the_first_sentence_of_long_messages() -> None:
    error = RuntimeError("PytorchStreamReader failed. It goes on\nfor lines " + "x" * 300)
    assert one_line(error) == "RuntimeError: PytorchStreamReader failed"
    assert len(one_line(RuntimeError("y" * 300))) < 120


def test_a_bug_is_not_hidden() -> None:
    def main(argv: list[str]) -> None:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        run_stage("report", main)


def test_ctrl_c_in_training_says_the_rerun_resumes(capsys: pytest.CaptureFixture[str]) -> None:
    code, stderr = outcome("train", KeyboardInterrupt(), capsys)
    assert code == 130
    assert stderr == "train: stopped (Ctrl-C); `dvc repro` resumes from the last finished epoch\n"


@pytest.mark.parametrize("name", ["download", "split", "evaluate_test", "report"])
def test_ctrl_c_elsewhere_says_the_stage_runs_again(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, stderr = outcome(name, KeyboardInterrupt(), capsys)
    assert code == 130
    assert stderr == f"{name}: stopped (Ctrl-C); run `dvc repro` to run it again\n"


@pytest.mark.slow  # a real subprocess
def test_a_real_ctrl_c_during_training(tmp_path: Path, tiny_archive: Path) -> None:
    """SIGINT, as a terminal's Ctrl-C sends it, while the first epoch trains: no traceback, the
    one line last on stderr (after tqdm's bar), exit 130, no temp file, and nothing written."""
    repo = prepared_project(tmp_path, tiny_archive, baseline={"epochs": 50})
    process = subprocess.Popen(
        [sys.executable, "stages/train.py", "baseline"],
        cwd=repo,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell without job control starts background commands with SIGINT ignored, and the
        # child would inherit that (Python then installs no KeyboardInterrupt handler): give it
        # the terminal's default, as a foreground `dvc repro` has.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout is not None
    for line in process.stdout:  # the stage's first line: training starts
        if line.startswith("train_baseline:"):
            break
    os.kill(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert last == "train: stopped (Ctrl-C); `dvc repro` resumes from the last finished epoch"
    assert not [p for p in (repo / "metrics").rglob("*") if p.is_file()]
    assert not list((repo / "models").glob("*.pt"))
    assert not [p for p in repo.rglob(".*") if p.name.endswith(".tmp")]
