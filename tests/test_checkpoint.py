"""A variant's checkpoint holds every seed's best weights, loads without unpickling code, and never
gives numbers once damaged: a checksum of weights and facts is checked on every load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from convlab.checkpoint import CheckpointError, load_model, load_models, save_checkpoint
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
    save_checkpoint(path, two_runs(), variant="v")
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
    first, info = load_model(saved)
    assert info == {"seed": 3, "epoch": 7, "val_acc": 0.5}
    assert torch.equal(first.fc2.weight, runs[0]["state_dict"]["fc2.weight"])


def test_a_checkpoint_without_runs_is_refused_with_the_fix(tmp_path: Path) -> None:
    old = tmp_path / "old.pt"
    torch.save({"state_dict": ConvNet().state_dict(), "epoch": 3}, old)  # one model, no runs
    assert "is damaged (not a convlab checkpoint: no runs in it)" in refused(old)
    with pytest.raises(ValueError, match="at least one run"):
        save_checkpoint(tmp_path / "none.pt", [])
    assert not (tmp_path / "none.pt").exists()


def test_a_checkpoint_of_the_format_before_checksums_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "baseline.pt"
    torch.save({"runs": [{"seed": 0, "epoch": 3, "state_dict": ConvNet().state_dict()}], "variant": "b"}, old)
    assert "is an old-format checkpoint (no checksum of its weights)" in refused(old)


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
            "its weights or facts do not match their checksum",
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
    raw["runs"][1]["val_acc"] = 0.75  # what a changed digit in the pickle would do
    torch.save(raw, saved)
    assert "do not match their checksum" in refused(saved)


def test_swapped_weights_are_refused(saved: Path) -> None:
    raw = torch.load(saved, weights_only=True)
    first, second = raw["runs"]
    first["state_dict"], second["state_dict"] = second["state_dict"], first["state_dict"]
    torch.save(raw, saved)
    assert "do not match their checksum" in refused(saved)


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
