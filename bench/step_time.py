"""Time one training step as train() runs it: the batch from the device's uint8 images, then SGD.

    python bench/step_time.py [--steps 200] [--repeats 3] [--no-compile] [--device auto]

Two tables, on the device asked for (auto: CUDA if present), batch 32, random images:
1. The baseline model (no dropout) under each precision and layout (and torch.compile; on CUDA
   also the step captured in a CUDA graph): the measurement behind train.precision /
   channels_last / compile's defaults.
2. At the runtime params' 'auto' picks on this machine: the plain step, then the same step with
   the study's dropout (0.1 / 0.2 / 0.5) by convlab's dropout and by torch's nn.Dropout, and with
   augmentation (crop 4 + flip), each as a ratio to the plain step (the goal: at most 1.10).
The variants of table 2 run interleaved, `--repeats` rounds of each, and the median is printed,
so a noisy shared host moves them together rather than favouring one.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from convlab.batches import DeviceImages, draw_pixel_maps
from convlab.data import Normalization, Split
from convlab.model import ConvNet
from convlab.params import TrainParams, load_params
from convlab.runtime import Runtime, cpu_model, resolve_device, resolve_runtime
from convlab.train import make_step

BATCH = 32
NORM = Normalization("standardize", (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
STUDY_DROPOUT = (0.1, 0.2, 0.5)


def torch_dropout(model: ConvNet) -> ConvNet:
    """The model with torch's nn.Dropout in place of convlab's, at the same rates."""
    for name in ("drop_pool1", "drop_pool2", "drop_fc"):
        setattr(model, name, nn.Dropout(getattr(model, name).p))
    return model


def make_runner(
    runtime: Runtime, model: ConvNet, padding: int, flip: bool, steps: int, graph: bool = False
) -> Callable[[], float]:
    """A function that runs `steps` training steps (after a warm-up on first use) and returns
    the seconds per step. graph=True: the step compiled with mode="reduce-overhead", which on CUDA
    captures it in a CUDA graph (one launch a step instead of one per kernel)."""
    torch.manual_seed(0)
    model = model.to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    step = make_step(model, optimizer, runtime)
    if graph:
        step = torch.compile(step, mode="reduce-overhead")
    rng = np.random.default_rng(0)
    n = 4096
    split = Split(
        rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)
    )
    data = DeviceImages(split, NORM, runtime)
    order = torch.randperm(n).to(runtime.device)
    sync = torch.cuda.synchronize if runtime.device.type == "cuda" else (lambda: None)
    position = [0]

    def run(count: int) -> None:
        for _ in range(count):
            start = position[0] % (n - BATCH)
            position[0] += BATCH
            index = order[start : start + BATCH]
            maps = None
            if padding or flip:
                maps = draw_pixel_maps(BATCH, 32, 32, padding, flip, runtime.device)
            step(*data.batch(index, maps))
        sync()

    run(20)  # warm-up (and compilation)

    def timed() -> float:
        start = time.perf_counter()
        run(steps)
        return (time.perf_counter() - start) / steps

    return timed


def table_precisions(device: torch.device, steps: int, compile_row: bool) -> None:
    print("1. baseline model, each precision and layout:")
    combos = [(bf16, cl, False) for bf16 in (False, True) for cl in (False, True)]
    if compile_row:
        combos.append((True, True, True))
    graph_row = compile_row and device.type == "cuda"  # at batch 32 a GPU step is launch-bound
    for bf16, channels_last, compiled in combos + ([(True, True, "graph")] if graph_row else []):
        graph = compiled == "graph"
        runtime = Runtime(device, torch.bfloat16 if bf16 else None, channels_last, compiled is True)
        per_step = min(make_runner(runtime, ConvNet(), 0, False, steps, graph)() for _ in range(2))
        label = f"{runtime.precision} {'channels-last' if channels_last else 'NCHW'}"
        label += " compiled" if compiled is True else " CUDA graph" if graph else ""
        print(
            f"   {label:28} {1e3 * per_step:7.2f} ms/step  {per_step * 49000 / BATCH:6.1f} s/epoch",
            flush=True,
        )


def table_variants(params: TrainParams, steps: int, repeats: int) -> None:
    runtime = resolve_runtime(params)
    print(f"2. at the 'auto' runtime, {runtime.describe()} ({runtime.precision_reason}):")
    runners = {
        "plain (baseline model)": make_runner(runtime, ConvNet(), 0, False, steps),
        "dropout 0.1/0.2/0.5, convlab's": make_runner(runtime, ConvNet(*STUDY_DROPOUT), 0, False, steps),
        "dropout 0.1/0.2/0.5, nn.Dropout": make_runner(
            runtime, torch_dropout(ConvNet(*STUDY_DROPOUT)), 0, False, steps
        ),
        "crop 4 + flip": make_runner(runtime, ConvNet(), 4, True, steps),
    }
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, timed in runners.items():
            times[name].append(timed())
    plain = statistics.median(times["plain (baseline model)"])
    for name, measured in times.items():
        per_step = statistics.median(measured)
        spread = f"{1e3 * min(measured):.2f}-{1e3 * max(measured):.2f}"
        print(
            f"   {name:32} {1e3 * per_step:7.2f} ms/step ({spread})  "
            f"{per_step * 49000 / BATCH:6.1f} s/epoch  x{per_step / plain:.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of table 2")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    parser.add_argument("--only", choices=["precisions", "variants"], help="print one table")
    args = parser.parse_args()
    params = load_params().train
    device = resolve_device(args.device)
    params = params.model_copy(update={"device": str(device)})
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    print(
        f"step_time: {device} ({where}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch {BATCH}"
    )
    if args.only != "variants":
        table_precisions(device, args.steps, not args.no_compile)
    if args.only != "precisions":
        table_variants(params, args.steps, args.repeats)


if __name__ == "__main__":
    main()
