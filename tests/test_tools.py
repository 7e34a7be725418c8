"""The tools at their boundaries: an ablation run landing as its row (and refused once its tables
left DVC's cache), the ablation's table read strictly and only rows that pair with the study, the
demo outside a git clone, the run cache pushed to an unreachable remote."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
from helpers import PROJECT, copy_project, dvc, git, one_line_error, python

from convlab.errors import ConvlabError
from convlab.stats import seeds_for_power


def tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, PROJECT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # where dataclasses look up the module's names
    spec.loader.exec_module(module)
    return module


ablation = tool("ablation")
HEADER = ",".join(ablation.COLUMNS)


def study(repo: Path, accuracies: dict[str, float]) -> str:
    """Commit a study of one seed per variant with these best validation accuracies; its commit."""
    rows = [
        f"{v},0,{acc},{acc - 0.01},cpu fp32 channels-last,20,0.1,0.1,0.1,0,False"
        for v, acc in accuracies.items()
    ]
    (repo / "plots").mkdir(exist_ok=True)
    header = "variant,seed,best_val_acc,test_acc,runtime,epochs,pool1,pool2,fc,crop_padding,flip"
    (repo / "plots/runs.csv").write_text("\n".join([header, *rows]) + "\n")
    (repo / "dvc.lock").write_text(f"# {accuracies}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a study")
    return git(repo, "rev-parse", "--short=7", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "report").mkdir()
    shutil.copy(PROJECT / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(PROJECT / "report/ablation.yaml", tmp_path / "report/ablation.yaml")
    git(tmp_path, "init", "-q")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def row(
    setting: str, variant: str, epochs: int, fc: float, acc: float, study: str, precision: str = "fp32"
) -> str:
    accuracies = f"{acc},{acc - 0.01}"
    return f"{setting},{variant},{epochs},0.1,0.1,{fc},0,False,0,{accuracies},{precision},standardize,{study}"


def test_rows_that_do_not_pair_with_the_study_are_refused(repo: Path) -> None:
    first = study(repo, {"baseline": 0.70, "dropout": 0.72, "staged_dropout": 0.78})
    rows = [
        row("dropout", "dropout", 20, 0.1, 0.72, first),
        row("dropout_40", "dropout", 40, 0.1, 0.73, first),
    ]
    (repo / "report/ablation.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    ablation.analyze()
    assert (
        "| dropout_40 - dropout | test | 1 |" not in (repo / "report/ablation.md").read_text()
    )  # one seed: no test
    for bad, expected in [
        (row("dropout_40", "dropout", 2, 0.1, 0.73, first), "dropout_40 seed 0: trained with another epochs"),
        (row("dropout_40", "dropout", 40, 0.1, 0.73, first, "bf16"), "trained in bf16, the study in fp32"),
        (row("dropout_40", "baseline", 40, 0.1, 0.73, first), "trains baseline, not the setting's variant"),
    ]:
        (repo / "report/ablation.csv").write_text("\n".join([HEADER, rows[0], bad]) + "\n")
        with pytest.raises(ConvlabError, match=expected):
            ablation.analyze()
    second = study(repo, {"baseline": 0.70, "dropout": 0.74, "staged_dropout": 0.78})
    redone = row("dropout", "dropout", 20, 0.1, 0.74, second)
    (repo / "report/ablation.csv").write_text("\n".join([HEADER, redone, rows[1]]) + "\n")
    with pytest.raises(
        ConvlabError, match=f"the study it ran beside \\({first}\\) is not HEAD's study \\({second}\\)"
    ):
        ablation.analyze()


# The study's pipeline as the ablation drives it (a variant's train and evaluate_test stages, their
# tables in DVC's cache), with quick stages whose accuracies are read off the variant's fc rate.
STAGES = """stages:
  train_dropout:
    cmd: python stage.py train dropout
    deps: [stage.py]
    params: [seed, train.seeds, train.precision, dropout]
    outs: [results/train_dropout]
  evaluate_test:
    foreach: [dropout]
    do:
      cmd: python stage.py evaluate ${item}
      deps:
        - stage.py
        - results/train_${item}
      outs:
        - results/evaluate_${item}
"""
STAGE = """import sys
from pathlib import Path

import yaml

kind, variant = sys.argv[1:]
params = yaml.safe_load(Path("params.yaml").read_text())
section, first, train = params[variant], params["seed"], params["train"]
keys = ["epochs", "pool1", "pool2", "fc", "crop_padding", "flip"]
rows = []
for seed in range(first, first + train["seeds"]):
    acc = round(0.6 + section["fc"] / 10 + seed / 100, 4)
    runtime = f"cpu {train['precision']} channels-last"
    trained = [variant, seed, acc, runtime, *(section[k] for k in keys)]
    rows.append(trained if kind == "train" else [variant, seed, round(acc - 0.01, 4)])
