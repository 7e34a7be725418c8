"""Train the ConvNet: SGD with momentum, cross-entropy, seeded, one path for every variant.

    train() -> for each epoch: train_epoch() (step() per batch), then validation, then the
               resume state is saved -> the run's result (best weights and its record)

Steps never wait on the device inside an epoch except at log points (every `log_every` steps, and
at the end of an epoch that had none): loss sums and correct counts accumulate in device tensors
and are read only then. After each epoch the model is validated, the best weights are kept, and
(given a resume path) the whole training state is saved, so a killed run continues from its last
finished epoch. A loss that becomes NaN or infinite ends the run there: it is a result, recorded
as diverged with the best weights it reached, and never resumed.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from convlab.batches import DeviceImages, draw_pixel_maps
from convlab.checkpoint import load_resume, save_resume
from convlab.evaluate import evaluate
from convlab.model import ConvNet
from convlab.params import TrainParams, VariantParams
from convlab.runtime import Runtime, hardware

Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class Diverged(Exception):
    """The training loss became NaN or infinite; its message says where."""


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
    seed: int
    history: History
    best_state: dict[str, torch.Tensor]
    best_epoch: int  # 0: no epoch finished (a run that diverged in its first), the initial weights
    best_val_acc: float
    best_val_loss: float
    resumed_from_epoch: int
    status: str  # "finished", or "diverged: ..." with where
    images_per_second: float  # training images over seconds in training steps, all epochs

    def record(self, runtime: Runtime, variant: VariantParams, params: TrainParams) -> dict[str, Any]:
        """The run's row of runs.csv: its accuracies and losses, how it ran and what it was trained
        with, so every result names its own settings."""
        final = self.history.epochs[-1] if self.history.epochs else None
        return {
            "seed": self.seed,
            "best_val_acc": self.best_val_acc,
            "best_epoch": self.best_epoch,
            "final_val_acc": final.val_acc if final else self.best_val_acc,
            "final_val_loss": final.val_loss if final else self.best_val_loss,
            "final_train_acc": final.train_acc if final else math.nan,
            "final_train_loss": final.train_loss if final else math.nan,
            "train_seconds": round(self.history.train_seconds, 2),
            "wall_seconds": round(self.history.wall_seconds, 2),
            "images_per_second": round(self.images_per_second, 1),
            "runtime": runtime.describe(),
            "precision_reason": runtime.precision_reason,
            "hardware": hardware(runtime),
            # CPU results repeat exactly given the kernels (train.cpu_kernels) and the thread count.
            "threads": torch.get_num_threads(),
            "cpu_kernels_used": torch.backends.cpu.get_cpu_capability()
            if runtime.device.type == "cpu"
            else "-",
            "status": self.status,
            **variant.model_dump(),
            **params.model_dump(include={"batch_size", "lr", "momentum", "cpu_kernels"}),
        }


def make_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=params.lr, momentum=params.momentum)


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, runtime: Runtime) -> Step:
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


@dataclass
class RunState:
    """Everything a run carries from epoch to epoch, and all that a resume file holds."""

    model: ConvNet
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator  # the order of the training images, its own generator
    history: History
    best_state: dict[str, torch.Tensor]
    best_epoch: int = 0
    best_val_acc: float = -1.0
    best_val_loss: float = math.nan

    @classmethod
    def fresh(cls, variant: VariantParams, params: TrainParams, runtime: Runtime, seed: int) -> RunState:
        """The seed fixes the initial weights, the dropout masks and augmentations (torch's global
        RNG) and the shuffle (its own generator)."""
        torch.manual_seed(seed)
        model = ConvNet(variant.pool1, variant.pool2, variant.fc).to(runtime.device)
        if runtime.channels_last:
            model.to(memory_format=torch.channels_last)
        shuffle = torch.Generator().manual_seed(seed)
        best = copy.deepcopy(model.state_dict())
        return cls(model, make_optimizer(model, params), shuffle, History(), best)

    def keep_if_best(self, epoch: int, val_acc: float, val_loss: float) -> None:
        if val_acc > self.best_val_acc:
            self.best_val_acc, self.best_epoch, self.best_val_loss = val_acc, epoch, val_loss
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def to_dict(self, device: torch.device) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
            "shuffle_rng": self.shuffle.get_state(),
            "history": self.history.to_dict(),
            "best_state": self.best_state,
            "best_epoch": self.best_epoch,
            "best_val_acc": self.best_val_acc,
            "best_val_loss": self.best_val_loss,
        }

    def restore(self, saved: dict[str, Any], device: torch.device) -> None:
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in saved:
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        self.shuffle.set_state(saved["shuffle_rng"])
        self.history = History.from_dict(saved["history"])
        self.best_state, self.best_epoch = saved["best_state"], saved["best_epoch"]
        self.best_val_acc, self.best_val_loss = saved["best_val_acc"], saved["best_val_loss"]


class _Meter:
    """Loss and correct-prediction sums of an epoch and of the current log window, kept on the
    device, and the first step whose loss was not finite."""

    def __init__(self, device: torch.device) -> None:
        zero = torch.zeros((), device=device)
        self.epoch_loss, self.epoch_correct = zero.clone(), zero.clone()
        self.window_loss, self.window_correct, self.window_images = zero.clone(), zero.clone(), 0
        self.first_bad_step = torch.full((), -1, dtype=torch.long, device=device)

    def add(self, loss: torch.Tensor, correct: torch.Tensor, count: int, step: int) -> None:
        self.epoch_loss += loss * count
        self.epoch_correct += correct
        self.window_loss += loss * count
        self.window_correct += correct
        self.window_images += count
        bad = ~torch.isfinite(loss) & (self.first_bad_step < 0)
        self.first_bad_step = torch.where(bad, step, self.first_bad_step)

    def bad_step(self) -> int | None:
        step = int(self.first_bad_step.item())
        return step if step >= 0 else None

    def close_window(self, step: int, epoch: int) -> StepLog:
        """The window's mean loss and accuracy as a log point; the next window starts empty."""
        point = StepLog(
            step=step,
            epoch=epoch,
            train_loss=self.window_loss.item() / self.window_images,
            train_acc=self.window_correct.item() / self.window_images,
        )
        self.window_loss.zero_()
        self.window_correct.zero_()
        self.window_images = 0
        return point


