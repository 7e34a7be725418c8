"""Time convlab's training against the textbook DataLoader loop, on the same data, in one run.

    python bench/train_speed.py --archive /path/to/cifar-10-python.tar.gz --epochs 2

The reference is the loop most tutorials write: a torchvision-style dataset of PIL images with
ToTensor + Normalize transforms, SubsetRandomSampler over the first 49,000 images, a DataLoader
with worker processes, fp32 NCHW, and `.item()` on every step. convlab's path is the library's
own `train()` with the device, precision, layout and CPU kernels params.yaml chooses (or
--precision and --cpu-kernels: `--precision auto --cpu-kernels native` is the fastest this machine
has, fp32 with AVX2 kernels what the study runs). Both loops run under the same kernel caps and
train the baseline model (no dropout) from the same seed with SGD lr 1e-3, momentum 0.9, batch 32.

Prints seconds per epoch, images per second, peak memory and validation accuracy of both, then
as its last line `ratio: X`, convlab's seconds per epoch over the reference's (lower is faster).
Without --archive it builds a synthetic archive of full size (50,000 + 10,000 images).
"""

# ruff: noqa: E402 (the kernel caps must be set before torch is imported)
from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from convlab.kernels import CAPS, cap_cpu_kernels
from convlab.params import load_params


def _early_args() -> argparse.Namespace:
    """--params and --cpu-kernels, read before torch loads: the kernel caps act only then."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--params", type=Path, default=Path("params.yaml"))
    early.add_argument("--cpu-kernels", choices=list(CAPS))
    return early.parse_known_args()[0]


if __name__ == "__main__":  # a bench that imports this module has chosen its own kernels
    _EARLY = _early_args()
    cap_cpu_kernels(_EARLY.cpu_kernels or load_params(_EARLY.params).train.cpu_kernels)

import numpy as np
import psutil
import torch
from PIL import Image
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Subset, SubsetRandomSampler
from torchvision import transforms

from convlab.batches import DeviceImages
from convlab.cifar import read_archive
from convlab.data import normalization_stats, split_dataset
from convlab.model import ConvNet
from convlab.params import TrainParams, VariantParams
from convlab.runtime import cpu_model, resolve_runtime
from convlab.synthetic import write_archive
from convlab.train import train


@dataclasses.dataclass
class Measurement:
    name: str
    seconds_per_epoch: float
    images_per_second: float
    peak_memory_mb: float
    val_acc: float


@contextmanager
def peak_memory(device: torch.device) -> Iterator[list[float]]:
    """Peak memory in MB while the block runs: GPU allocations on CUDA, else the resident set of
    this process and its children (the DataLoader workers), sampled every 20 ms."""
    result: list[float] = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        yield result
        result.append(torch.cuda.max_memory_allocated(device) / 2**20)
        return
    me, peak, done = psutil.Process(), [0], threading.Event()

    def sample() -> None:
        # Listing the children scans every process of the machine (about 2 ms, holding the GIL),
        # which every 20 ms would slow the loop being measured: the list is refreshed once a
        # second (the DataLoader's workers live for an epoch), and each sample reads only the
        # known processes' resident sizes.
        children: list[psutil.Process] = []
        listed = 0.0
        while not done.is_set():
            try:
                if time.monotonic() - listed > 1.0:
                    children, listed = me.children(recursive=True), time.monotonic()
                rss = me.memory_info().rss + sum(c.memory_info().rss for c in children)
            except psutil.Error:
                listed = 0.0  # a worker ended: list them again
                continue
            peak[0] = max(peak[0], rss)
            done.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        done.set()
        thread.join()
        result.append(peak[0] / 2**20)


class PilCifar(Dataset):
    """What torchvision.datasets.CIFAR10 does per item: an HWC PIL image through the transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: transforms.Compose) -> None:
        self.images = images.transpose(0, 2, 3, 1)  # (N, 32, 32, 3)
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def reference_loop(
    images: np.ndarray,
    labels: np.ndarray,
    n_train: int,
    mean,
    std,
    epochs: int,
    seed: int,
    workers: int,
    device: torch.device,
) -> Measurement:
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    dataset = PilCifar(images, labels, transform)
    torch.manual_seed(seed)
    model = ConvNet().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    # The sampler draws from a generator seeded like convlab's shuffle, so both loops see the
    # images in the same order from the same initial weights: what differs is only how the
    # batches are made and the arithmetic (layout, precision), which is what is compared.
    order = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(
        dataset,
        batch_size=32,
        sampler=SubsetRandomSampler(range(n_train), generator=order),
        num_workers=workers,
    )
    val_loader = DataLoader(
        Subset(dataset, range(n_train, len(dataset))), batch_size=1000, num_workers=workers
    )
    with peak_memory(device) as peak:
        start = time.perf_counter()
        for epoch in range(1, epochs + 1):
            model.train()
            running_loss, correct, seen = 0.0, 0, 0
            for x, y in train_loader:
                x, y = x.to(device), y.to(device)
                optimizer.zero_grad()
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                loss.backward()
                optimizer.step()
                running_loss += loss.item() * len(y)  # the per-step host sync tutorials have
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(y)
            model.eval()
            val_correct, val_seen = 0, 0
            with torch.no_grad():
                for x, y in val_loader:
                    x, y = x.to(device), y.to(device)
                    val_correct += (model(x).argmax(1) == y).sum().item()
                    val_seen += len(y)
            print(
                f"  reference epoch {epoch}: train loss {running_loss / seen:.4f} "
                f"val acc {val_correct / val_seen:.4f}",
                flush=True,
            )
        seconds = time.perf_counter() - start
    return Measurement(
        "reference", seconds / epochs, n_train * epochs / seconds, peak[0], val_correct / val_seen
    )