header = ["variant", "seed", "best_val_acc", "runtime", *keys]
header = header if kind == "train" else ["variant", "seed", "test_acc"]
out = Path(f"results/{kind}_{variant}")
out.mkdir(parents=True, exist_ok=True)
lines = [",".join(str(cell) for cell in row) for row in [header, *rows]]
(out / ("runs.csv" if kind == "train" else "tests.csv")).write_text("\\n".join(lines) + "\\n")
"""


@pytest.mark.slow
def test_a_seed_run_as_an_experiment_lands_as_its_row(tmp_path: Path) -> None:
    repo = copy_project(tmp_path / "repo", {"train": {"precision": "fp32"}})
    (repo / "dvc.yaml").write_text(STAGES)
    (repo / "stage.py").write_text(STAGE)
    for made in ("report/ablation.csv", "report/ablation.md"):
        (repo / made).unlink()
    dvc(repo, "repro")
    (repo / "plots").mkdir()
    (repo / "plots/runs.csv").write_text(
        "variant,seed,best_val_acc,test_acc,runtime,epochs,pool1,pool2,fc,crop_padding,flip\n"
        "dropout,0,0.61,0.6,cpu fp32 channels-last,20,0.1,0.1,0.1,0,False\n"
    )  # the report stage's table of the study above
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the study")
    studied = git(repo, "rev-parse", "--short=7", "HEAD").strip()
    ran = python(repo, "tools/ablation.py", "run", "--only", "fc_only_40")
    assert "ablation: 1 runs to make" in ran.stdout
    assert git(repo, "status", "--porcelain").strip() == ""  # the run never touches the workspace
    python(repo, "tools/ablation.py", "table")
    landed = (repo / "report/ablation.csv").read_text().splitlines()
    assert f"fc_only_40,dropout,40,0.0,0.0,0.5,0,False,0,0.65,0.64,fp32,standardize,{studied}" in landed
    assert "| fc_only_40 | 0/0/0.5 at 40 epochs: dropout at fc1 alone | 0 | 64.0% | 65.0% |" in (
        (repo / "report/ablation.md").read_text()
    )
    again = python(repo, "tools/ablation.py", "run", "--only", "fc_only_40")
    assert "ablation: 0 runs to make" in again.stdout
    shutil.rmtree(repo / ".dvc/cache")  # as `dvc gc` would leave it: the experiment's tables gone
    line = one_line_error(python(repo, "tools/ablation.py", "table", check=False), "ablation")
    assert "experiment ablation-fc_only_40-seed0: results/evaluate_dropout/tests.csv cannot be read" in line
    assert "dvc exp pull <remote> ablation-fc_only_40-seed0" in line
    assert (repo / "report/ablation.csv").read_text().splitlines() == landed


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("7_9e-1", "line 2, best_val_acc: '7_9e-1' is not float"),
        ("inf", "line 2, best_val_acc: 'inf' is not float"),
        ("1.5", "line 2: an accuracy outside [0, 1]"),
        ("", "line 2, best_val_acc: '' is not float"),
    ],
)
def test_the_table_is_read_strictly(cell: str, expected: str) -> None:
    text = f"{HEADER}\n{row('dropout', 'dropout', 20, 0.1, 0.5, 'abc1234').replace(',0.5,', f',{cell},')}\n"
    with pytest.raises(ConvlabError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        ablation.read_table(text)
    with pytest.raises(ConvlabError, match="has columns setting, variant"):
        ablation.read_table(text.replace(",study", ""))


def test_the_demo_outside_a_git_clone_is_one_line(tmp_path: Path) -> None:
    for folder in ("tools", "src"):
        shutil.copytree(PROJECT / folder, tmp_path / folder)
    line = one_line_error(python(tmp_path, "tools/demo.py", check=False), "demo")
    assert "is not a git clone with a commit" in line and not (tmp_path / "demo").exists()


def test_an_unreachable_remote_is_one_line(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    python(tmp_path, "-m", "dvc", "init", "-q")
    python(tmp_path, "-m", "dvc", "remote", "add", "-d", "team", "http://127.0.0.1:9/storage")
    (tmp_path / "data.txt").write_text("a run's output\n")
    python(tmp_path, "-m", "dvc", "add", "-q", "data.txt")
    shutil.copytree(PROJECT / "tools", tmp_path / "tools")
    shutil.copytree(PROJECT / "src", tmp_path / "src")
    line = one_line_error(python(tmp_path, "tools/share_runs.py", check=False), "share_runs")
    assert "cannot push to the DVC remote 'team'" in line


def test_the_review_workflow_is_a_valid_github_workflow() -> None:
    checked = python(PROJECT, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                     ".github/workflows/review.yml")  # fmt: skip
    assert "ok -- validation done" in checked.stdout


def test_the_seeds_a_comparison_needs_match_the_power_tables() -> None:
    """report/ablation.md's 'seeds for 80% power': a paired t test at 0.05 finds an effect of one
    standard deviation with 10 pairs, of half of one with 34 (Cohen's tables, G*Power)."""
    assert [seeds_for_power(1.0, 1.0, 0.05), seeds_for_power(0.5, 1.0, 0.05)] == [10, 34]
    assert seeds_for_power(0.0, 1.0, 0.05) is None and seeds_for_power(0.1, 1.0, 0.05 / 12) is None
