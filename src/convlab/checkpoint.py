"""Sealed files: torch saves that carry a sha256 of everything they hold, checked on every load.

Two kinds of file use them: a variant's checkpoint (the best weights of each of its training runs,
one per seed) and a run's resume state (everything a killed run needs to go on). torch's zip
reader does not check its CRCs, so without the seal a file with altered bytes would load and give
other numbers. Loading never unpickles code (weights_only=True).

A checkpoint is then checked against what it must be before any of it is used: runs with a seed,
an epoch and a validation accuracy in range, and finite weights of the ConvNet's every parameter
and shape. A file that passes the seal but not that was written by other code, or forged with a
recomputed seal: it is refused the same way, in one line.
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
from convlab.params import MAX_SEED, MAX_SEEDS

FORMAT = 3  # 1: no checksum; 2: a checksum of runs and facts only; 3: a sealed file
_FIX = "run dvc repro"


class CheckpointError(ConvlabError, ValueError):
    """A sealed file that is damaged, truncated, not convlab's, or of an older format."""

    def __init__(self, path: str | Path, what: str) -> None:
        super().__init__(f"{path} {what}; {_FIX}")
        self.path, self.what = Path(path), what


def _damaged(path: str | Path, what: str) -> CheckpointError:
    return CheckpointError(path, f"is damaged ({what})")


def _feed(digest: Any, value: Any) -> None:
    """Add value to digest in an encoding that no other value shares: each item tagged with its
    kind, containers with their length, tensors with dtype and shape before their raw bytes."""
    if isinstance(value, torch.Tensor):
        data = value.detach().to("cpu").contiguous()
        digest.update(f"T{data.dtype}{list(data.shape)}\0".encode())
        # Raw bytes of any dtype (bf16 included, which numpy lacks), hashed without a copy.
        digest.update(data.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, Mapping):
        digest.update(f"D{len(value)}\0".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}\0".encode())
        for item in value:
            _feed(digest, item)
    elif value is None or isinstance(value, (bool, int, float, str)):
        # JSON spells each of these unambiguously and never holds a raw NUL.
        digest.update(f"S{json.dumps(value)}\0".encode())
    else:
        raise TypeError(
            f"a sealed file holds tensors, containers and plain values, not {type(value).__name__}"
        )


def seal(content: Any) -> str:
    digest = hashlib.sha256()
    _feed(digest, content)
    return digest.hexdigest()


def save_sealed(path: str | Path, content: Mapping[str, Any]) -> None:
    """Save content (tensors, dicts, lists and plain values) with its seal, atomically."""
    sha256 = seal(content)
    with atomic_open(path) as handle:
        torch.save({"format": FORMAT, "content": dict(content), "sha256": sha256}, handle)


def load_sealed(path: str | Path) -> dict[str, Any]:
    """The content of a sealed file once its seal holds; CheckpointError for anything else."""
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
    if not isinstance(saved, dict) or "sha256" not in saved:
        raise CheckpointError(path, "is not a sealed convlab file (made by an older convlab?)")
    if saved.get("format") != FORMAT:
        raise CheckpointError(path, f"is of format {saved.get('format')!r}, this convlab reads {FORMAT}")
    content = saved.get("content")
    if not isinstance(content, dict):
        raise _damaged(path, "no content")
    try:
        matches = seal(content) == saved["sha256"]
    except (TypeError, ValueError, AttributeError, RuntimeError) as err:  # values of a wrong kind
        raise _damaged(path, one_line(err)) from None
    if not matches:
        raise _damaged(path, "its content does not match its checksum")
    return content


# --- checkpoints -----------------------------------------------------------------------------------


def save_checkpoint(path: str | Path, runs: Sequence[Mapping[str, Any]], variant: str) -> None:
    """runs: one mapping per training run: seed, epoch (of the best validation accuracy), val_acc
    and state_dict."""
    save_sealed(path, {"variant": variant, "runs": [dict(run) for run in runs]})


def _check_run(path: str | Path, index: int, run: Any, shapes: Mapping[str, torch.Size]) -> None:
    """Raise unless run is a training run's record with the ConvNet's finite weights."""
    where = f"run {index + 1}"
    if not isinstance(run, dict) or set(run) != {"seed", "epoch", "val_acc", "state_dict"}:
        raise _damaged(path, f"{where} is not a run record (seed, epoch, val_acc, state_dict)")
    seed, epoch, val_acc, state = run["seed"], run["epoch"], run["val_acc"], run["state_dict"]
    if type(seed) is not int or not 0 <= seed <= MAX_SEED:
        raise _damaged(path, f"{where}: seed {seed!r} is not an integer in [0, {MAX_SEED}]")
    if type(epoch) is not int or epoch < 1:
        raise _damaged(path, f"{where}: epoch {epoch!r} is not a positive integer")
    if type(val_acc) is not float or not 0 <= val_acc <= 1:
        raise _damaged(path, f"{where}: val_acc {val_acc!r} is not an accuracy in [0, 1]")
    if not isinstance(state, dict) or list(state) != list(shapes):
        raise _damaged(path, f"{where}: its weights are not the ConvNet's parameters")
    for name, tensor in state.items():
        if (
            not isinstance(tensor, torch.Tensor)
            or tensor.dtype != torch.float32
            or tensor.shape != shapes[name]
        ):
            raise _damaged(path, f"{where}: {name} is not a float32 tensor of shape {tuple(shapes[name])}")
        if not torch.isfinite(tensor).all():
            raise _damaged(path, f"{where}: {name} holds NaN or infinite weights")


def load_models(path: str | Path, device: torch.device | str = "cpu") -> list[tuple[ConvNet, dict[str, Any]]]:
    """A ConvNet per training run, with that run's seed, epoch and val_acc (dropout rates do not
    change shapes). Every run is checked before any model is made: CheckpointError otherwise."""
    content = load_sealed(path)
    runs = content.get("runs")
    if not isinstance(runs, list) or not 1 <= len(runs) <= MAX_SEEDS:
        raise _damaged(path, f"not a checkpoint: expected 1 to {MAX_SEEDS} runs")
    shapes = {name: tensor.shape for name, tensor in ConvNet().state_dict().items()}
    for index, run in enumerate(runs):
        _check_run(path, index, run, shapes)
    if len({run["seed"] for run in runs}) != len(runs):
        raise _damaged(path, "a seed appears twice")
    models = []
    for run in runs:
        facts = {key: value for key, value in run.items() if key != "state_dict"}
        model = ConvNet()
        model.load_state_dict(run["state_dict"])
        models.append((model.to(device), facts))
    return models
