"""Training is seeded and exact on the CPU, its speed-ups are switchable, and it fails loudly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from convlab.batches import DeviceImages
from convlab.cifar import read_archive
from convlab.data import normalization_stats, split_dataset
from convlab.params import TrainParams, VariantParams
from convlab.runtime import resolve_runtime
from convlab.train import DivergenceError, History, Resume, train

PARAMS = TrainParams(
    batch_size=32,
    lr=0.01,
    momentum=0.9,
    log_every=4,
    eval_batch_size=64,
    device="cpu",
    precision="auto",
    channels_last=True,
    compile="off",
)
VARIANT = VariantParams(epochs=2, pool1=0.1, pool2=0.2, fc=0.5)


@pytest.fixture(scope="module")
def splits(tiny_archive: Path):
    # 320 training images: 256 to train on (8 steps of 32 an epoch), 64 to validate.
    train_split, val_split, _ = split_dataset(read_archive(tiny_archive), 64)
    return train_split, val_split, normalization_stats(train_split.x, "standardize")


def run(splits, params: TrainParams = PARAMS, variant: VariantParams = VARIANT, seed: int = 0, **kwargs):
    train_split, val_split, norm = splits
    runtime = resolve_runtime(params)
    return train(
        DeviceImages(train_split, norm, runtime),
        DeviceImages(val_split, norm, runtime),
        variant,
        params,
        runtime,
        seed,
        progress=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def clean(splits):
    """The plain run (VARIANT, seed 0), trained once for the tests that compare against it."""
    return run(splits)


def curves(history: History) -> tuple:
    return (
        [(s.step, s.train_loss, s.train_acc) for s in history.steps],
        [(e.train_loss, e.train_acc, e.val_loss, e.val_acc) for e in history.epochs],
    )


def test_same_seed_gives_identical_metrics_on_cpu(splits, clean) -> None:
    first, second = clean, run(splits)
    assert curves(first.history) == curves(second.history)
    assert first.best_epoch == second.best_epoch
    assert all(torch.equal(first.best_state[k], second.best_state[k]) for k in first.best_state)


def test_another_seed_gives_another_run(splits, clean) -> None:
    assert curves(clean.history) != curves(run(splits, seed=1).history)


def test_augmentation_is_opt_in_seeded_and_still_learns(splits) -> None:
    augmented = dataclasses.replace(VARIANT, epochs=3, crop_padding=2, flip=True)
    faster = dataclasses.replace(PARAMS, lr=0.03)
    first, second = run(splits, faster, augmented), run(splits, faster, augmented)
    assert curves(first.history) == curves(second.history)
    assert curves(first.history) != curves(
        run(splits, faster, dataclasses.replace(VARIANT, epochs=3)).history
    )
    assert first.best_val_acc > 0.3  # chance is 0.1


def test_learns_the_synthetic_classes_well_above_chance(small_archive: Path) -> None:
    train_split, val_split, _ = split_dataset(read_archive(small_archive), 200)  # 800 to train on
    splits = (train_split, val_split, normalization_stats(train_split.x, "standardize"))
    params = dataclasses.replace(PARAMS, log_every=10)
    result = run(splits, params, variant=dataclasses.replace(VARIANT, epochs=3, pool1=0, pool2=0, fc=0))
    assert result.best_val_acc > 0.5
    assert [e.epoch for e in result.history.epochs] == [1, 2, 3]
    # 800 images / 32 = 25 steps an epoch, logged every 10 steps.
    assert [s.step for s in result.history.steps] == [10, 20, 30, 40, 50, 60, 70]
    assert result.images_per_second > 0


@pytest.mark.parametrize(
    ("log_every", "steps"),
    [
        (1000, [8, 16]),  # longer than the run: one point at the end of every epoch
        (12, [8, 12]),  # longer than an epoch: epoch 1 has no multiple of 12, epoch 2 has 12
        (4, [4, 8, 12, 16]),  # every epoch has points: none added (the study's case)
    ],
)
def test_every_epoch_has_a_training_curve_point(splits, log_every: int, steps: list[int]) -> None:
    # 256 images / 32 = 8 steps an epoch.
    params = dataclasses.replace(PARAMS, log_every=log_every)
    result = run(splits, params)
    assert [s.step for s in result.history.steps] == steps
    assert {s.epoch for s in result.history.steps} == {1, 2}
    for point in result.history.steps:
        if point.step % 8 == 0 and point.step % log_every != 0:  # an epoch's own point: its mean
            epoch = result.history.epochs[point.epoch - 1]
            assert (point.train_loss, point.train_acc) == (epoch.train_loss, epoch.train_acc)


def test_best_checkpoint_is_the_best_validation_epoch(clean) -> None:
    accs = [e.val_acc for e in clean.history.epochs]
    assert clean.best_val_acc == max(accs)
    assert clean.best_epoch == accs.index(max(accs)) + 1


@pytest.mark.parametrize(
    ("overrides", "precision", "channels_last", "compiled"),
    [
        ({"precision": "fp32", "channels_last": False, "compile": "off"}, "fp32", False, False),
        ({"precision": "bf16"}, "bf16", True, False),
        ({"compile": "on"}, None, True, True),
    ],
)
def test_optimizations_are_switched_by_params(overrides, precision, channels_last, compiled) -> None:
    runtime = resolve_runtime(dataclasses.replace(PARAMS, **overrides))
    if precision is not None:
        assert runtime.precision == precision
    assert runtime.channels_last is channels_last
    assert runtime.compile is compiled


def test_fp32_and_bf16_both_train_and_differ(splits) -> None:
    # Two steps: bf16 is emulated (many times slower) on a CPU without native bf16.
    train_split, val_split, norm = splits
    few = (dataclasses.replace(train_split, x=train_split.x[:64], y=train_split.y[:64]), val_split, norm)
    one = dataclasses.replace(VARIANT, epochs=1)
    fp32 = run(few, dataclasses.replace(PARAMS, precision="fp32", channels_last=False), one)
    bf16 = run(few, dataclasses.replace(PARAMS, precision="bf16"), one)
    assert curves(fp32.history) != curves(bf16.history)
    assert abs(fp32.best_val_acc - bf16.best_val_acc) < 0.15


def test_divergence_stops_at_once_naming_the_step(splits) -> None:
    params = dataclasses.replace(PARAMS, lr=1e6, log_every=1000)
    with pytest.raises(DivergenceError, match=r"became (nan|inf) at step \d+ \(epoch 1\).*lr=1000000.0"):
        run(splits, params)


class Killed(Exception):
    pass


def die_after_first_epoch(history: History) -> None:
    if len(history.epochs) == 1:
        raise Killed


def interrupt(splits, resume: Resume, variant: VariantParams = VARIANT) -> None:
    """Train until the first epoch's resume state is saved, then die as a killed process would."""
    with pytest.raises(Killed):
        run(splits, variant=variant, resume=resume, on_epoch=die_after_first_epoch)


