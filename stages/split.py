"""Stage split: archive -> train / validation / test arrays and normalization statistics."""

from __future__ import annotations

from convlab.cifar import read_archive
from convlab.data import Prepared, normalization_stats, save_prepared, split_dataset
from convlab.errors import run_stage
from convlab.params import load_params
from convlab.stage_files import ARCHIVE, PREPARED


def main(argv: list[str]) -> None:
    params = load_params().data
    train, val, test = split_dataset(read_archive(ARCHIVE), params.val_size)
    norm = normalization_stats(train.x, params.normalize)
    save_prepared(PREPARED, Prepared(train, val, test, norm))
    print(
        f"split: {len(train)} train, {len(val)} validation, {len(test)} test; "
        f"normalize={norm.mode} mean={[round(m, 4) for m in norm.mean]} "
        f"std={[round(s, 4) for s in norm.std]}"
    )


if __name__ == "__main__":
    run_stage("split", main)
