"""Stage train_<variant>: train one variant once per seed (train.seeds); write the best checkpoint
of each run, one row per run (results/train_<variant>/runs.csv), the first run's curves (steps.csv,
epochs.csv), and the mean best validation accuracy as the variant's metric.

Usage: python stages/train.py VARIANT (a section of params.yaml with a train_VARIANT stage)
"""

from __future__ import annotations

# torch reads its CPU kernel caps once, when it loads: set them from the params before it does.
from convlab.kernels import cap_from_params

cap_from_params("train")
# ruff: noqa: E402 (the imports below load torch)

import dataclasses
from pathlib import Path
from statistics import fmean

import torch
import yaml

from convlab.batches import DeviceImages
from convlab.checkpoint import resume_dir, run_key, save_models
from convlab.data import load_normalization, load_split
from convlab.errors import ConvlabError, run_main
from convlab.model import ConvNet, count_parameters
from convlab.outputs import PREPARED, model_path, train_results, val_metric, write_csv, write_json
from convlab.params import load_params
from convlab.runtime import hardware, resolve_runtime
from convlab.train import EpochLog, History, StepLog, train


def stage_deps(stage: str) -> list[Path]:
    """The files dvc.yaml says the stage depends on: what decides its numbers."""
    stages = yaml.safe_load(Path("dvc.yaml").read_text())["stages"]
    if stage not in stages:
        raise ConvlabError(f"dvc.yaml has no stage {stage}: add it beside the other train stages")
    return [Path(dep) for dep in stages[stage]["deps"]]


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise ConvlabError("usage: python stages/train.py VARIANT")
    name, stage = argv[0], f"train_{argv[0]}"
    params = load_params()
    variant = params.variant(name)
    runtime = resolve_runtime(params.train)
    norm = load_normalization(PREPARED)
    train_data, val_data = (DeviceImages(load_split(PREPARED, s), norm, runtime) for s in ("train", "val"))
    settings = {
        "variant": variant.model_dump(),
        "train": params.train.model_dump(),
        "torch": torch.__version__,
    }
    key = run_key(settings, stage_deps(stage))
    print(
        f"{stage}: {count_parameters(ConvNet()):,} parameters, {variant.epochs} epochs, "
        f"dropout {variant.pool1}/{variant.pool2}/{variant.fc}, augmentation {variant.augmentation}, "
        f"seeds {', '.join(map(str, params.run_seeds))}, on {runtime.describe()} "
        f"({runtime.precision_reason}; {hardware(runtime)}, {torch.get_num_threads()} threads)",
        flush=True,
    )
    tables = train_results(name)

    def write_curves(history: History) -> None:
        for name_csv, logs, kind in (
            ("epochs.csv", history.epochs, EpochLog),
            ("steps.csv", history.steps, StepLog),
        ):
            rows = [{"variant": name, **dataclasses.asdict(log)} for log in logs]
            write_csv(tables / name_csv, rows, ["variant", *kind.__dataclass_fields__])

    # One run per seed, each resumable per epoch from its own file until the stage ends: a stage
    # killed and run again skips the finished seeds and resumes the interrupted one.
    resumes = [resume_dir() / f"{stage}-seed{seed}-{key[:16]}.pt" for seed in params.run_seeds]
    results = []
    for number, (seed, resume) in enumerate(zip(params.run_seeds, resumes, strict=True), start=1):
        print(f"{stage}: run {number} of {len(resumes)}, seed {seed}", flush=True)
        result = train(
            train_data,
            val_data,
            variant,
            params.train,
            runtime,
            seed,
            resume,
            write_curves if number == 1 else None,
        )
        if result.resumed_from_epoch:
            print(f"{stage}: seed {seed} resumed after epoch {result.resumed_from_epoch}")
        print(
            f"{stage}: seed {seed}: {result.status}; best val acc {result.best_val_acc:.4f} at epoch "
            f"{result.best_epoch}; {result.history.wall_seconds:.0f}s",
            flush=True,
        )
        results.append(result)

    runs = [
        {"seed": r.seed, "epoch": r.best_epoch, "val_acc": r.best_val_acc, "state_dict": r.best_state}
        for r in results
    ]
    save_models(model_path(name), name, runs)
    write_curves(results[0].history)
    write_csv(
        tables / "runs.csv", [{"variant": name, **r.record(runtime, variant, params.train)} for r in results]
    )
    best = fmean([r.best_val_acc for r in results])
    write_json(val_metric(name), {name: {"val": best}})
    for finished in resumes:
        finished.unlink(missing_ok=True)
    print(f"{stage}: mean best val acc over {len(results)} run(s): {best:.4f}")


if __name__ == "__main__":
    run_main("train", main)
