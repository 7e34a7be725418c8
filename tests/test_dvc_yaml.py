"""dvc.yaml keeps the properties the project relies on: every stage can enter DVC's run cache,
the three train stages share one list of dependencies, and each train stage depends on its own
variant's params only."""

from __future__ import annotations

from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
VARIANTS = ("baseline", "dropout", "staged_dropout")


def declared(stage: dict, kind: str) -> list[tuple[str, dict]]:
    """(path, options) of each entry of a stage's outs, metrics or plots."""
    entries = []
    for entry in stage.get(kind, []):
        path, options = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
        entries.append((path, options or {}))
    return entries


def test_every_stage_can_enter_the_run_cache() -> None:
    """DVC keeps a stage run in its run cache only if every output is cached by DVC or is a
    metric or plot: a plain `outs` entry with `cache: false` would keep the stage out."""
    for name, stage in STAGES.items():
        for path, options in declared(stage, "outs"):
            assert options.get("cache", True), f"{name}: {path} is an uncached plain output"
        assert stage.get("deps") and stage.get("cmd"), name


def test_git_tracked_results_are_metrics_or_plots_kept_out_of_dvc_cache() -> None:
    for name, stage in STAGES.items():
        for kind in ("metrics", "plots"):
            for path, options in declared(stage, kind):
                assert options.get("cache") is False, f"{name}: {kind} {path} should be in git (cache: false)"


def test_train_stages_share_one_dependency_list() -> None:
    deps = [STAGES[f"train_{v}"]["deps"] for v in VARIANTS]
    assert deps[0] == deps[1] == deps[2]
    assert "src/convlab/train.py" in deps[0] and "src/convlab/dropout.py" in deps[0]


def test_each_train_stage_reads_its_own_variant_only() -> None:
    for v in VARIANTS:
        params = STAGES[f"train_{v}"]["params"]
        assert sorted(params) == sorted(["seed", "train", v])
