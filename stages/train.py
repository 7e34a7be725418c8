"""Stage train_<variant>: train one variant once per seed (train.seeds), write the best checkpoint
of each run, one row per run (plots/train_<variant>/runs.csv), the first run's curves, and the
mean best validation accuracy as the variant's metric.

Usage: python stages/train.py {baseline,dropout,staged_dropout}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from convlab.atomic import check_writable
from convlab.batches import DeviceImages
from convlab.checkpoint import save_checkpoint
from convlab.data import load_normalization, load_prepared
from convlab.errors import run_stage
from convlab.fingerprint import fingerprint
from convlab.model import ConvNet, count_parameters
from convlab.params import ParamsError, load_params
from convlab.runtime import hardware, resolve_runtime
from convlab.stage_files import (
    EPOCHS,
    PREPARED,
    RUNS,
    STEPS,
    VAL_METRIC,
    model_path,
    resume_files,
    resume_path,
)
from convlab.stats import mean
from convlab.train import History, Resume, train

# The code whose change makes a run another run (so its resume state another run's).
CODE = [Path(__file__), *Path("src/convlab").glob("*.py")]


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise ParamsError("usage: python stages/train.py VARIANT (baseline, dropout or staged_dropout)")
    name = argv[0]
    params = load_params()
    variant = params.variant(name)
    stage = f"train_{name}"
    outputs = [
        model_path(name),
        *(table.path(name) for table in (EPOCHS, STEPS, RUNS)),
        VAL_METRIC.path(name),
    ]
    check_writable([*outputs, resume_path(stage, params.seed)])  # before hours of training, not after
    runtime = resolve_runtime(params.train)
    splits = load_prepared(PREPARED, ("train", "val"))
    norm = load_normalization(PREPARED)
    train_data, val_data = (DeviceImages(splits[s], norm, runtime) for s in ("train", "val"))
    settings = {
        "seed": params.seed,
        "train": dataclasses.asdict(params.train),
        "variant": dataclasses.asdict(variant),
        "torch": torch.__version__,
    }
    key = fingerprint(settings, [*CODE, *PREPARED.iterdir()])
    print(
        f"{stage}: {count_parameters(ConvNet()):,} parameters, {variant.epochs} epochs, "
        f"dropout {variant.pool1}/{variant.pool2}/{variant.fc}, augmentation {variant.augmentation}, "
        f"seeds {', '.join(map(str, params.run_seeds))}, on {runtime.describe()} "
        f"({runtime.precision_reason}; {hardware(runtime)}, {torch.get_num_threads()} threads)",
        flush=True,
    )
    # Resume files of other seeds are of settings no longer asked for: nothing will resume them.
    for stale in set(resume_files(stage)) - {resume_path(stage, seed) for seed in params.run_seeds}:
        stale.unlink(missing_ok=True)

    def write_curves(history: History) -> None:
        # Every epoch (train() logs a step point in every epoch), so the curves always exist and
        # always belong to this run.
        EPOCHS.write(name, (dataclasses.asdict(e) for e in history.epochs))
        STEPS.write(name, (dataclasses.asdict(s) for s in history.steps))

    # One run per seed, each with its own resume file until the whole stage is done, so a killed
    # stage re-run skips finished seeds (their file holds every epoch) and resumes the interrupted
    # one. The curves in plots/ are the first seed's, written as it trains.
    results = []
    for number, seed in enumerate(params.run_seeds, start=1):
        print(f"{stage}: run {number} of {len(params.run_seeds)}, seed {seed}", flush=True)
        result = train(
            train_data,
            val_data,
            variant,
            params.train,
            runtime,
            seed,
            resume=Resume(resume_path(stage, seed), f"{key}:{seed}"),
            on_epoch=write_curves if number == 1 else None,
        )
        if result.resumed_from_epoch:
            print(f"{stage}: seed {seed} resumed after epoch {result.resumed_from_epoch}")
        print(
            f"{stage}: seed {seed}: best val acc {result.best_val_acc:.4f} at epoch {result.best_epoch}, "
            f"final {result.history.epochs[-1].val_acc:.4f}; {result.history.wall_seconds:.0f}s, "
            f"{result.images_per_second:.0f} images/s",
            flush=True,
        )
        results.append(result)

    save_checkpoint(
        model_path(name),
        [
            {"seed": r.seed, "epoch": r.best_epoch, "val_acc": r.best_val_acc, "state_dict": r.best_state}
            for r in results
        ],
        variant=name,
    )
    write_curves(results[0].history)
    RUNS.write(name, (r.record(runtime) for r in results))
    best = mean([r.best_val_acc for r in results])
    VAL_METRIC.write(name, best)
    for finished in resume_files(stage):  # done: nothing left to resume
        finished.unlink(missing_ok=True)
    print(f"{stage}: mean best val acc over {len(results)} run(s): {best:.4f}")


if __name__ == "__main__":
    run_stage("train", main)