def train_epoch(
    state: RunState,
    step: Step,
    data: DeviceImages,
    variant: VariantParams,
    params: TrainParams,
    epoch: int,
    progress: bool,
) -> tuple[float, float]:
    """One pass over the training images in a fresh shuffled order; the epoch's mean training loss
    and accuracy. Appends a log point every log_every steps (counted across epochs) and at the
    epoch's end if it had none, so every epoch has a point on the training curve."""
    n, batch = len(data), params.batch_size
    steps = math.ceil(n / batch)
    first_step = (epoch - 1) * steps
    device, size = data.x.device, data.image_size
    order = torch.randperm(n, generator=state.shuffle).to(device)
    meter = _Meter(device)
    bar = tqdm(
        range(steps),
        desc=f"epoch {epoch}/{variant.epochs}",
        unit="step",
        disable=not progress,
        mininterval=2.0,
        leave=False,
    )
    for i in bar:
        global_step = first_step + i + 1
        index = order[i * batch : (i + 1) * batch]
        maps = None
        if variant.augments:
            maps = draw_pixel_maps(len(index), *size, variant.crop_padding, variant.flip, device)
        loss, correct = step(*data.batch(index, maps))
        meter.add(loss, correct, len(index), global_step)
        last = i == steps - 1
        if global_step % params.log_every == 0 or last:
            if (bad := meter.bad_step()) is not None:
                raise Diverged(f"diverged: loss {loss.item()} at step {bad} (epoch {epoch})")
            epoch_has_point = bool(state.history.steps) and state.history.steps[-1].epoch == epoch
            if global_step % params.log_every == 0 or not epoch_has_point:
                state.history.steps.append(meter.close_window(global_step, epoch))
                bar.set_postfix(loss=f"{state.history.steps[-1].train_loss:.3f}", refresh=False)
    bar.close()
    return meter.epoch_loss.item() / n, meter.epoch_correct.item() / n


def train(
    train_data: DeviceImages,
    val_data: DeviceImages,
    variant: VariantParams,
    params: TrainParams,
    runtime: Runtime,
    seed: int,
    resume: Path | None = None,
    on_epoch: Callable[[History], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a fresh ConvNet for variant.epochs epochs (or go on from the state saved at `resume`);
    return the history and the best weights. On the CPU the same seed gives the same metrics."""
    state = RunState.fresh(variant, params, runtime, seed)
    saved = load_resume(resume) if resume is not None else None
    if saved is not None:
        state.restore(saved, runtime.device)
    resumed_from = len(state.history.epochs)
    step = make_step(state.model, state.optimizer, runtime)
    status = "finished"

    for epoch in range(resumed_from + 1, variant.epochs + 1):
        start = time.perf_counter()
        state.model.train()
        try:
            train_loss, train_acc = train_epoch(state, step, train_data, variant, params, epoch, progress)
        except Diverged as diverged:
            status = str(diverged)
            print(f"epoch {epoch:3d}/{variant.epochs}  {status}: the run ends here", flush=True)
            if resume is not None:
                resume.unlink(missing_ok=True)  # a diverged run is a result, never resumed
            break
        state.history.train_seconds += time.perf_counter() - start

        val = evaluate(state.model, val_data, params.eval_batch_size)
        state.keep_if_best(epoch, val.accuracy, val.loss)
        seconds = time.perf_counter() - start
        state.history.epochs.append(EpochLog(epoch, train_loss, train_acc, val.loss, val.accuracy, seconds))
        state.history.wall_seconds += seconds
        print(
            f"epoch {epoch:3d}/{variant.epochs}  train loss {train_loss:.4f} acc {train_acc:.4f}  "
            f"val loss {val.loss:.4f} acc {val.accuracy:.4f}  {seconds:.1f}s",
            flush=True,
        )
        if resume is not None:
            save_resume(resume, state.to_dict(runtime.device))
        if on_epoch is not None:
            on_epoch(state.history)

    if state.best_epoch == 0:  # diverged in its first epoch: what it reached is its initial weights
        state.model.load_state_dict(state.best_state)
        initial = evaluate(state.model, val_data, params.eval_batch_size)
        state.best_val_acc, state.best_val_loss = initial.accuracy, initial.loss
    seconds = state.history.train_seconds
    return TrainResult(
        seed=seed,
        history=state.history,
        best_state={k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.best_state.items()},
        best_epoch=state.best_epoch,
        best_val_acc=state.best_val_acc,
        best_val_loss=state.best_val_loss,
        resumed_from_epoch=resumed_from,
        status=status,
        images_per_second=len(train_data) * len(state.history.epochs) / seconds if seconds else 0.0,
    )
