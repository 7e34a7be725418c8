"""Save and load a variant's checkpoint: the best weights of each of its training runs (one per
seed). Loading never unpickles code (weights_only=True)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from convlab.atomic import atomic_open
from convlab.model import ConvNet


def save_checkpoint(path: str | Path, runs: Sequence[Mapping[str, Any]], **info: Any) -> None:
    """runs: one mapping per training run, its `state_dict` plus facts about it (seed, epoch...)."""
    if not runs or any("state_dict" not in run for run in runs):
        raise ValueError(f"a checkpoint needs at least one run, each with a state_dict: {path}")
    with atomic_open(path) as handle:
        torch.save({"runs": [dict(run) for run in runs], **info}, handle)


def load_models(path: str | Path, device: torch.device | str = "cpu") -> list[tuple[ConvNet, dict[str, Any]]]:
    """A ConvNet per training run, with that run's facts (dropout rates do not change shapes)."""
    saved = torch.load(path, map_location=device, weights_only=True)
    runs = saved.get("runs") if isinstance(saved, dict) else None
    if not isinstance(runs, list) or not runs:
        raise ValueError(f"{path} is not a convlab checkpoint (no runs in it): re-run its train stage")
    models = []
    for run in runs:
        facts = dict(run)
        model = ConvNet()
        model.load_state_dict(facts.pop("state_dict"))
        models.append((model.to(device), facts))
    return models


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[ConvNet, dict[str, Any]]:
    """The first run's model (seed = params' `seed`) and its facts."""
    return load_models(path, device)[0]
