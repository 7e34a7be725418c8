"""Save and load a variant's checkpoint: the best weights of each of its training runs (one per
seed). Loading never unpickles code (weights_only=True).

A checkpoint carries a sha256 of everything it holds (every run's tensors with their names,
dtypes and shapes, and the facts), checked on load: torch's zip reader does not check its CRCs,
so without it a file with altered bytes would load and give wrong accuracies.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from convlab.atomic import atomic_open
from convlab.errors import ConvlabError, one_line
from convlab.model import ConvNet

FORMAT = 2  # 1: no checksum (refused); 2: sha256 over runs and facts
_RESERVED = ("format", "runs", "sha256")
_FIX = "run dvc repro"


class CheckpointError(ConvlabError, ValueError):
    """A checkpoint that is damaged, truncated, not a convlab checkpoint, or of an older format."""


def _damaged(path: str | Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path} is damaged ({what}); {_FIX}")


def _digest(runs: Sequence[Mapping[str, Any]], info: Mapping[str, Any]) -> str:
    """sha256 over the facts (as sorted JSON), then each run's tensors in order: a header with the
    run's index and size, then per tensor its name, dtype and shape and its raw bytes."""
    facts = {
        "info": dict(info),
        "runs": [{k: v for k, v in run.items() if k != "state_dict"} for run in runs],
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode())
    for index, run in enumerate(runs):
        state = run["state_dict"]
        digest.update(json.dumps(["run", index, len(state)]).encode())
        for name, tensor in state.items():
            data = tensor.detach().to("cpu").contiguous()
            digest.update(json.dumps([name, str(data.dtype), list(data.shape)]).encode())
            # Raw bytes of any dtype (bf16 included, which numpy lacks), hashed without a copy.
            digest.update(data.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def save_checkpoint(path: str | Path, runs: Sequence[Mapping[str, Any]], **info: Any) -> None:
    """runs: one mapping per training run, its `state_dict` plus facts about it (seed, epoch...).
    Facts and info must be plain JSON values (numbers, strings, lists, dicts): they are checksummed."""
    if not runs or any("state_dict" not in run for run in runs):
        raise ValueError(f"a checkpoint needs at least one run, each with a state_dict: {path}")
    if clash := sorted(set(info) & set(_RESERVED)):
        raise ValueError(f"{clash[0]!r} is the checkpoint's own key: name that fact otherwise")
    runs = [dict(run) for run in runs]
    try:
        sha256 = _digest(runs, info)
    except TypeError as err:
        raise ValueError(f"a checkpoint's facts must be plain JSON values: {err}") from None
    with atomic_open(path) as handle:
        torch.save({"format": FORMAT, "runs": runs, **info, "sha256": sha256}, handle)


def _verified(path: str | Path) -> list[dict[str, Any]]:
    """The runs of the checkpoint at path, each a dict with its state_dict, once the checksum holds."""
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise _damaged(path, "empty")
    try:
        # Damaged bytes can make torch warn (e.g. of an unknown pickle protocol) before it fails:
        # the error below says all there is, in one line.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch's reader and unpickler raise many types for damaged bytes
        raise _damaged(path, f"torch cannot read it: {one_line(err)}") from None
    runs = saved.get("runs") if isinstance(saved, dict) else None
    if not isinstance(runs, list) or not runs:
        raise _damaged(path, "not a convlab checkpoint: no runs in it")
    if not all(isinstance(run, dict) and isinstance(run.get("state_dict"), dict) for run in runs):
        raise _damaged(path, "a run without its weights")
    if "sha256" not in saved:
        raise CheckpointError(f"{path} is an old-format checkpoint (no checksum of its weights); {_FIX}")
    if saved.get("format") != FORMAT:
        raise _damaged(path, f"format {saved.get('format')!r}, this convlab reads {FORMAT}")
    info = {k: v for k, v in saved.items() if k not in _RESERVED}
    try:
        matches = _digest(runs, info) == saved["sha256"]
    except (TypeError, ValueError, AttributeError, RuntimeError) as err:  # facts or tensors of a wrong kind
        raise _damaged(path, one_line(err)) from None
    if not matches:
        raise _damaged(path, "its weights or facts do not match their checksum")
    return runs


def load_models(path: str | Path, device: torch.device | str = "cpu") -> list[tuple[ConvNet, dict[str, Any]]]:
    """A ConvNet per training run, with that run's facts (dropout rates do not change shapes).
    Raises CheckpointError for a file that is damaged, not a checkpoint or of an older format."""
    models = []
    for run in _verified(path):
        facts = dict(run)
        model = ConvNet()
        try:
            model.load_state_dict(facts.pop("state_dict"))
        except RuntimeError as err:  # checksummed, yet not a ConvNet's weights: written by other code
            raise _damaged(path, f"not a ConvNet's weights: {one_line(err)}") from None
        models.append((model.to(device), facts))
    return models


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[ConvNet, dict[str, Any]]:
    """The first run's model (seed = params' `seed`) and its facts."""
    return load_models(path, device)[0]
