"""Every file a stage reads, damaged: the stage prints one line `<stage>: error: <file> is damaged
(...); run dvc repro`, exits 1, writes nothing and leaves no temp file. One damage per file here
(the kinds of damage each reader refuses are its own unit tests: test_stage_files, test_data,
test_checkpoint), and the checks that only a stage can make, across files. Stages run in this
process on a tiny trained study (fast); a few run as real subprocesses, where anything else
printed on stderr (a warning, a traceback) would show."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from project import prepared_project, run

from convlab.checkpoint import load_sealed, save_sealed
from convlab.errors import run_stage
from convlab.params import VARIANTS

TINY = {name: {"epochs": 1} for name in VARIANTS}
PREPARED = "data/prepared"
REPORT_INPUTS = [
    *(f"plots/train_{v}/{table}.csv" for v in VARIANTS for table in ("epochs", "runs")),
    *(f"plots/test/{v}.csv" for v in VARIANTS),
    *(f"plots/confusion/{v}.csv" for v in VARIANTS),
]
# (stage script, its argv, the name run_stage gives it, every file it reads)
STAGES = [
    ("train", ["baseline"], "train", [f"{PREPARED}/{f}" for f in ("train.npz", "val.npz", "stats.json")]),
    (
        "evaluate",
        ["dropout"],
        "evaluate_test",
        [f"{PREPARED}/test.npz", f"{PREPARED}/stats.json", "models/dropout.pt"],
    ),
    (
        "report",
        [],
        "report",
        [
            *(f"{PREPARED}/{s}.npz" for s in ("train", "val", "test")),
            f"{PREPARED}/stats.json",
            *REPORT_INPUTS,
        ],
    ),
]


def flip(data: bytes, position: int, mask: int) -> bytes:
    return data[:position] + bytes([data[position] ^ mask]) + data[position + 1 :]


def cut_short(data: bytes) -> bytes:
    return data[: len(data) // 2]


def run_in_process(repo: Path, script: str, argv: list[str], name: str) -> tuple[int, str]:
    """Run stages/<script>.py's main through run_stage in repo: its exit code and stderr. A warning
    (which a real run prints on stderr) fails the test."""
    spec = importlib.util.spec_from_file_location(f"stage_{script}", repo / "stages" / f"{script}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stderr = io.StringIO()
    saved_argv, sys.argv = sys.argv, [f"stages/{script}.py", *argv]
    try:
        with (
            contextlib.chdir(repo),
            contextlib.redirect_stderr(stderr),
            contextlib.redirect_stdout(io.StringIO()),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            run_stage(name, module.main)
            code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = saved_argv
    assert not [str(w.message) for w in caught]
    return code, stderr.getvalue()


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, tiny_archive: Path) -> Path:
    """A tiny study: baseline trained for 1 epoch, its outputs copied for the other variants (their
    files only need to be valid outputs, and training takes most of this test's time), then tested
    and reported."""
    repo = prepared_project(tmp_path_factory.mktemp("study"), tiny_archive, **TINY)
    assert run_in_process(repo, "train", ["baseline"], "train")[0] == 0  # stderr: tqdm's bar
    for variant in VARIANTS[1:]:
        shutil.copy(repo / "models/baseline.pt", repo / f"models/{variant}.pt")
        shutil.copytree(repo / "plots/train_baseline", repo / f"plots/train_{variant}")
    for variant in VARIANTS:
        assert run_in_process(repo, "evaluate", [variant], "evaluate_test") == (0, "")
    assert run_in_process(repo, "report", [], "report") == (0, "")
    return repo


@contextlib.contextmanager
def altered(path: Path, content: bytes) -> Iterator[None]:
    """path holds content for the duration, then its own bytes again."""
    original = path.read_bytes()
    assert content != original
    path.write_bytes(content)
    try:
        yield
    finally:
        path.write_bytes(original)


def outputs(repo: Path) -> dict[Path, bytes]:
    return {
        p: p.read_bytes()
        for d in ("metrics", "plots", "report", "models")
        for p in (repo / d).rglob("*")
        if p.is_file()
    }


def assert_refused(repo: Path, script: str, argv: list[str], name: str, damaged: str) -> str:
    before = outputs(repo)
    code, stderr = run_in_process(repo, script, argv, name)
    assert code == 1, stderr
    assert stderr.startswith(f"{name}: error: {damaged} is damaged (") and stderr.endswith(
        "; run dvc repro\n"
    )
    assert stderr.count("\n") == 1, stderr
    assert outputs(repo) == before
    assert not [p for p in repo.rglob(".*") if p.name.endswith((".tmp", ".old"))]
    return stderr


@pytest.mark.parametrize(
    ("script", "argv", "name", "damaged"),
    [(script, argv, name, f) for script, argv, name, files in STAGES for f in files],
)
def test_a_damaged_input_is_refused_in_one_line(
    study: Path, script: str, argv: list[str], name: str, damaged: str
) -> None:
    path = study / damaged
    with altered(path, cut_short(path.read_bytes())):
        assert_refused(study, script, argv, name, damaged)


def test_a_forged_checkpoint_is_refused_before_anything_is_written(study: Path) -> None:
    """NaN weights with the seal recomputed (someone who knows the format): checked before any
    model is evaluated, so evaluate_test writes no CSV and no metric."""
    path = study / "models/dropout.pt"
    original = path.read_bytes()
    content = load_sealed(path)
    content["runs"][0]["state_dict"]["fc1.weight"][0, 0] = float("nan")
    save_sealed(path, content)
    try:
        stderr = assert_refused(study, "evaluate", ["dropout"], "evaluate_test", "models/dropout.pt")
    finally:
        path.write_bytes(original)
    assert "fc1.weight holds NaN or infinite weights" in stderr


def edit_text(edit: Callable[[str], str]) -> Callable[[bytes], bytes]:
    return lambda data: edit(data.decode()).encode()


def drop_last_line(text: str) -> str:
    return "".join(text.splitlines(keepends=True)[:-1])


def replace_cell(line: int, column: int, value: str) -> Callable[[str], str]:
    def apply(text: str) -> str:
        lines = text.splitlines(keepends=True)
        cells = lines[line].rstrip("\n").split(",")
        cells[column] = value
        lines[line] = ",".join(cells) + "\n"
        return "".join(lines)

    return apply


def another_actual_class(text: str) -> str:
    """The first row's actual class changed into another class."""
    actual = text.splitlines()[1].split(",")[0]
    return replace_cell(1, 0, "truck" if actual != "truck" else "ship")(text)


# Files that each read well but do not fit the others or params.yaml: only the report stage,
# which reads them together, can tell.
ACROSS_FILES = [
    ("plots/confusion/dropout.csv", drop_last_line, "99 predictions for 100 test images"),
    ("plots/confusion/baseline.csv", another_actual_class, "actual classes are not the labels"),
    (
        "plots/test/staged_dropout.csv",
        replace_cell(1, 0, "7"),
        "test results of seeds [7], but training ran seeds [0]",
    ),
    (
        "plots/train_dropout/epochs.csv",
        replace_cell(1, 0, "2"),
        "epochs 2..2, but params.yaml trains dropout for 1",
    ),
    (
        "plots/train_staged_dropout/runs.csv",
        lambda t: t + "1," + t.splitlines()[1].split(",", 1)[1] + "\n",
        "runs of seeds [0, 1], but params.yaml asks for seeds [0]",
    ),
]


@pytest.mark.parametrize(("damaged", "edit", "what"), ACROSS_FILES, ids=[f for f, _, _ in ACROSS_FILES])
def test_files_that_do_not_fit_each_other_are_refused(
    study: Path, damaged: str, edit: Callable[[str], str], what: str
) -> None:
    path = study / damaged
    with altered(path, edit(path.read_text()).encode()):
        stderr = assert_refused(study, "report", [], "report", damaged)
    assert what in stderr


@pytest.mark.slow  # a real subprocess
@pytest.mark.parametrize(
    ("script", "argv", "damaged"),
    [
        ("evaluate", ["dropout"], "models/dropout.pt"),  # ~1,000 bytes altered: once exit 0, wrong accuracy
        ("train", ["baseline"], f"{PREPARED}/train.npz"),
        ("report", [], "plots/confusion/staged_dropout.csv"),
    ],
)
def test_a_real_run_prints_one_line_and_nothing_else(
    study: Path, script: str, argv: list[str], damaged: str
) -> None:
    path = study / damaged
    data = path.read_bytes()
    middle = len(data) // 2
    scrambled = data[:middle] + bytes(b ^ 0x5A for b in data[middle : middle + 1000]) + data[middle + 1000 :]
    with altered(path, scrambled):
        result = run(study, sys.executable, f"stages/{script}.py", *argv, check=False)
    assert result.returncode == 1
    name = "evaluate_test" if script == "evaluate" else script
    assert result.stderr.startswith(f"{name}: error: {damaged} is damaged (")
    assert result.stderr.count("\n") == 1, result.stderr
