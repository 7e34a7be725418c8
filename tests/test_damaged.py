"""Every file a stage reads, cut short, emptied or with a byte flipped: the stage prints one line
`<stage>: error: <file> is damaged (...); run dvc repro`, exits 1, writes no number and leaves no
temp file. Stages run in this process on a tiny trained study (fast); a few run as real
subprocesses, where anything else printed on stderr (a warning, a traceback) would show."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from project import prepared_project, run

from convlab.errors import run_stage
from convlab.params import VARIANTS

TINY = {name: {"epochs": 1} for name in VARIANTS}
PREPARED = "data/prepared"
REPORT_INPUTS = [
    *(f"metrics/train_{v}.json" for v in VARIANTS),
    *(f"plots/train_{v}/{table}.csv" for v in VARIANTS for table in ("epochs", "runs")),
    *(f"plots/test/{v}.csv" for v in VARIANTS),
    *(f"plots/confusion/{v}.csv" for v in VARIANTS),
]
# (stage script, its argv, the name run_stage gives it, every file it reads)
STAGES = [
    ("train", ["baseline"], "train", [f"{PREPARED}/{f}" for f in ("train.npz", "val.npz", "stats.json")]),
    (
        "evaluate_test",
        [],
        "evaluate_test",
        [f"{PREPARED}/test.npz", f"{PREPARED}/stats.json", *(f"models/{v}.pt" for v in VARIANTS)],
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


def flip_middle(data: bytes, name: str) -> bytes:
    # Binary files and stats.json carry checksums or CRCs, so any bit will do. The metrics and
    # plots are plain text: a digit changed into a digit still reads (see inputs.py), so the flip
    # is of the top bit, which no text these stages write has.
    checksummed = name.endswith((".npz", ".pt", "stats.json"))
    return flip(data, len(data) // 2, 0x01 if checksummed else 0x80)


DAMAGES: dict[str, Callable[[bytes, str], bytes]] = {
    "cut-short": lambda data, name: data[: len(data) // 2],
    "emptied": lambda data, name: b"",
    "byte-flipped": flip_middle,
}


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
def study(tmp_path_factory: pytest.TempPathFactory, small_archive: Path) -> Path:
    """A tiny study: baseline trained for 1 epoch, its outputs copied for the other variants (their
    files only need to be valid outputs, and training takes most of this test's time), then tested
    and reported."""
    repo = prepared_project(tmp_path_factory.mktemp("study"), small_archive, **TINY)
    assert run_in_process(repo, "train", ["baseline"], "train")[0] == 0  # stderr: tqdm's bar
    for variant in VARIANTS[1:]:
        shutil.copy(repo / "models/baseline.pt", repo / f"models/{variant}.pt")
        shutil.copy(repo / "metrics/train_baseline.json", repo / f"metrics/train_{variant}.json")
        shutil.copytree(repo / "plots/train_baseline", repo / f"plots/train_{variant}")
    assert run_in_process(repo, "evaluate_test", [], "evaluate_test") == (0, "")
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


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize(
    ("script", "argv", "name", "damaged"),
    [(script, argv, name, f) for script, argv, name, files in STAGES for f in files],
)
def test_a_damaged_input_is_refused_in_one_line(
    study: Path, script: str, argv: list[str], name: str, damaged: str, damage: str
) -> None:
    path = study / damaged
    with altered(path, DAMAGES[damage](path.read_bytes(), damaged)):
        assert_refused(study, script, argv, name, damaged)


def edit_text(edit: Callable[[str], str]) -> Callable[[bytes], bytes]:
    return lambda data: edit(data.decode()).encode()


def edit_json(edit: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        obj = json.loads(data)
        edit(obj)
        return (json.dumps(obj, indent=2) + "\n").encode()

    return apply


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


# Damage that still parses: each caught by a check of what the report uses.
SEMANTIC = [
    (
        "plots/confusion/dropout.csv",
        edit_text(replace_cell(1, 1, "kitten")),
        "'kitten' is not one of airplane",
    ),
    ("plots/confusion/dropout.csv", edit_text(drop_last_line), "299 predictions for 300 test images"),
    ("plots/confusion/baseline.csv", edit_text(another_actual_class), "actual classes are not the labels"),
    (
        "plots/confusion/baseline.csv",
        edit_text(lambda t: t.replace("actual,", "actua,", 1)),
        "no column actual",
    ),
    (
        "plots/test/dropout.csv",
        edit_text(lambda t: t.replace("test_acc", "test_ac", 1)),
        "no column test_acc",
    ),
    ("plots/test/baseline.csv", edit_text(replace_cell(1, 1, "1.5")), "test_acc: 1.5 is not in [0, 1]"),
    (
        "plots/test/staged_dropout.csv",
        edit_text(replace_cell(1, 0, "7")),
        "test results of seeds [7], but training ran seeds [0]",
    ),
    ("plots/test/staged_dropout.csv", edit_text(drop_last_line), "no rows under the header"),
    (
        "plots/train_dropout/epochs.csv",
        edit_text(replace_cell(1, 0, "2")),
        "epochs 2..2, but params.yaml trains dropout for 1",
    ),
    ("metrics/train_dropout.json", edit_json(lambda m: m.pop("seeds")), "no seeds"),
    (
        "plots/train_dropout/runs.csv",
        edit_text(lambda t: t.replace(",hardware", ",hw", 1)),
        "no column hardware",
    ),
    (
        "metrics/train_dropout.json",
        edit_text(lambda t: "[" + t.rstrip() + "]\n"),
        "a JSON list, not an object",
    ),
    ("metrics/train_baseline.json", edit_text(lambda t: t.replace('"seeds": 1', '"seeds": NaN')), "NaN"),
    ("plots/train_baseline/epochs.csv", edit_text(drop_last_line), "no rows under the header"),
    (
        "plots/train_baseline/epochs.csv",
        edit_text(replace_cell(1, 4, "nan")),
        "val_acc: nan is not in [0, 1]",
    ),
    (
        "plots/train_baseline/epochs.csv",
        edit_text(lambda t: t + "2,0.1\n"),
        "line 3 has 2 fields, the header 6",
    ),
    ("plots/train_baseline/epochs.csv", edit_text(lambda t: t[:-1]), "cut short: no newline at its end"),
    ("plots/train_staged_dropout/runs.csv", edit_text(lambda t: t + t.splitlines()[1] + "\n"), "2 runs, but"),
    ("plots/train_staged_dropout/runs.csv", edit_text(replace_cell(1, 0, "-1")), "seed: -1 is not in [0,"),
    ("plots/train_staged_dropout/runs.csv", edit_text(replace_cell(1, 0, "0.5")), "'0.5' is not an integer"),
]


@pytest.mark.parametrize(("damaged", "edit", "what"), SEMANTIC, ids=[f"{f}-{w}" for f, _, w in SEMANTIC])
def test_damage_that_still_parses_is_refused(
    study: Path, damaged: str, edit: Callable[[bytes], bytes], what: str
) -> None:
    path = study / damaged
    with altered(path, edit(path.read_bytes())):
        stderr = assert_refused(study, "report", [], "report", damaged)
    assert what in stderr


def test_variants_with_different_numbers_of_runs_are_refused(study: Path) -> None:
    runs, metrics = study / "plots/train_dropout/runs.csv", study / "metrics/train_dropout.json"
    second_seed = edit_text(lambda t: t + "1," + t.splitlines()[1].split(",", 1)[1] + "\n")
    with (
        altered(runs, second_seed(runs.read_bytes())),
        altered(metrics, edit_json(lambda m: m.update(seeds=2))(metrics.read_bytes())),
    ):
        stderr = assert_refused(study, "report", [], "report", "plots/train_dropout/runs.csv")
    assert "(2 runs, baseline has 1)" in stderr


@pytest.mark.parametrize(
    ("script", "argv", "damaged"),
    [
        ("evaluate_test", [], "models/dropout.pt"),  # ~1,000 bytes altered: once exit 0, wrong accuracy
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
    assert result.stderr.startswith(f"{script}: error: {damaged} is damaged (")
    assert result.stderr.count("\n") == 1, result.stderr
