"""Stage evaluate_test: every variant's best checkpoints (one per seed) on the 10,000 test images.

Writes metrics/test.json (per variant: test accuracy and loss, means over the seeds, with spread
from two seeds on: what compares runs), plots/test/<variant>.csv (each seed's test accuracy and
loss, and the epoch of its checkpoint) and plots/confusion/<variant>.csv (actual and predicted
class of each test image by the first seed's model, the form DVC's confusion template reads, from
which the report takes per-class accuracy).
"""

from __future__ import annotations

from pathlib import Path

from convlab.checkpoint import load_models
from convlab.cifar import CLASSES
from convlab.data import load_normalization, load_prepared
from convlab.device_data import DeviceImages
from convlab.errors import run_stage
from convlab.evaluate import evaluate
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
    # Every checkpoint is loaded (and its checksum checked) before any output is written, so a
    # damaged one leaves all of this stage's previous outputs as they were.
    checkpoints = {name: load_models(Path("models") / f"{name}.pt", runtime.device) for name in VARIANTS}
    metrics = {}
    for name, runs in checkpoints.items():
        results = [evaluate(model, test, params.train.eval_batch_size) for model, _ in runs]
        metrics[name] = {
            "seeds": len(runs),
            **summary_metrics("test_acc", [r.accuracy for r in results]),
            "test_loss": summarize([r.loss for r in results]).mean,
        }
        write_table(
            Path("plots/test") / f"{name}.csv",
            (
                {
                    "seed": info["seed"],
                    "test_acc": r.accuracy,
                    "test_loss": r.loss,
                    "checkpoint_epoch": info["epoch"],
                }
                for (_, info), r in zip(runs, results, strict=True)
            ),
        )
        write_table(
            Path("plots/confusion") / f"{name}.csv",
            (
                {"actual": CLASSES[a], "predicted": CLASSES[p]}
                for a, p in zip(labels, results[0].predictions, strict=True)
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
