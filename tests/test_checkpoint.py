"""A variant's checkpoint holds every seed's best weights, loads without unpickling code, and never
gives numbers once damaged or forged: the seal (a checksum of everything in the file) is checked on
every load, then every run's facts and weights against what a ConvNet's run must be."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from convlab.checkpoint import CheckpointError, load_models, load_sealed, save_checkpoint, save_sealed, seal
from convlab.model import ConvNet


def two_runs() -> list[dict]:
    runs = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        runs.append({"seed": seed, "epoch": 7, "val_acc": 0.5, "state_dict": ConvNet().state_dict()})
    return runs


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "v.pt"
    save_checkpoint(path, two_runs(), "v")
    return path


def same(loaded: list, runs: list[dict]) -> bool:
    """The loaded models and facts are the saved runs', bit for bit."""

    def equal(model: ConvNet, state: dict) -> bool:
        pairs = zip(model.state_dict().values(), state.values(), strict=True)
        return all(torch.equal(a, b) for a, b in pairs)

    return len(loaded) == len(runs) and all(
        info == {k: v for k, v in run.items() if k != "state_dict"} and equal(model, run["state_dict"])
        for (model, info), run in zip(loaded, runs, strict=True)
    )


def refused(path: Path) -> str:
    with pytest.raises(CheckpointError) as err:
        load_models(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)) and message.endswith("; run dvc repro")
    return message


def test_every_run_round_trips_in_order(saved: Path) -> None:
    runs = two_runs()
    loaded = load_models(saved)
    assert [info["seed"] for _, info in loaded] == [3, 4]
    assert same(loaded, runs)


@pytest.mark.parametrize(
    "old",
    [
        {"state_dict": ConvNet().state_dict(), "epoch": 3},  # one model, no runs
        {"runs": [{"seed": 0, "epoch": 3, "state_dict": ConvNet().state_dict()}], "variant": "b"},  # no seal
    ],
    ids=["no-runs", "no-checksum"],
)
def test_a_checkpoint_of_an_older_format_is_refused(tmp_path: Path, old: dict) -> None:
    torch.save(old, tmp_path / "old.pt")
    assert "is not a sealed convlab file (made by an older convlab?)" in refused(tmp_path / "old.pt")


def forged(path: Path, edit: Callable[[dict], object]) -> Path:
    """The checkpoint at path with `edit` applied to its content and the seal recomputed, as someone
    who knows the format would forge it."""
    content = load_sealed(path)
    edit(content)
    save_sealed(path, content)
    return path


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        (lambda c: c["runs"][0]["state_dict"]["fc1.weight"].fill_(float("nan")), "fc1.weight holds NaN"),
        (lambda c: c["runs"][1]["state_dict"].pop("conv4.bias"), "run 2: its weights are not the ConvNet's"),
        (lambda c: c["runs"][0].pop("epoch"), "run 1 is not a run record"),
        (lambda c: c["runs"][0].update(seed="abc"), "run 1: seed 'abc' is not an integer"),
        (lambda c: c["runs"][0].update(seed=-1), "run 1: seed -1 is not an integer"),
        (lambda c: c["runs"][1].update(val_acc=1.5), "run 2: val_acc 1.5 is not an accuracy"),
        (lambda c: c["runs"][1].update(seed=3), "a seed appears twice"),
        (
            lambda c: c["runs"][0]["state_dict"].update({"fc2.bias": torch.zeros(11)}),
            "fc2.bias is not a float32",
        ),
        (lambda c: c["runs"].clear(), "not a checkpoint: expected 1 to 100 runs"),
    ],
    ids=[
        "nan",
        "missing-weight",
        "missing-fact",
        "seed-text",
        "seed-negative",
        "accuracy",
        "seed-twice",
        "shape",
        "no-runs",
    ],
)
def test_a_forged_checkpoint_is_refused_before_any_model_is_made(saved: Path, edit, what: str) -> None:
    assert what in refused(forged(saved, edit))


def test_the_seal_tells_apart_what_a_plain_encoding_would_not() -> None:
    assert seal({"a": [1, 2]}) != seal({"a": [1], "2": []})
    assert seal({"x": 1}) != seal({"x": True}) != seal({"x": 1.0})
    assert seal({"t": torch.zeros(2, 3)}) != seal({"t": torch.zeros(3, 2)})
    assert seal({"t": torch.zeros(2)}) != seal({"t": torch.zeros(2, dtype=torch.float64)[:2].float().half()})


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        (lambda b: b"", "empty"),
        (lambda b: b[: len(b) // 2], "torch cannot read it"),  # cut short: no zip directory
        (lambda b: b[:-1], "torch cannot read it"),
        (lambda b: b"not a checkpoint at all\n" * 40, "torch cannot read it"),
        # One byte of a weight: torch's zip reader does not check CRCs, only the checksum sees it.
        (
            lambda b: b[: len(b) // 2] + bytes([b[len(b) // 2] ^ 0x01]) + b[len(b) // 2 + 1 :],
            "its content does not match its checksum",
        ),
        # ~1,000 bytes altered near the start, where the pickled facts are.
        (lambda b: b[:500] + bytes(x ^ 0x5A for x in b[500:1500]) + b[1500:], "torch cannot read it"),
    ],
    ids=["empty", "half", "last-byte-cut", "garbage", "weight-bit", "1000-bytes"],
)
def test_a_damaged_checkpoint_is_refused_in_one_line(saved: Path, damage, what: str) -> None:
    saved.write_bytes(damage(saved.read_bytes()))
    assert f"is damaged ({what}" in refused(saved)


def test_an_altered_fact_is_refused(saved: Path) -> None:
    raw = torch.load(saved, weights_only=True)
    raw["content"]["runs"][1]["val_acc"] = 0.75  # what a changed digit in the pickle would do
    torch.save(raw, saved)
    assert "does not match its checksum" in refused(saved)


def test_swapped_weights_are_refused(saved: Path) -> None:
    raw = torch.load(saved, weights_only=True)
    first, second = raw["content"]["runs"]
    first["state_dict"], second["state_dict"] = second["state_dict"], first["state_dict"]
    torch.save(raw, saved)
    assert "does not match its checksum" in refused(saved)


def test_no_flipped_bit_outside_the_weights_gives_other_numbers(saved: Path) -> None:
    """Bits flipped in the zip headers, the pickle and the zip directory (a sample of them): each
    file is refused, or loads the very same weights and facts (a flip in bytes nobody reads)."""
    good = saved.read_bytes()
    runs = two_runs()
    positions = [*range(0, 3000, 89), *range(len(good) - 3000, len(good), 89)]
    refusals = 0
    for position in positions:
        saved.write_bytes(good[:position] + bytes([good[position] ^ 0x01]) + good[position + 1 :])
        try:
            loaded = load_models(saved)
        except CheckpointError:
            refusals += 1
            continue
        assert same(loaded, runs), f"a flipped bit at byte {position} gave other numbers"
    assert refusals > len(positions) // 2
