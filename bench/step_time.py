"""Time one training step of the study's model under each layout, precision and compile choice.

    python bench/step_time.py [--steps 150] [--no-compile]

This is the measurement behind train.precision / channels_last / compile defaults: the SGD step
train() runs (convlab.train.make_step) at batch 32, dropout model (0.1/0.2/0.5), random inputs,
after a warm-up, on the device asked for (auto: CUDA if present). Prints milliseconds per step
and the implied seconds per 49,000-image epoch for each combination.
"""

from __future__ import annotations

import argparse
import time

import torch

from convlab.model import ConvNet
from convlab.runtime import Runtime, resolve_device
from convlab.train import make_step


def time_steps(
    device: torch.device, channels_last: bool, bf16: bool, compiled: bool, steps: int
) -> tuple[float, float]:
    torch.manual_seed(0)
    model = ConvNet(0.1, 0.2, 0.5).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(32 * (steps + 20), 3, 32, 32, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (len(x),), device=device)

    # The very step train() runs, so this times what the training does.
    run = make_step(
        model, optimizer, Runtime(device, torch.bfloat16 if bf16 else None, channels_last, compiled)
    )
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    for i in range(20):  # warm-up (and compilation)
        run(x[32 * i : 32 * (i + 1)], y[32 * i : 32 * (i + 1)])
    sync()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(20, 20 + steps):
        run(x[32 * i : 32 * (i + 1)], y[32 * i : 32 * (i + 1)])
    sync()
    return (time.perf_counter() - start) / steps, warm


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"step_time: {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch 32")
    combos = [(cl, bf16, False) for bf16 in (False, True) for cl in (False, True)]
    if not args.no_compile:
        combos.append((True, True, True))
    for channels_last, bf16, compiled in combos:
        per_step, warm = time_steps(device, channels_last, bf16, compiled, args.steps)
        label = f"{'bf16' if bf16 else 'fp32'} {'channels-last' if channels_last else 'NCHW'}"
        label += " compiled" if compiled else ""
        print(
            f"{label:28} {1e3 * per_step:7.2f} ms/step  {per_step * 49000 / 32:6.1f} s/epoch  "
            f"(warm-up {warm:.1f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
