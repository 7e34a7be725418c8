"""The real pipeline: `dvc repro` of a small archive served over loopback HTTP, a pull request that
re-trains one variant and its review, the run cache, the sweep table; variants added and removed as
data alone, and a fresh clone that pulls everything from a read-only HTTP remote."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import PROJECT, copy_project, dvc, git, python, ran_stages
from loopback import LoopbackServer
from ruamel.yaml import YAML

from convlab.cifar import file_md5
from convlab.synthetic import write_archive

VARIANTS = ["baseline", "dropout", "staged_dropout"]
STAGES = ["download", "split", *(f"train_{v}" for v in VARIANTS), *(f"evaluate_test@{v}" for v in VARIANTS),
          "report"]  # fmt: skip


def imported(path: Path, seen: set[Path] | None = None) -> set[Path]:
    """Every file of src/convlab that running `path` imports, following its imports."""
    seen = set() if seen is None else seen
    tree = ast.parse(path.read_text())
    for block in [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]:
        tree.body.remove(block)  # names for type hints only: not run
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("convlab."):
            module = PROJECT / "src" / Path(*node.module.split(".")).with_suffix(".py")
            if module not in seen:
                seen.add(module)
                imported(module, seen)
    return seen


def test_each_stage_depends_on_every_file_it_runs() -> None:
    """What a stage runs decides its outputs: dvc.yaml must name it, or DVC would not re-run it."""
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        stage = stage.get("do", stage)
        script = PROJECT / stage["cmd"].split()[2]
        deps = {PROJECT / d for d in stage["deps"] if d.endswith(".py")}
        assert imported(script) | {script} == deps, name


@pytest.mark.slow
def test_the_pipeline_from_download_to_review(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "served/cifar-10-python.tar.gz", per_batch=200, test_size=300)
    epochs = {variant: {"epochs": 1} for variant in VARIANTS}
    with LoopbackServer(tmp_path / "served") as server:
        # data.url is a dead link: $CIFAR10_URL takes its place.
        data = {"url": server.url("gone.tar.gz"), "md5": file_md5(archive), "val_size": 200}
        repo = copy_project(tmp_path / "repo", {"data": data, "train": {"seeds": 2, "lr": 0.03}, **epochs})
        result = dvc(repo, "repro", CIFAR10_URL=server.url("cifar-10-python.tar.gz"))
    # The plots page runs only if its code changed since dvc.lock: it holds no result.
    assert [stage for stage in ran_stages(result.stdout) if stage != "plots_page"] == STAGES
    stats = json.loads((repo / "data/prepared/stats.json").read_text())
    assert stats["sizes"] == {"train": 800, "val": 200, "test": 300} and len(stats["content_sha256"]) == 64
    runs = pd.read_csv(repo / "plots/runs.csv")
    assert runs[["variant", "seed", "status", "epochs"]].values.tolist() == [
        [variant, seed, "finished", 1] for variant in VARIANTS for seed in (0, 1)]  # fmt: skip
    for variant, each in runs.groupby("variant"):
        val = json.loads((repo / f"metrics/train_{variant}.json").read_text())
        test = json.loads((repo / f"metrics/test_{variant}.json").read_text())
        assert val == {variant: {"val": each["best_val_acc"].mean()}} and val[variant]["val"] > 0.3
        assert test == {variant: {"test": each["test_acc"].mean()}}
    report = (repo / "report/report.md").read_text()
    assert "| staged_dropout | 0.1/0.2/0.5 | none | 1 | 2 |" in report
    for figure in re.findall(r"\]\((figures/[^)]+\.png)\)", report):
        assert (repo / "report" / figure).stat().st_size > 1000
    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "results")

    # The same change as an experiment trains that variant alone (the report is written again);
    # back to the committed value, the runs come from DVC's run cache, not trained again.
    tried = dvc(repo, "exp", "run", "-n", "fc3", "-S", "dropout.fc=0.3").stdout
    assert ran_stages(tried) == ["train_dropout", "evaluate_test@dropout", "report"]
    restored = dvc(repo, "exp", "run", "-n", "fc1", "-S", "dropout.fc=0.1").stdout
    assert ran_stages(restored) == ["report"] and "Stage 'train_dropout' is cached" in restored
    table = python(repo, "tools/sweep.py", "dropout.fc").stdout
    assert re.search(r"\| 0\.1 \| fc1 \| \d+\.\d% ± \d+\.\d \|", table) and "| 0.3 | fc3 |" in table
    compared = python(repo, "tools/review.py", "--experiments").stdout.splitlines()
    assert compared[0].split() == ["experiment", "changed", "baseline", "dropout", "staged_dropout"]
    assert any(line.split()[:3] == ["fc3", "dropout.fc=0.3", "="] for line in compared)

    # The experiment as a pull request: its review says what changed and whether it beats the
    # seeds' noise.
    dvc(repo, "exp", "branch", "fc3", "fc3")
    git(repo, "checkout", "-q", "fc3")
    review = python(repo, "tools/review.py", "master").stdout
    assert "| dropout.fc | 0.1 | 0.3 |" in review and "Unchanged: baseline, staged_dropout." in review
    assert re.search(
        r"\| dropout \| test \| \d+\.\d% \| \d+\.\d% \| [-+]\d+\.\d \[.*\] \| (within|\*\*larger than) noise",
        review,
    )
    for image in ("val_acc.png", "seeds.png"):
        assert (repo / "review" / image).read_bytes().startswith(b"\x89PNG")


def variants_as_data(repo: Path, keep: str, add: str) -> None:
    """Edit params.yaml and dvc.yaml alone (as a user would) so the study has the variants `keep`
    and `add`: a section each, a train stage each, and their place in the stages they meet in."""
    yaml = YAML()
    params, pipeline = yaml.load(repo / "params.yaml"), yaml.load(repo / "dvc.yaml")
    stages = pipeline["stages"]
    for name in [n for n in list(params) if n not in ("seed", "data", "train", keep)]:
        del params[name], stages[f"train_{name}"]
    params[add] = {"epochs": 1, "pool1": 0.0, "pool2": 0.0, "fc": 0.7}
    train = {
        "cmd": stages[f"train_{keep}"]["cmd"].replace(keep, add),
        "deps": stages[f"train_{keep}"]["deps"],
        "params": ["seed", "train", add],
        "outs": [f"models/{add}.pt", f"results/train_{add}"],
        "metrics": [{f"metrics/train_{add}.json": {"cache": False}}],
    }
    stages.insert(list(stages).index("evaluate_test"), f"train_{add}", train)
    stages["evaluate_test"]["foreach"] = [keep, add]
    stages["report"]["params"] = [keep, add]
    results = [d for d in stages["report"]["deps"] if not d.startswith("results/")]
    stages["report"]["deps"] = [
        f"results/{kind}_{v}" for v in (keep, add) for kind in ("train", "evaluate")
    ] + results
    pipeline["metrics"] = [f"metrics/{kind}_{v}.json" for v in (keep, add) for kind in ("train", "test")]
    yaml.dump(params, repo / "params.yaml")
    yaml.dump(pipeline, repo / "dvc.yaml")


@pytest.mark.slow
def test_a_variant_is_data_and_a_fresh_clone_pulls_the_study_read_only(
    tiny_archive: Path, tmp_path: Path
) -> None:
    data = {"url": tiny_archive.as_uri(), "md5": file_md5(tiny_archive), "val_size": 64}
    repo = copy_project(tmp_path / "repo", {"data": data, "baseline": {"epochs": 1}})
    variants_as_data(repo, keep="baseline", add="wide_fc")
    assert git(repo, "status", "--porcelain", "--untracked-files=no").split() == [
        "M",
        "dvc.yaml",
        "M",
        "params.yaml",
    ]
    ran = [stage for stage in ran_stages(dvc(repo, "repro").stdout) if stage != "plots_page"]
    assert ran == ["download", "split", "train_baseline", "train_wide_fc", "evaluate_test@baseline",
                   "evaluate_test@wide_fc", "report"]  # fmt: skip
    assert "| wide_fc | 0/0/0.7 | none | 1 | 1 |" in (repo / "report/report.md").read_text()
    assert pd.read_csv(repo / "plots/runs.csv")["variant"].tolist() == ["baseline", "wide_fc"]
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "two variants")

    # A team's read-only remote: pushed to a folder, served over HTTP, pulled by a fresh clone.
    dvc(repo, "remote", "add", "-d", "local", str(tmp_path / "storage"))
    dvc(repo, "push")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    dvc(clone, "plots", "show", "-o", "page")  # before anything is pulled: the page draws offline
    page = (clone / "page/index.html").read_text()
    assert "vegaEmbed" in page and "<script src=" not in page and page.count('<div id = "') == 6
    with LoopbackServer(tmp_path / "storage") as storage:
        dvc(clone, "remote", "add", "-f", "-d", "public", storage.url("").rstrip("/"))
        dvc(clone, "pull")
    assert dvc(clone, "status").stdout.strip() == "Data and pipelines are up to date."
