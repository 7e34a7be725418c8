"""Where an epoch's time goes: the bare training step, the same steps inside train_epoch() (the
loop's own work: shuffling, batching, device-side sums, log points), validation, and a profile.

    python bench/epoch_profile.py --archive /path/to/cifar-10-python.tar.gz [--steps 200]

Rounds alternate the bare steps, train_epoch() over the same number of steps, and the bare steps
again while train_speed.py's memory sampler runs (a bench must not slow what it measures), in one
process, so a noisy host moves them alike; then validation of the 1,000 validation images is
timed, and a cProfile of one train_epoch() lists where its time goes by function.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import pstats
import time
from pathlib import Path

import torch
from train_speed import peak_memory  # bench/, beside this file

from convlab.batches import DeviceImages
from convlab.cifar import read_archive
from convlab.data import normalization_stats, split_dataset
from convlab.evaluate import evaluate
from convlab.params import VariantParams, load_params
from convlab.runtime import cpu_model, resolve_runtime
from convlab.train import RunState, make_step, train_epoch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    splits = split_dataset(read_archive(args.archive), 1000)
    train_split, val_split = splits["train"], splits["val"]
    norm = normalization_stats(train_split.x, "standardize")
    params = load_params().train
    runtime = resolve_runtime(params)
    print(f"epoch_profile: {cpu_model()}, {runtime.describe()}, {torch.get_num_threads()} threads")
    variant = VariantParams(epochs=1, pool1=0.0, pool2=0.0, fc=0.0)
    state = RunState.fresh(variant, params, runtime, 0)
    step = make_step(state.model, state.optimizer, runtime)
    data = DeviceImages(train_split, norm, runtime)
    images = args.steps * params.batch_size
    subset = DeviceImages(
        dataclasses.replace(train_split, x=train_split.x[:images], y=train_split.y[:images]), norm, runtime
    )
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(1))

    def bare() -> float:
        start = time.perf_counter()
        for i in range(args.steps):
            step(*data.batch(order[i * params.batch_size : (i + 1) * params.batch_size]))
        return 1e3 * (time.perf_counter() - start) / args.steps

    def loop() -> float:
        start = time.perf_counter()
        train_epoch(state, step, subset, variant, params, 1, progress=False)
        return 1e3 * (time.perf_counter() - start) / args.steps

    bare()  # warm-up
    for number in range(args.rounds):
        plain, looped = bare(), loop()
        with peak_memory(runtime.device):  # train_speed.py's sampler: does it slow what it measures?
            sampled = bare()
        print(
            f"round {number + 1}: bare step {plain:.2f} ms, in train_epoch {looped:.2f} ms "
            f"(x{looped / plain:.3f}), bare with train_speed's memory sampler {sampled:.2f} ms "
            f"(x{sampled / plain:.3f})"
        )
    start = time.perf_counter()
    evaluate(state.model, DeviceImages(val_split, norm, runtime), params.eval_batch_size)
    print(f"validation of {len(val_split)} images: {time.perf_counter() - start:.2f} s")
    profile = cProfile.Profile()
    profile.enable()
    loop()
    profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(8)
    print("\n".join(line for line in text.getvalue().splitlines() if line.strip()))


if __name__ == "__main__":
    main()
