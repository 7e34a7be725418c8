"""dvc.yaml keeps the properties the project relies on: every stage can enter DVC's run cache, the
three train stages share one list of dependencies and each reads its own variant's params only,
each stage runs its own checkout's code, and every path it names is convlab.stage_files' (the one
home of the files stages pass)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dvc.repo import Repo

from convlab import stage_files
from convlab.params import VARIANTS

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stages() -> dict:
    """Every stage as DVC reads it (foreach expanded: evaluate_test@baseline, ...)."""
    with Repo(str(PROJECT)) as repo:
        return {stage.addressing: stage for stage in repo.index.stages}


def outputs(stage, kind: str) -> dict[str, dict]:
    """{path: options} of a stage's outs that are plain outputs, metrics or plots."""
    chosen = {
        "outs": lambda out: not out.metric and not out.plot,
        "metrics": lambda out: out.metric,
        "plots": lambda out: out.plot,
    }[kind]
    return {out.def_path: {"cache": out.use_cache} for out in stage.outs if chosen(out)}


def test_every_stage_can_enter_the_run_cache(stages: dict) -> None:
    """DVC keeps a stage run in its run cache only if every output is cached by DVC or is a metric
    or plot: a plain output with `cache: false` would keep the stage out."""
    for name, stage in stages.items():
        assert all(options["cache"] for options in outputs(stage, "outs").values()), name
        assert stage.deps and stage.cmd, name


def test_git_tracked_results_are_metrics_or_plots_kept_out_of_dvc_cache(stages: dict) -> None:
    for name, stage in stages.items():
        for kind in ("metrics", "plots"):
            for path, options in outputs(stage, kind).items():
                assert options["cache"] is False, f"{name}: {kind} {path} should be in git (cache: false)"


def test_every_stage_runs_its_own_checkouts_code(stages: dict) -> None:
    assert all(stage.cmd.startswith("PYTHONPATH=src python stages/") for stage in stages.values())


def test_train_stages_share_one_dependency_list(stages: dict) -> None:
    deps = [[dep.def_path for dep in stages[f"train_{v}"].deps] for v in VARIANTS]
    assert deps[0] == deps[1] == deps[2]
    assert "src/convlab/train.py" in deps[0] and "src/convlab/stage_files.py" in deps[0]


def test_each_variant_stage_reads_its_own_params_only(stages: dict) -> None:
    for v in VARIANTS:
        params = {key for dep in stages[f"train_{v}"].deps if hasattr(dep, "params") for key in dep.params}
        assert params == {"seed", "train", v}
        evaluate = {
            key for dep in stages[f"evaluate_test@{v}"].deps if hasattr(dep, "params") for key in dep.params
        }
        assert evaluate <= {"train.device", "train.eval_batch_size", "train.channels_last"}


def test_the_paths_are_the_stage_files_paths(stages: dict) -> None:
    for v in VARIANTS:
        train, evaluate = stages[f"train_{v}"], stages[f"evaluate_test@{v}"]
        assert set(outputs(train, "outs")) == {str(stage_files.model_path(v))}
        assert set(outputs(train, "metrics")) == {str(stage_files.VAL_METRIC.path(v))}
        assert set(outputs(train, "plots")) == {
            str(t.path(v)) for t in (stage_files.EPOCHS, stage_files.STEPS, stage_files.RUNS)
        }
        assert set(outputs(evaluate, "metrics")) == {str(stage_files.TEST_METRIC.path(v))}
        assert set(outputs(evaluate, "plots")) == {
            str(t.path(v)) for t in (stage_files.TESTS, stage_files.CONFUSION)
        }
        assert {str(stage_files.PREPARED), str(stage_files.model_path(v))} <= {
            d.def_path for d in evaluate.deps
        }
    assert set(outputs(stages["download"], "outs")) == {str(stage_files.ARCHIVE)}
    assert set(outputs(stages["split"], "outs")) == {str(stage_files.PREPARED)}
    assert set(outputs(stages["report"], "outs")) == {str(stage_files.REPORT)}
    assert set(outputs(stages["report"], "plots")) == {str(stage_files.FIGURES)}
    assert set(outputs(stages["plots_page"], "outs")) == {str(stage_files.PLOTS_PAGE)}
