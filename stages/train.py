"""Stage train_<variant>: train one variant once per seed (train.seeds), write the best
checkpoint of each run, the metrics (means over seeds, with spread from two seeds on), the first
seed's curves and one row per run in plots/train_<variant>/runs.csv.

Usage: python stages/train.py {baseline,dropout,staged_dropout}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from convlab.checkpoint import save_checkpoint
from convlab.cli import run_stage
from convlab.data import load_normalization, load_prepared
from convlab.device_data import DeviceImages
from convlab.fingerprint import fingerprint
from convlab.logs import write_metrics, write_table
from convlab.model import ConvNet, count_parameters
from convlab.params import ParamsError, load_params
from convlab.runtime import resolve_runtime
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
        f"seeds {', '.join(map(str, params.run_seeds))}, on {runtime.describe()}",
        flush=True,
    )

    def write_curves(history: History) -> None:
        write_table(plots / "epochs.csv", (dataclasses.asdict(e) for e in history.epochs))
        if history.steps:
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
    runs = [
        {
            "seed": seed,
            "best_val_acc": r.best_val_acc,
            "best_epoch": r.best_epoch,
            "final_val_acc": r.history.epochs[-1].val_acc,
            "final_val_loss": r.history.epochs[-1].val_loss,
            "final_train_acc": r.history.epochs[-1].train_acc,
            "final_train_loss": r.history.epochs[-1].train_loss,
            "train_seconds": round(r.history.train_seconds, 2),
        }
        for seed, r in results
    ]
    write_table(plots / "runs.csv", runs)
    write_metrics(Path("metrics") / f"{stage}.json", run_metrics(runs, results, runtime.describe()))
    for seed in params.run_seeds:  # finished: nothing left to resume
        (RESUME_DIR / f"{stage}-seed{seed}.pt").unlink(missing_ok=True)
    if len(results) > 1:
        best = summarize([r["best_val_acc"] for r in runs])
        print(
            f"{stage}: best val acc over {best.n} seeds: mean {best.mean:.4f}, std {best.std:.4f}, "
            f"95% CI [{best.ci95[0]:.4f}, {best.ci95[1]:.4f}]"
        )


def run_metrics(runs: list[dict], results: list[tuple[int, TrainResult]], runtime: str) -> dict:
    """metrics/train_<variant>.json: accuracies and losses are means over the seeds (with std and
    95% CI from two seeds on); best_epoch is the first seed's; seconds add up over the runs."""

    def mean(key: str) -> float:
        return summarize([r[key] for r in runs]).mean

    train_seconds = sum(r.history.train_seconds for _, r in results)
    images = sum(r.images_per_second * r.history.train_seconds for _, r in results)
    return {
        "seeds": len(runs),
        **summary_metrics("best_val_acc", [r["best_val_acc"] for r in runs]),
        "best_epoch": runs[0]["best_epoch"],
        **summary_metrics("final_val_acc", [r["final_val_acc"] for r in runs]),
        "final_val_loss": mean("final_val_loss"),
        "final_train_acc": mean("final_train_acc"),
        "final_train_loss": mean("final_train_loss"),
        "epochs": len(results[0][1].history.epochs),
        "train_seconds": round(train_seconds, 2),
        "wall_seconds": round(sum(r.history.wall_seconds for _, r in results), 2),
        "images_per_second": round(images / train_seconds if train_seconds else 0.0, 1),
        "runtime": runtime,
    }


if __name__ == "__main__":
    run_stage("train", main)
