"""Stage split: archive -> train / validation / test arrays, normalization statistics and the
content checksum of what was read."""

from __future__ import annotations

from convlab.cifar import read_archive
from convlab.data import normalization_stats, save_prepared, split_dataset
from convlab.errors import run_main
from convlab.outputs import ARCHIVE, PREPARED
from convlab.params import load_params


def main(argv: list[str]) -> None:
    params = load_params().data
    data = read_archive(ARCHIVE)
    splits = split_dataset(data, params.val_size)
    norm = normalization_stats(splits["train"].x, params.normalize)
    save_prepared(PREPARED, splits, norm, data.content_sha256())
    sizes = ", ".join(f"{len(split)} {name}" for name, split in splits.items())
    print(
        f"split: {sizes}; normalize={norm.mode} mean={[round(m, 4) for m in norm.mean]} "
        f"std={[round(s, 4) for s in norm.std]}"
    )


if __name__ == "__main__":
    run_main("split", main)
