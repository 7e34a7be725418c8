"""Stage evaluate_test: every variant's best checkpoint on the 10,000 test images.

Writes metrics/test.json (accuracy, loss, per-class accuracy per variant) and one
plots/confusion/<variant>.csv per variant (actual and predicted class of each test image), the
form DVC's confusion template reads.
"""

from __future__ import annotations

from pathlib import Path

from convlab.checkpoint import load_model
from convlab.cifar import CLASSES
from convlab.cli import run_stage
from convlab.data import load_normalization, load_prepared
from convlab.device_data import DeviceImages
from convlab.evaluate import confusion_matrix, evaluate, per_class_accuracy
from convlab.logs import write_metrics, write_table
from convlab.params import VARIANTS, load_params
from convlab.runtime import resolve_runtime

PREPARED = Path("data/prepared")


def main(argv: list[str]) -> None:
    params = load_params()
    runtime = resolve_runtime(params.train)
    test = DeviceImages(load_prepared(PREPARED, ("test",))["test"], load_normalization(PREPARED), runtime)
    labels = test.y.cpu().numpy()
    metrics = {}
    for name in VARIANTS:
        model, info = load_model(Path("models") / f"{name}.pt", runtime.device)
        result = evaluate(model, test, params.train.eval_batch_size)
        per_class = per_class_accuracy(confusion_matrix(labels, result.predictions))
        metrics[name] = {
            "test_acc": result.accuracy,
            "test_loss": result.loss,
            "checkpoint_epoch": info["epoch"],
            "per_class_acc": {c: round(float(a), 4) for c, a in zip(CLASSES, per_class, strict=True)},
        }
        write_table(
            Path("plots/confusion") / f"{name}.csv",
            (
                {"actual": CLASSES[a], "predicted": CLASSES[p]}
                for a, p in zip(labels, result.predictions, strict=True)
            ),
        )
        print(f"evaluate_test: {name}: test acc {result.accuracy:.4f} (checkpoint of epoch {info['epoch']})")
    write_metrics("metrics/test.json", metrics)


if __name__ == "__main__":
    run_stage("evaluate_test", main)
