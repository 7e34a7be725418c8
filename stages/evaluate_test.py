"""Stage evaluate_test: every variant's best checkpoints (one per seed) on the 10,000 test images.

Writes metrics/test.json (per variant: accuracy and loss, means over the seeds with spread from
two seeds on; per-class accuracy of the first seed's model) and one plots/confusion/<variant>.csv
per variant (actual and predicted class of each test image by the first seed's model), the form
DVC's confusion template reads.
"""

from __future__ import annotations

from pathlib import Path

from convlab.checkpoint import load_models
from convlab.cifar import CLASSES
from convlab.cli import run_stage
from convlab.data import load_normalization, load_prepared
from convlab.device_data import DeviceImages
from convlab.evaluate import confusion_matrix, evaluate, per_class_accuracy
from convlab.logs import write_metrics, write_table
from convlab.params import VARIANTS, load_params
from convlab.runtime import resolve_runtime
from convlab.stats import summarize, summary_metrics

PREPARED = Path("data/prepared")


def main(argv: list[str]) -> None:
    params = load_params()
    runtime = resolve_runtime(params.train)
    test = DeviceImages(load_prepared(PREPARED, ("test",))["test"], load_normalization(PREPARED), runtime)
    labels = test.y.cpu().numpy()
    metrics = {}
    for name in VARIANTS:
        runs = load_models(Path("models") / f"{name}.pt", runtime.device)
        results = [evaluate(model, test, params.train.eval_batch_size) for model, _ in runs]
        first, first_info = results[0], runs[0][1]
        per_class = per_class_accuracy(confusion_matrix(labels, first.predictions))
        metrics[name] = {
            "seeds": len(runs),
            **summary_metrics("test_acc", [r.accuracy for r in results]),
            "test_loss": summarize([r.loss for r in results]).mean,
            "checkpoint_epoch": first_info["epoch"],
            "per_class_acc": {c: round(float(a), 4) for c, a in zip(CLASSES, per_class, strict=True)},
        }
        if len(runs) > 1:
            metrics[name]["per_seed_test_acc"] = {
                str(info["seed"]): r.accuracy for (_, info), r in zip(runs, results, strict=True)
            }
        write_table(
            Path("plots/confusion") / f"{name}.csv",
            (
                {"actual": CLASSES[a], "predicted": CLASSES[p]}
                for a, p in zip(labels, first.predictions, strict=True)
            ),
        )
        for (_, info), r in zip(runs, results, strict=True):
            print(
                f"evaluate_test: {name} seed {info['seed']}: test acc {r.accuracy:.4f} "
                f"(checkpoint of epoch {info['epoch']})"
            )
    write_metrics("metrics/test.json", metrics)


if __name__ == "__main__":
    run_stage("evaluate_test", main)
