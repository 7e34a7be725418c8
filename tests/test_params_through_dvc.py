"""What `dvc exp run -S` writes into params.yaml is read as the user meant it, for every kind of
param, with the spellings users type (YAML 1.2: `1e-5` a float, `off` a string, `true` a bool)."""

from __future__ import annotations

from pathlib import Path

import pytest
from project import copy_project, dvc, ran_stages

from convlab.cifar import file_md5
from convlab.params import load_params
from convlab.synthetic import write_archive

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            ["train.lr=1e-5", "train.momentum=0.0005", "train.compile=off", "staged_dropout.flip=true"],
            {"lr": 1e-05, "momentum": 0.0005, "compile": "off", "flip": True},
        ),
        (
            ["train.lr=5e-4", "train.compile=on", "dropout.fc=5e-1", "train.channels_last=false"],
            {"lr": 0.0005, "compile": "on", "fc": 0.5, "channels_last": False},
        ),
    ],
    ids=["1e-5,0.0005,off,true", "5e-4,on,5e-1,false"],
)
def test_each_spelling_reaches_the_stage_as_meant(
    tmp_path: Path, settings: list[str], expected: dict
) -> None:
    archive = write_archive(tmp_path / "cifar-10-python.tar.gz", per_batch=20, test_size=20)
    repo = copy_project(tmp_path / "repo", {"data": {"url": archive.as_uri(), "md5": file_md5(archive)}})
    args = [arg for setting in settings for arg in ("-S", setting)]
    # The download stage loads (and so validates) every param before it fetches anything.
    result = dvc(repo, "exp", "run", *args, "download")
    assert ran_stages(result.stdout) == ["download"]
    params = load_params(repo / "params.yaml")
    got = {
        "lr": params.train.lr,
        "momentum": params.train.momentum,
        "compile": params.train.compile,
        "channels_last": params.train.channels_last,
        "flip": params.variant("staged_dropout").flip,
        "fc": params.variant("dropout").fc,
    }
    assert {key: got[key] for key in expected} == expected
