"""Stage evaluate_test@<variant>: the variant's best checkpoint of each run on the 10,000 test images.

Writes plots/test/<variant>.csv (each run's test accuracy and loss, and the epoch of its
checkpoint), plots/confusion/<variant>.csv (actual and predicted class of each test image by the
first run's model: DVC's confusion template reads it, the report takes per-class accuracy from
it) and the mean test accuracy as the variant's metric. One stage per variant, so changing one
variant tests that variant alone.

Usage: python stages/evaluate.py {baseline,dropout,staged_dropout}
"""

from __future__ import annotations

from convlab.batches import DeviceImages
from convlab.checkpoint import load_models
from convlab.cifar import CLASSES
from convlab.data import load_normalization, load_prepared
from convlab.errors import run_stage
from convlab.evaluate import evaluate
from convlab.params import ParamsError, load_params
from convlab.runtime import resolve_runtime
from convlab.stage_files import CONFUSION, PREPARED, TEST_METRIC, TESTS, model_path
from convlab.stats import mean


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise ParamsError("usage: python stages/evaluate.py VARIANT (baseline, dropout or staged_dropout)")
    name = argv[0]
    params = load_params()
    params.variant(name)  # a known variant, or refused naming the allowed ones
    runtime = resolve_runtime(params.train)
    # The checkpoint is checked whole (checksum, every run's facts and weights) and every run is
    # evaluated before anything is written, so a damaged input leaves the old outputs as they were.
    runs = load_models(model_path(name), runtime.device)
    test = DeviceImages(load_prepared(PREPARED, ("test",))["test"], load_normalization(PREPARED), runtime)
    results = [evaluate(model, test, params.train.eval_batch_size) for model, _ in runs]
    for (_, info), r in zip(runs, results, strict=True):
        print(
            f"evaluate_test: {name} seed {info['seed']}: test acc {r.accuracy:.4f} "
            f"(checkpoint of epoch {info['epoch']})"
        )
    TESTS.write(
        name,
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
    labels = test.y.cpu().numpy()
    CONFUSION.write(
        name,
        (
            {"actual": CLASSES[a], "predicted": CLASSES[p]}
            for a, p in zip(labels, results[0].predictions, strict=True)
        ),
    )
    TEST_METRIC.write(name, mean([r.accuracy for r in results]))


if __name__ == "__main__":
    run_stage("evaluate_test", main)
