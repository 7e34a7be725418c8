"""Stage evaluate_test@<variant>: the best checkpoint of each of the variant's runs on the test images.

Writes results/evaluate_<variant>/tests.csv (each run's test accuracy and loss, and the epoch of
its checkpoint), confusion.csv beside it (actual and predicted class of every test image by the
first run's model) and the mean test accuracy as the variant's metric.

Usage: python stages/evaluate.py VARIANT
"""

from __future__ import annotations

# torch reads its CPU kernel caps once, when it loads: set them from the params before it does.
from convlab.kernels import cap_from_params

cap_from_params("evaluate_test")
# ruff: noqa: E402 (the imports below load torch)

from statistics import fmean

from convlab.batches import DeviceImages
from convlab.checkpoint import load_models
from convlab.cifar import CLASSES
from convlab.data import load_normalization, load_split
from convlab.errors import ConvlabError, run_main
from convlab.evaluate import evaluate
from convlab.outputs import PREPARED, model_path, test_metric, test_results, write_csv, write_json
from convlab.params import load_params
from convlab.runtime import resolve_runtime


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise ConvlabError("usage: python stages/evaluate.py VARIANT")
    name = argv[0]
    params = load_params()
    params.variant(name)
    runtime = resolve_runtime(params.train)
    runs = load_models(model_path(name), name, params.run_seeds, runtime.device)
    test = DeviceImages(load_split(PREPARED, "test"), load_normalization(PREPARED), runtime)
    results = [evaluate(model, test, params.train.eval_batch_size) for model, _ in runs]
    rows = []
    for (_, run), result in zip(runs, results, strict=True):
        print(
            f"evaluate_test: {name} seed {run['seed']}: test acc {result.accuracy:.4f} (epoch {run['epoch']})"
        )
        rows.append(
            {
                "variant": name,
                "seed": run["seed"],
                "test_acc": result.accuracy,
                "test_loss": result.loss,
                "checkpoint_epoch": run["epoch"],
            }
        )
    write_csv(test_results(name) / "tests.csv", rows)
    labels = test.y.cpu().numpy()
    pairs = zip(labels, results[0].predictions, strict=True)
    write_csv(
        test_results(name) / "confusion.csv",
        [{"variant": name, "actual": CLASSES[a], "predicted": CLASSES[p]} for a, p in pairs],
    )
    write_json(test_metric(name), {name: {"test": fmean([r.accuracy for r in results])}})


if __name__ == "__main__":
    run_main("evaluate_test", main)
