"""Stage train_<variant>: train one variant, write its best checkpoint, metrics and curves.

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
from convlab.train import History, train

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
        f"dropout {variant.pool1}/{variant.pool2}/{variant.fc}, on {runtime.describe()}",
        flush=True,
    )

    def write_curves(history: History) -> None:
        write_table(plots / "epochs.csv", (dataclasses.asdict(e) for e in history.epochs))
        if history.steps:
            write_table(plots / "steps.csv", (dataclasses.asdict(s) for s in history.steps))

    result = train(
        train_data,
        val_data,
        variant,
        params.train,
        runtime,
        params.seed,
        resume_path=RESUME_DIR / f"{stage}.pt",
        resume_key=key,
        on_epoch=write_curves,
    )
    if result.resumed_from_epoch:
        print(f"{stage}: resumed after epoch {result.resumed_from_epoch}")
    history = result.history
    final = history.epochs[-1]
    save_checkpoint(
        Path("models") / f"{name}.pt",
        result.best_state,
        variant=name,
        epoch=result.best_epoch,
        val_acc=result.best_val_acc,
    )
    write_curves(history)
    write_metrics(
        Path("metrics") / f"{stage}.json",
        {
            "best_val_acc": result.best_val_acc,
            "best_epoch": result.best_epoch,
            "final_val_acc": final.val_acc,
            "final_val_loss": final.val_loss,
            "final_train_acc": final.train_acc,
            "final_train_loss": final.train_loss,
            "epochs": len(history.epochs),
            "train_seconds": round(history.train_seconds, 2),
            "wall_seconds": round(history.wall_seconds, 2),
            "images_per_second": round(result.images_per_second, 1),
            "runtime": runtime.describe(),
        },
    )
    (RESUME_DIR / f"{stage}.pt").unlink(missing_ok=True)  # finished: nothing left to resume
    print(
        f"{stage}: best val acc {result.best_val_acc:.4f} at epoch {result.best_epoch}, "
        f"final {final.val_acc:.4f}; {history.wall_seconds:.0f}s, "
        f"{result.images_per_second:.0f} images/s"
    )


if __name__ == "__main__":
    run_stage("train", main)
