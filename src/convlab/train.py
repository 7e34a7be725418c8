"""Train the ConvNet: SGD with momentum, cross-entropy, seeded, one path for every variant.

The loop never waits on the device inside an epoch except every `log_every` steps (and at the end
of an epoch that had no log point): loss sums and correct counts accumulate in device tensors, and
are read only when a log line is due. After each epoch the model is validated, the best weights
are kept, and (when a resume path is given) the whole training state is saved so a killed run
continues from its last finished epoch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from convlab.atomic import atomic_open
from convlab.augment import draw_pixel_maps
from convlab.device_data import DeviceImages
from convlab.errors import ConvlabError, one_line
from convlab.evaluate import evaluate
from convlab.model import ConvNet
from convlab.params import TrainParams, VariantParams
from convlab.runtime import Runtime


class DivergenceError(ConvlabError, RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class StepLog:
    step: int
    epoch: int
    train_loss: float
    train_acc: float


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    seconds: float


@dataclass
class History:
    steps: list[StepLog] = field(default_factory=list)
    epochs: list[EpochLog] = field(default_factory=list)
    train_seconds: float = 0.0  # time in training steps only, for images per second
    wall_seconds: float = 0.0  # everything: steps, validation, checkpoints

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [asdict(s) for s in self.steps],
            "epochs": [asdict(e) for e in self.epochs],
            "train_seconds": self.train_seconds,
            "wall_seconds": self.wall_seconds,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> History:
        return cls(
            [StepLog(**s) for s in raw["steps"]],
            [EpochLog(**e) for e in raw["epochs"]],
            raw["train_seconds"],
            raw["wall_seconds"],
        )


@dataclass(frozen=True)
class TrainResult:
    history: History
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val_acc: float
    images_per_second: float
    resumed_from_epoch: int


def make_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=params.lr, momentum=params.momentum)


def make_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, runtime: Runtime
) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """One SGD step on a batch: returns the loss and the number of correct predictions, both
    left on the device. Autocast and torch.compile as the runtime says; the loss is taken in fp32."""
    device_type = runtime.device.type
    dtype = runtime.autocast_dtype

    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        autocast = torch.autocast(device_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with autocast:
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach(), (logits.argmax(dim=1) == y).sum()

    return torch.compile(step) if runtime.compile else step


def _save_resume(path: Path, key: str, state: dict[str, Any]) -> None:
    with atomic_open(path) as handle:
        torch.save({"key": key, **state}, handle)


def _load_resume(path: Path | None, key: str) -> dict[str, Any] | None:
    """The saved state if it exists and was made by a run with the same key, else None."""
    if path is None or not path.exists():
        return None
    try:
        with warnings.catch_warnings():  # torch warns about what it cannot read: said below
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged resume file is not worth failing for: start fresh
        print(f"resume file {path} unreadable ({one_line(err)}): training starts fresh", flush=True)
        return None
    return state if isinstance(state, dict) and state.get("key") == key else None


def train(
    train_data: DeviceImages,
    val_data: DeviceImages,
    variant: VariantParams,
    params: TrainParams,
    runtime: Runtime,
    seed: int,
    resume_path: Path | None = None,
    resume_key: str = "",
    on_epoch: Callable[[History], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a fresh ConvNet for variant.epochs epochs; return the history and the best weights.

    The seed fixes the initial weights, the dropout masks and augmentations (global RNG) and the
    shuffle (its own generator), so on the CPU the same seed gives the same metrics, run after run.
    """
    device = runtime.device
    torch.manual_seed(seed)
    model = ConvNet(variant.pool1, variant.pool2, variant.fc)
    shuffle = torch.Generator().manual_seed(seed)
    model.to(device)
    if runtime.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, params)
    history = History()
    best_state = copy.deepcopy(model.state_dict())
    best_epoch, best_val_acc, start_epoch = 0, -1.0, 0

    saved = _load_resume(resume_path, resume_key)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in saved:
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        shuffle.set_state(saved["shuffle_rng"])
        history = History.from_dict(saved["history"])
        best_state, best_epoch, best_val_acc = saved["best_state"], saved["best_epoch"], saved["best_val_acc"]
        start_epoch = len(history.epochs)

    run_step = make_step(model, optimizer, runtime)
    n = len(train_data)
    batch = params.batch_size
    steps_per_epoch = math.ceil(n / batch)
    global_step = start_epoch * steps_per_epoch
    zero = torch.zeros((), device=device)
    image_size = train_data.image_size

    for epoch in range(start_epoch + 1, variant.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=shuffle).to(device)
        # Device-side accumulators: read only at log points, so steps never wait on the device.
        epoch_loss, epoch_correct = zero.clone(), zero.clone()
        window_loss, window_correct, window_images = zero.clone(), zero.clone(), 0
        first_bad_step = torch.full((), -1, dtype=torch.long, device=device)
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch}/{variant.epochs}",
            unit="step",
            disable=not progress,
            mininterval=2.0,
            leave=False,
        )
        for i in bar:
            global_step += 1
            index = order[i * batch : (i + 1) * batch]
            maps = None
            if variant.augments:
                maps = draw_pixel_maps(len(index), *image_size, variant.crop_padding, variant.flip, device)
            x, y = train_data.batch(index, maps)
            loss, correct = run_step(x, y)
            count = len(index)
            epoch_loss += loss * count
            epoch_correct += correct
            window_loss += loss * count
            window_correct += correct
            window_images += count
            bad = ~torch.isfinite(loss) & (first_bad_step < 0)
            first_bad_step = torch.where(bad, global_step, first_bad_step)
            if global_step % params.log_every == 0 or i == steps_per_epoch - 1:
                if (bad_step := int(first_bad_step.item())) >= 0:
                    raise DivergenceError(
                        f"training loss became {loss.item()} at step {bad_step} (epoch {epoch}) "
                        f"with lr={params.lr}, momentum={params.momentum}, "
                        f"batch_size={params.batch_size}, dropout=({variant.pool1}, "
                        f"{variant.pool2}, {variant.fc}); no metrics were written"
                    )
            # Every log_every steps, and at an epoch's last step if the epoch has no point yet
            # (log_every longer than an epoch), so the curve has a point per epoch at least.
            # Windows restart with each epoch, so that point is the whole epoch's mean.
            epoch_has_point = bool(history.steps) and history.steps[-1].epoch == epoch
            if global_step % params.log_every == 0 or (i == steps_per_epoch - 1 and not epoch_has_point):
                history.steps.append(
                    StepLog(
                        step=global_step,
                        epoch=epoch,
                        train_loss=window_loss.item() / window_images,
                        train_acc=window_correct.item() / window_images,
                    )
                )
                bar.set_postfix(loss=f"{history.steps[-1].train_loss:.3f}", refresh=False)
                window_loss.zero_()
                window_correct.zero_()
                window_images = 0
        bar.close()
        train_loss, train_acc = epoch_loss.item() / n, epoch_correct.item() / n
        history.train_seconds += time.perf_counter() - epoch_start

        val = evaluate(model, val_data, params.eval_batch_size)
        if val.accuracy > best_val_acc:
            best_val_acc, best_epoch = val.accuracy, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        seconds = time.perf_counter() - epoch_start
        history.epochs.append(EpochLog(epoch, train_loss, train_acc, val.loss, val.accuracy, seconds))
        history.wall_seconds += seconds
        print(
            f"epoch {epoch:3d}/{variant.epochs}  train loss {train_loss:.4f} acc {train_acc:.4f}  "
            f"val loss {val.loss:.4f} acc {val.accuracy:.4f}  {seconds:.1f}s",
            flush=True,
        )
        if resume_path is not None:
            _save_resume(
                resume_path,
                resume_key,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
                    "shuffle_rng": shuffle.get_state(),
                    "history": history.to_dict(),
                    "best_state": best_state,
                    "best_epoch": best_epoch,
                    "best_val_acc": best_val_acc,
                },
            )
        if on_epoch is not None:
            on_epoch(history)

    trained_images = n * len(history.epochs)
    return TrainResult(
        history=history,
        best_state={k: v.detach().to("cpu", copy=True).contiguous() for k, v in best_state.items()},
        best_epoch=best_epoch,
        best_val_acc=best_val_acc,
        images_per_second=trained_images / history.train_seconds if history.train_seconds else 0.0,
        resumed_from_epoch=start_epoch,
    )
