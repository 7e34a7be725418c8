"""Stage train_<variant>: train one variant once per seed (train.seeds), write the best
checkpoint of each run, the metrics (means over seeds, with spread from two seeds on), the first
seed's curves and one row per run in plots/train_<variant>/runs.csv.

metrics/ holds only what compares runs (accuracies, losses, epochs, seeds and spread), so
`dvc exp show` and `dvc metrics diff` stay readable; how each run ran (seconds, images per
second, device, precision and why, hardware) goes to runs.csv, which the report shows.

Usage: python stages/train.py {baseline,dropout,staged_dropout}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from convlab.checkpoint import save_checkpoint
from convlab.data import load_normalization, load_prepared
from convlab.device_data import DeviceImages
from convlab.errors import run_stage
from convlab.fingerprint import fingerprint
from convlab.logs import write_metrics, write_table
from convlab.model import ConvNet, count_parameters
from convlab.params import ParamsError, load_params
from convlab.runtime import Runtime, cpu_model, resolve_runtime
from convlab.stats import summarize, summary_metrics
from convlab.train import History, TrainResult, train

PREPARED = Path("data/prepared")
RESUME_DIR = Path(".convlab/resume")  # outside DVC's outputs, which DVC deletes before a run
CODE = [*Path("src/convlab").glob("*.py"), Path(__file__)]


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise ParamsError("usage: python stages/train.py VARIANT (baseline, dropout or staged_dropout)")
    name = argv[0]
    params = load_params()
    variant = params.variant(name)
    runtime = resolve_runtime(params.train)
    stage = f"train_{name}"
    plots = Path("plots") / stage

    norm = load_normalization(PREPARED)
    splits = load_prepared(PREPARED, ("train", "val"))
    train_data = DeviceImages(splits["train"], norm, runtime)
    val_data = DeviceImages(splits["val"], norm, runtime)
    settings = {
        "seed": params.seed,
        "train": dataclasses.asdict(params.train),
        "variant": dataclasses.asdict(variant),
        "torch": torch.__version__,
    }
    key = fingerprint(settings, [*CODE, *sorted(PREPARED.iterdir())])
    print(
        f"{stage}: {count_parameters(ConvNet()):,} parameters, {variant.epochs} epochs, "
        f"dropout {variant.pool1}/{variant.pool2}/{variant.fc}, "
        f"augmentation {variant.augmentation}, "
        f"seeds {', '.join(map(str, params.run_seeds))}, on {runtime.describe()} "
        f"({runtime.precision_reason}; {hardware(runtime)})",
        flush=True,
    )

    def write_curves(history: History) -> None:
        # Both files every epoch (train() logs a step point in every epoch), so the curves always
        # exist and always belong to this run.
        write_table(plots / "epochs.csv", (dataclasses.asdict(e) for e in history.epochs))
        write_table(plots / "steps.csv", (dataclasses.asdict(s) for s in history.steps))

    # One run per seed. Each keeps its own resume file until the whole stage is done, so a
    # killed stage re-run skips finished seeds (their file holds every epoch) and resumes the
    # interrupted one. The curves in plots/ are the first seed's, written as it trains.
    results: list[tuple[int, TrainResult]] = []
    for run_seed in params.run_seeds:
        if len(params.run_seeds) > 1:
            print(f"{stage}: run {len(results) + 1} of {len(params.run_seeds)}, seed {run_seed}", flush=True)
        result = train(
            train_data,
            val_data,
            variant,
            params.train,
            runtime,
            run_seed,
            resume_path=RESUME_DIR / f"{stage}-seed{run_seed}.pt",
            resume_key=f"{key}:{run_seed}",
            on_epoch=write_curves if not results else None,
        )
        if result.resumed_from_epoch:
            print(f"{stage}: seed {run_seed} resumed after epoch {result.resumed_from_epoch}")
        final = result.history.epochs[-1]
        print(
            f"{stage}: seed {run_seed}: best val acc {result.best_val_acc:.4f} at epoch "
            f"{result.best_epoch}, final {final.val_acc:.4f}; {result.history.wall_seconds:.0f}s, "
            f"{result.images_per_second:.0f} images/s",
            flush=True,
        )
        results.append((run_seed, result))

    save_checkpoint(
        Path("models") / f"{name}.pt",
        [
            {"seed": seed, "epoch": r.best_epoch, "val_acc": r.best_val_acc, "state_dict": r.best_state}
            for seed, r in results
        ],
        variant=name,
    )
    write_curves(results[0][1].history)
    runs = [run_row(seed, r, runtime) for seed, r in results]
    write_table(plots / "runs.csv", runs)
    write_metrics(Path("metrics") / f"{stage}.json", run_metrics(runs))
    for seed in params.run_seeds:  # finished: nothing left to resume
        (RESUME_DIR / f"{stage}-seed{seed}.pt").unlink(missing_ok=True)
    if len(results) > 1:
        best = summarize([r["best_val_acc"] for r in runs])
        print(
            f"{stage}: best val acc over {best.n} seeds: mean {best.mean:.4f}, std {best.std:.4f}, "
            f"95% CI [{best.ci95[0]:.4f}, {best.ci95[1]:.4f}]"
        )


def hardware(runtime: Runtime) -> str:
    """What ran the training, by name: the GPU's or the CPU's model."""
    if runtime.device.type == "cuda":
        return torch.cuda.get_device_name(runtime.device)
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


def run_row(seed: int, result: TrainResult, runtime: Runtime) -> dict:
    """One row of runs.csv: a run's accuracies and losses, and how it ran."""
    final = result.history.epochs[-1]
    return {
        "seed": seed,
        "best_val_acc": result.best_val_acc,
        "best_epoch": result.best_epoch,
        "final_val_acc": final.val_acc,
        "final_val_loss": final.val_loss,
        "final_train_acc": final.train_acc,
        "final_train_loss": final.train_loss,
        "train_seconds": round(result.history.train_seconds, 2),
        "wall_seconds": round(result.history.wall_seconds, 2),
        "images_per_second": round(result.images_per_second, 1),
        "runtime": runtime.describe(),
        "precision_reason": runtime.precision_reason,
        "hardware": hardware(runtime),
    }


def run_metrics(runs: list[dict]) -> dict:
    """metrics/train_<variant>.json: accuracies, losses and the best epoch as means over the seeds
    (accuracies with std and 95% CI from two seeds on), so one seed gives that run's numbers."""

    def mean(key: str) -> float:
        return summarize([r[key] for r in runs]).mean

    best_epochs = [r["best_epoch"] for r in runs]
    return {
        "seeds": len(runs),
        **summary_metrics("best_val_acc", [r["best_val_acc"] for r in runs]),
        "best_epoch": best_epochs[0] if len(runs) == 1 else round(mean("best_epoch"), 1),
        **summary_metrics("final_val_acc", [r["final_val_acc"] for r in runs]),
        "final_val_loss": mean("final_val_loss"),
        "final_train_acc": mean("final_train_acc"),
        "final_train_loss": mean("final_train_loss"),
    }


if __name__ == "__main__":
    run_stage("train", main)
