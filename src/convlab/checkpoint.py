"""Model checkpoints and resume state: what is saved between stages and between epochs.

A variant's checkpoint (models/<variant>.pt) may come from a team's remote (`dvc pull`), so it is
read as untrusted: torch.load(weights_only=True) runs no code, a zip record that would inflate is
refused before loading, every run loads strictly into the ConvNet, and the checkpoint must be the
variant and seeds asked for (a dropout model copied over baseline's is refused).

Resume state lives outside DVC's outputs (DVC deletes those before a stage runs), one file per run,
in the user's cache, so a run resumes in the workspace or in any temporary copy DVC makes of it
(`dvc exp run --temp`, a queue). Its name is the key of everything that decides the run: the run's
params, torch's version and the bytes of every file its dvc.yaml stage depends on, so a changed
input starts the run afresh. It carries a sha256 of its bytes: a damaged file starts that run over.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from convlab.errors import ConvlabError
from convlab.model import ConvNet
from convlab.outputs import atomic

MAX_CHECKPOINT_BYTES = 1 << 30  # 100 runs (train.seeds' bound) of 3.6 MB of weights each, and room


class CheckpointError(ConvlabError, ValueError):
    """A checkpoint that is not the asked variant's ConvNets, or not a checkpoint at all."""


def save_models(path: Path, variant: str, runs: list[dict[str, Any]]) -> None:
    """runs: one per training run, with its seed, epoch (of the best validation accuracy), val_acc
    and state_dict."""
    with atomic(path) as tmp:
        torch.save({"variant": variant, "runs": runs}, tmp)


def load_models(
    path: Path, variant: str, seeds: list[int], device: torch.device
) -> list[tuple[ConvNet, dict]]:
    """A ConvNet per run, with that run's seed, epoch and val_acc; CheckpointError otherwise."""
    fix = f"run `dvc repro train_{variant}` (or `dvc pull`)"
    try:
        with zipfile.ZipFile(path) as archive:
            inflated = sum(entry.file_size for entry in archive.infolist())
        if inflated > MAX_CHECKPOINT_BYTES:
            raise CheckpointError(f"{path} would unpack to {inflated:,} bytes; not a checkpoint; {fix}")
        saved = torch.load(path, map_location="cpu", weights_only=True)
        models = []
        for run in saved["runs"]:
            model = ConvNet()
            model.load_state_dict(run["state_dict"], strict=True)
            facts = {"seed": int(run["seed"]), "epoch": int(run["epoch"]), "val_acc": float(run["val_acc"])}
            models.append((model.to(device), facts))
        found = str(saved["variant"])
    except (
        zipfile.BadZipFile,
        pickle.UnpicklingError,
        KeyError,
        TypeError,
        ValueError,
        RuntimeError,
        AttributeError,
    ) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"{path} is not a convlab checkpoint ({type(err).__name__}); {fix}") from None
    if found != variant:
        raise CheckpointError(f"{path} holds {found[:40]!r}'s models, not {variant!r}'s; {fix}")
    if (ran := [facts["seed"] for _, facts in models]) != seeds:
        raise CheckpointError(f"{path} holds the runs of seeds {ran[:10]}, not of {seeds}; {fix}")
    return models


def run_key(settings: dict[str, Any], files: list[Path]) -> str:
    """sha256 of the settings and of the names and bytes of `files` (folders: every file in them)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    every = sorted(p for f in files for p in ([f] if f.is_file() else sorted(f.rglob("*"))) if p.is_file())
    for path in every:
        digest.update(str(path).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def resume_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "convlab" / "resume"


def save_resume(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    with atomic(path) as tmp:
        tmp.write_bytes(hashlib.sha256(data).hexdigest().encode() + b"\n" + data)


def load_resume(path: Path) -> dict[str, Any] | None:
    """The saved state, or None: no file, or a damaged one (said in one line, and removed)."""
    try:
        digest, _, data = path.read_bytes().partition(b"\n")
    except FileNotFoundError:
        return None
    if hashlib.sha256(data).hexdigest().encode() == digest:
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception:  # the right bytes that torch cannot read: another torch's format
            pass
    print(f"resume: {path} is damaged: this run starts over", flush=True)
    path.unlink(missing_ok=True)
    return None
