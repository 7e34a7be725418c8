"""A variant's checkpoint holds every seed's best weights and loads without unpickling code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from convlab.checkpoint import load_model, load_models, save_checkpoint
from convlab.model import ConvNet


def test_every_run_round_trips_in_order(tmp_path: Path) -> None:
    models = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        models.append(ConvNet())
    path = tmp_path / "v.pt"
    save_checkpoint(
        path,
        [
            {"seed": s, "epoch": 7, "val_acc": 0.5, "state_dict": m.state_dict()}
            for s, m in zip((3, 4), models, strict=True)
        ],
        variant="v",
    )
    loaded = load_models(path)
    assert [info["seed"] for _, info in loaded] == [3, 4]
    for (model, _), original in zip(loaded, models, strict=True):
        assert all(
            torch.equal(a, b)
            for a, b in zip(model.state_dict().values(), original.state_dict().values(), strict=True)
        )
    first, info = load_model(path)
    assert info == {"seed": 3, "epoch": 7, "val_acc": 0.5}
    assert torch.equal(first.fc2.weight, models[0].fc2.weight)


def test_a_checkpoint_without_runs_is_refused_with_the_fix(tmp_path: Path) -> None:
    old = tmp_path / "old.pt"
    torch.save({"state_dict": ConvNet().state_dict(), "epoch": 3}, old)  # one model, no runs
    with pytest.raises(ValueError, match="not a convlab checkpoint.*re-run its train stage"):
        load_models(old)
    with pytest.raises(ValueError, match="at least one run"):
        save_checkpoint(tmp_path / "none.pt", [])
    assert not (tmp_path / "none.pt").exists()