@pytest.fixture(scope="module")
def interrupted(splits, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The resume state the plain run leaves when killed after its first epoch."""
    resume = Resume(tmp_path_factory.mktemp("interrupted") / "resume.pt", "k")
    interrupt(splits, resume)
    return resume.path.read_bytes()


@pytest.mark.parametrize("augmentation", [{}, {"crop_padding": 3, "flip": True}], ids=["plain", "augmented"])
def test_resume_after_an_interruption_gives_the_uninterrupted_metrics(
    splits, clean, tmp_path: Path, augmentation
) -> None:
    variant = dataclasses.replace(VARIANT, **augmentation)
    uninterrupted = run(splits, variant=variant) if augmentation else clean
    resume = Resume(tmp_path / "resume.pt", "k")
    interrupt(splits, resume, variant)
    resumed = run(splits, variant=variant, resume=resume)
    assert resumed.resumed_from_epoch == 1
    assert curves(resumed.history) == curves(uninterrupted.history)
    assert all(torch.equal(resumed.best_state[k], uninterrupted.best_state[k]) for k in resumed.best_state)


def test_resume_state_of_another_run_is_ignored(splits, clean, interrupted: bytes, tmp_path: Path) -> None:
    (tmp_path / "resume.pt").write_bytes(interrupted)  # saved as run "k"
    fresh = run(splits, resume=Resume(tmp_path / "resume.pt", "other-params"))
    assert fresh.resumed_from_epoch == 0
    assert curves(fresh.history) == curves(clean.history)


def flip_bits(data: bytes, start: int, mask: int) -> bytes:
    return data[:start] + bytes(b ^ mask for b in data[start : start + 64]) + data[start + 64 :]


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"not a checkpoint",
        lambda data: data[: len(data) // 2],
        # Inside the weights: low mantissa bits (other numbers) and exponent bits (NaN and huge
        # values). torch's zip reader checks no CRC; only the seal sees either.
        lambda data: flip_bits(data, len(data) // 2, 0x01),
        lambda data: flip_bits(data, len(data) // 2, 0x40),
    ],
    ids=["garbage", "cut-short", "mantissa", "exponent"],
)
def test_a_damaged_resume_state_is_said_and_never_used(
    splits, clean, interrupted: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage
) -> None:
    resume = Resume(tmp_path / "resume.pt", "k")
    resume.path.write_bytes(damage(interrupted))
    capsys.readouterr()
    again = run(splits, resume=resume)
    assert again.resumed_from_epoch == 0  # started over, from the seed: the clean run's numbers
    assert curves(again.history) == curves(clean.history)
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("resume:")]
    assert (
        len(said) == 1 and said[0].startswith(f"resume: {resume.path} ") and "this run starts over" in said[0]
    )


def test_batches_are_normalized_on_the_device(splits) -> None:
    train_split, _, norm = splits
    images = DeviceImages(train_split, norm, resolve_runtime(PARAMS))
    x, y = images.batch(torch.arange(len(images)))
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    assert np.allclose(x.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-4)
    assert np.allclose(x.std(dim=(0, 2, 3)).numpy(), 1, atol=1e-3)
    assert torch.equal(y, torch.from_numpy(train_split.y).long())