def convlab_loop(
    split_train, split_val, norm, epochs: int, seed: int, train_params: TrainParams
) -> Measurement:
    runtime = resolve_runtime(train_params)
    print(f"  convlab runtime: {runtime.describe()} ({runtime.precision_reason})", flush=True)
    variant = VariantParams(epochs=epochs, pool1=0.0, pool2=0.0, fc=0.0)
    with peak_memory(runtime.device) as peak:
        start = time.perf_counter()
        # Data onto the device is part of convlab's cost, so it is inside the timing.
        train_data = DeviceImages(split_train, norm, runtime)
        val_data = DeviceImages(split_val, norm, runtime)
        result = train(train_data, val_data, variant, train_params, runtime, seed, progress=False)
        if runtime.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return Measurement(
        "convlab",
        seconds / epochs,
        len(split_train) * epochs / seconds,
        peak[0],
        result.history.epochs[-1].val_acc,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archive", type=Path, help="cifar-10-python.tar.gz (default: synthetic, full size)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="reference DataLoader workers")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="override train.precision")
    parser.add_argument("--compile", choices=["auto", "off", "on"], help="override train.compile")
    parser.add_argument("--cpu-kernels", choices=list(CAPS), help="override train.cpu_kernels")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        archive = args.archive or write_archive(Path(tmp) / "synthetic.tar.gz")
        data = read_archive(archive)
    splits = split_dataset(data, 1000)
    train_split, val_split = splits["train"], splits["val"]
    norm = normalization_stats(train_split.x, "standardize")
    images = data.x_train.reshape(-1, 3, 32, 32)
    train_params = load_params(args.params).train
    overrides = {k: v for k, v in (("precision", args.precision), ("compile", args.compile)) if v}
    train_params = train_params.model_copy(update=overrides)
    device = resolve_runtime(train_params).device

    cpu = cpu_model()
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    print(
        f"bench: {'real' if args.archive else 'synthetic'} data, {args.epochs} epochs, batch 32; "
        f"torch {torch.__version__}, {os.cpu_count()} CPUs ({cpu}), {torch.get_num_threads()} threads, "
        f"kernels {torch.backends.cpu.get_cpu_capability()}, "
        f"GPU {gpu}",
        flush=True,
    )
    reference = reference_loop(
        images,
        data.y_train,
        len(train_split),
        norm.mean,
        norm.std,
        args.epochs,
        args.seed,
        args.workers,
        device,
    )
    ours = convlab_loop(train_split, val_split, norm, args.epochs, args.seed, train_params)
    print(f"{'':10} {'s/epoch':>9} {'images/s':>9} {'peak MB':>9} {'val acc':>8}")
    for m in (reference, ours):
        print(
            f"{m.name:10} {m.seconds_per_epoch:9.2f} {m.images_per_second:9.0f} "
            f"{m.peak_memory_mb:9.0f} {m.val_acc:8.4f}"
        )
    print(f"val acc difference (convlab - reference): {100 * (ours.val_acc - reference.val_acc):+.1f} points")
    runtime = resolve_runtime(train_params)
    print(f"machine: {cpu}; GPU {gpu}; convlab ran {runtime.describe()} ({runtime.precision_reason})")
    print(f"ratio: {ours.seconds_per_epoch / reference.seconds_per_epoch:.3f}")


if __name__ == "__main__":
    main()
