"""What a user types (params.yaml, `dvc exp run -S`): each bad value is one line naming the key, the
value and what is allowed, before any work."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from helpers import PROJECT, copy_project, one_line_error, python
from ruamel.yaml import YAML

from convlab.params import ParamsError, load_params, parse_params

COMMITTED = YAML(typ="safe", pure=True).load((PROJECT / "params.yaml").read_text())


def refusal(section: str, key: str | None, value: object) -> str:
    raw = copy.deepcopy(COMMITTED)
    if key is None:
        raw[section] = value
    else:
        raw[section][key] = value
    with pytest.raises(ParamsError) as refused:
        parse_params(raw)
    return str(refused.value)


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("train", "lr", 0.0, "train.lr = 0.0 is not allowed: expected greater than 0"),
        ("train", "lr", True, "train.lr = True is not allowed: expected a valid number"),
        ("train", "lr", "1e-3", "train.lr = '1e-3' is not allowed"),
        ("train", "momentum", 1.0, "train.momentum = 1.0 is not allowed: expected less than 1"),
        ("train", "seeds", 0, "train.seeds = 0 is not allowed"),
        ("train", "device", "cuda:128", "train.device = 'cuda:128' is not allowed: expected 'auto', 'cpu'"),
        (
            "train",
            "precision",
            "fp16",
            "train.precision = 'fp16' is not allowed: expected 'auto', 'fp32' or 'bf16'",
        ),
        ("train", "batch_sise", 32, "train.batch_sise is not a known key"),
        ("dropout", "fc", 1.0, "dropout.fc = 1.0 is not allowed: expected less than 1"),
        ("dropout", "epochs", 2.5, "dropout.epochs = 2.5 is not allowed: expected a valid integer"),
        ("staged_dropout", "crop_padding", 17, "staged_dropout.crop_padding = 17 is not allowed"),
        ("data", "val_size", 50_000, "data.val_size = 50000 is not allowed: expected less than 50000"),
        ("data", "md5", "C58F", "data.md5 = 'C58F' is not allowed"),
        ("data", "url", "http://[::1", "data.url = 'http://[::1' is not allowed: expected a well-formed URL"),
        (
            "data",
            "url",
            "http://host:abc/x",
            "data.url = 'http://host:abc/x' is not allowed: expected a well-formed",
        ),
        (
            "data",
            "url",
            "ftp://host/x",
            "data.url = 'ftp://host/x' is not allowed: expected an http://, https://",
        ),
        ("data", "url", "file://other/x", "is not allowed: expected a file URL of this machine"),
        ("seed", None, -1, "seed = -1 is not allowed: expected greater than or equal to 0"),
        ("seed", None, [1] * 1000, "seed = a list of 1000 items is not allowed"),
        ("Dropout", None, {"epochs": 1}, "'Dropout' is not a variant name"),
        ("extra", None, {"epochs": 1}, "extra.pool1 is missing"),
    ],
)
def test_one_line_names_key_value_and_what_is_allowed(
    section: str, key: str | None, value: object, expected: str
) -> None:
    message = refusal(section, key, value)
    assert expected in message and "\n" not in message


def test_yaml_is_read_as_dvc_writes_it(tmp_path: Path) -> None:
    """YAML 1.2, as `dvc exp run -S` writes it: 1e-05 is a float (YAML 1.1 would read a string)."""
    text = (PROJECT / "params.yaml").read_text().replace("lr: 0.001", "lr: 1e-05")
    (tmp_path / "params.yaml").write_text(text)
    params = load_params(tmp_path / "params.yaml")
    assert params.train.lr == 1e-05
    assert list(params.variants) == ["baseline", "dropout", "staged_dropout"]


def test_a_stage_refuses_before_any_work(tmp_path: Path) -> None:
    repo = copy_project(tmp_path, {"dropout": {"fc": 1.5}})
    line = one_line_error(python(repo, "stages/train.py", "dropout", check=False), "train")
    assert "dropout.fc = 1.5 is not allowed" in line
    assert not list((repo / "models").glob("*.pt"))
