"""Save and load model checkpoints; loading never unpickles code (weights_only=True)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from convlab.atomic import atomic_open
from convlab.model import ConvNet


def save_checkpoint(path: str | Path, state_dict: dict[str, torch.Tensor], **info: Any) -> None:
    with atomic_open(path) as handle:
        torch.save({"state_dict": state_dict, **info}, handle)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[ConvNet, dict[str, Any]]:
    """A ConvNet with the checkpoint's weights (dropout rates do not change the weights' shapes)."""
    saved = torch.load(path, map_location=device, weights_only=True)
    model = ConvNet()
    model.load_state_dict(saved.pop("state_dict"))
    return model.to(device), saved
