"""The report says which differences between variants are larger than noise, on known numbers;
intervals stay possible; the study's reference figure appears only for the study's settings."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from convlab.figures import plot_seeds, write_figures
from convlab.params import TrainParams, VariantParams
from convlab.reference import NOT_THE_STUDYS, reference_for
from convlab.report import VariantResult, markdown


def variant(name: str, val: list[float], test: list[float], correct: np.ndarray) -> VariantResult:
    epochs = [
        {"epoch": e, "train_loss": 1.0, "train_acc": 0.6, "val_loss": 1.0, "val_acc": val[0]}
        for e in range(1, 21)
    ]
    runs = [
        {
            "seed": seed,
            "best_val_acc": acc,
            "best_epoch": 12,
            "final_val_acc": 0.7,
            "train_seconds": 100.0,
            "images_per_second": 4000.0,
            "runtime": "cpu fp32 NCHW",
            "hardware": "Some CPU",
            "threads": 2,
        }
        for seed, acc in enumerate(val)
    ]
    return VariantResult(
        name=name,
        dropout=(0.1, 0.2, 0.5),
        augmentation="none",
        epochs=epochs,
        runs=runs,
        test_runs=test,
        confusion=np.eye(10, dtype=np.int64) * 100,
        correct=correct,
        reference="val 77%, test 75%",
    )


def cells(line: str) -> list[str]:
    """A Markdown table row's cells, without the padding to_markdown adds."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def row(report: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first` and that has a difference in points."""
    return next(
        cells(line)
        for line in report.splitlines()
        if line.startswith("|") and cells(line)[0] == first and "points" in line
    )


def correct(right: int, n: int = 1000) -> np.ndarray:
    return np.arange(n) < right


def test_single_runs_read_as_means_of_one_and_are_not_judged_against_seed_noise() -> None:
    # The earlier single-run study's accuracies: one path with the several-seed report, each cell a
    # mean of one (no spread), no verdict (one run cannot measure the seeds' noise), the
    # evaluation's own noise said (1.4 points on 1,000 images), McNemar on the test images.
    results = [
        variant("baseline", [0.739], [0.722], correct(722)),
        variant("dropout", [0.772], [0.747], correct(747)),
        variant("staged_dropout", [0.810], [0.788], correct(788)),
    ]
    report = markdown(results, val_size=1000, test_size=1000, normalize="standardize")
    baseline = next(cells(line) for line in report.splitlines() if line.startswith("| baseline "))
    assert baseline[:8] == ["baseline", "0.1/0.2/0.5", "none", "20", "1", "73.9%", "12", "72.2%"]
    assert baseline[-2:] == ["cpu fp32 NCHW, Some CPU, 2 threads", "val 77%, test 75%"]
    assert row(report, "baseline vs dropout") == [
        "baseline vs dropout",
        "-3.3 points",
        "not judged (one run each)",
        "-2.5 points",
        "not judged (one run each)",
    ]
    assert "1 run per variant (seed 0)" in report and "moves about 1.4 points" in report
    assert "train.seeds=5" in report  # the way to measure the seeds' noise
    # McNemar on the test images: 66 images only the staged model gets right, none the other way.
    mcnemar_rows = [cells(line) for line in report.splitlines() if "(5% level)" in line]
    assert ["baseline vs staged_dropout", "-6.6 points", "0", "66"] in [r[:4] for r in mcnemar_rows]
    assert "figures/seeds.png" in report


def test_several_seeds_give_mean_spread_and_welch_verdicts() -> None:
    # std 1 point for every variant, 3 seeds: Welch df = 4, t = 2.776, se = 0.816 points, so a
    # gap needs about 2.3 points: baseline vs dropout (-1.0) is within noise, vs staged (-7.0) not.
    # (Equal spreads and sizes give an integer df: the intervals are those of the t table.)
    results = [
        variant("baseline", [0.73, 0.74, 0.75], [0.72, 0.73, 0.74], correct(720)),
        variant("dropout", [0.74, 0.75, 0.76], [0.73, 0.74, 0.75], correct(730)),
        variant("staged_dropout", [0.80, 0.81, 0.82], [0.78, 0.79, 0.80], correct(780)),
    ]
    report = markdown(results, val_size=1000, test_size=1000, normalize="standardize")
    # mean +- std [95% CI]: 74.0 +- 1.0 [74.0 - 2.48, 74.0 + 2.48]
    baseline = next(cells(line) for line in report.splitlines() if line.startswith("| baseline "))
    assert baseline[4:8] == ["3", "74.0% ± 1.0 [71.5, 76.5]", "12", "73.0% ± 1.0 [70.5, 75.5]"]
    assert row(report, "baseline vs dropout") == [
        "baseline vs dropout",
        "-1.0 points [-3.3, +1.3]",
        "within noise",
        "-1.0 points [-3.3, +1.3]",
        "within noise",
    ]
    assert row(report, "baseline vs staged_dropout") == [
        "baseline vs staged_dropout",
        "-7.0 points [-9.3, -4.7]",
        "**larger than noise**",
        "-6.0 points [-8.3, -3.7]",
        "**larger than noise**",
    ]
    assert "†" not in report  # no interval had to be cut
    assert "seeds 0, 1, 2" in report


def test_the_figures_are_written_and_the_seeds_figure_takes_one_run(tmp_path: Path) -> None:
    images, labels = np.zeros((100, 3, 32, 32), np.uint8), np.zeros(100, np.int64)
    several = [variant(n, [0.70, 0.71, 0.72], [0.7] * 3, correct(700)) for n in ("baseline", "dropout")]
    write_figures(tmp_path, several, images, labels)
    names = {"first_image", "first_100", "val_acc", "curves_baseline", "curves_dropout", "confusion", "seeds"}
    assert {p.stem for p in tmp_path.iterdir()} == names
    assert all(p.stat().st_size > 1000 for p in tmp_path.iterdir())
    plot_seeds([variant("baseline", [0.7], [0.7], correct(700))], tmp_path / "one.png")  # no interval
    assert (tmp_path / "one.png").stat().st_size > 1000


def test_two_far_apart_seeds_give_intervals_within_0_and_100() -> None:
    """Two seeds at 9% and 22% (the case that printed [-67.1, 98.1]): the interval is cut at 0 and
    marked, the note says why; so is a difference interval that would pass +-100 points."""
    results = [
        variant("baseline", [0.09, 0.22], [0.09, 0.22], correct(90)),
        variant("dropout", [0.95, 0.10], [0.95, 0.10], correct(950)),
    ]
    report = markdown(results, val_size=1000, test_size=1000, normalize="standardize")
    baseline = next(cells(line) for line in report.splitlines() if line.startswith("| baseline "))
    assert baseline[5].startswith("15.5% ± 9.2 [0.0, ") and baseline[5].endswith("]†")
    assert "is cut at that bound" in report
    for line in report.splitlines():
        for number in [float(x) for x in re.findall(r"\[(-?[\d.]+), ", line)]:
            assert number >= -100


def test_the_studys_figure_only_for_the_studys_settings() -> None:
    sgd = TrainParams(32, 1e-3, 0.9, 200, 1000, "auto", "auto", True, "auto")
    study = VariantParams(40, 0.1, 0.2, 0.5)
    assert reference_for("staged_dropout", study, sgd) == "val 77%, test 75%"
    assert reference_for("staged_dropout", dataclasses.replace(study, epochs=60), sgd) == NOT_THE_STUDYS
    assert reference_for("staged_dropout", dataclasses.replace(study, flip=True), sgd) == NOT_THE_STUDYS
    assert reference_for("staged_dropout", study, dataclasses.replace(sgd, lr=0.01)) == NOT_THE_STUDYS
    assert reference_for("baseline", VariantParams(20, 0.0, 0.0, 0.0), sgd) == "val close to 70%"
    assert reference_for("baseline", VariantParams(3, 0.0, 0.0, 0.0), sgd) == NOT_THE_STUDYS
