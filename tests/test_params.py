"""params.yaml is validated at load: every bad value fails naming the key, value and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from convlab.params import ParamsError, load_params, parse_params, read_params_file
from convlab.runtime import resolve_device

PROJECT = Path(__file__).parents[1]
RAW = read_params_file(PROJECT / "params.yaml")
PARAMS_TEXT = (PROJECT / "params.yaml").read_text()


def with_value(path: str, value: object) -> dict:
    raw = copy.deepcopy(RAW)
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


def test_committed_params_match_the_study() -> None:
    params = load_params(PROJECT / "params.yaml")
    assert params.seed == 0
    assert (params.train.batch_size, params.train.lr, params.train.momentum) == (32, 0.001, 0.9)
    assert params.train.log_every == 200
    assert params.data.val_size == 1000
    assert params.data.normalize == "standardize"
    assert params.data.md5 == "c58f30108f718f92721af3b95e74349a"
    b, d, s = params.variant("baseline"), params.variant("dropout"), params.variant("staged_dropout")
    assert (b.epochs, b.pool1, b.pool2, b.fc) == (20, 0, 0, 0)
    assert (d.epochs, d.pool1, d.pool2, d.fc) == (20, 0.1, 0.1, 0.1)
    assert (s.epochs, s.pool1, s.pool2, s.fc) == (40, 0.1, 0.2, 0.5)
    # The study itself: five runs per variant (seeds 0-4), no augmentation.
    assert params.train.seeds == 5 and params.run_seeds == [0, 1, 2, 3, 4]
    assert not any(v.augments for v in (b, d, s)) and s.augmentation == "none"


def test_each_run_gets_the_next_seed() -> None:
    raw = with_value("train.seeds", 3)
    raw["seed"] = 7
    assert parse_params(raw).run_seeds == [7, 8, 9]


def test_augmentation_is_described_in_words() -> None:
    raw = with_value("staged_dropout.crop_padding", 4)
    raw["staged_dropout"]["flip"] = True
    variant = parse_params(raw).variant("staged_dropout")
    assert variant.augments and variant.augmentation == "crop (pad 4) + flip"


BAD_VALUES = [
    ("train.lr", 0, "train.lr = 0"),
    ("train.lr", -0.1, "a number > 0"),
    ("train.lr", "fast", "expected float"),
    ("train.lr", float("nan"), "expected float"),
    ("train.batch_size", 0, "train.batch_size = 0"),
    ("train.batch_size", 32.5, "expected int"),
    ("train.batch_size", True, "expected int"),
    ("train.momentum", 1.0, "momentum in [0, 1)"),
    ("train.log_every", -1, "train.log_every"),
    ("train.device", "tpu", "'auto', 'cpu', 'cuda' or 'cuda:N' with N in 0..127"),
    # What torch would read otherwise, or fail on only after the download and the split.
    ("train.device", "cpu\n", "train.device = 'cpu\\n' is not allowed"),
    ("train.device", " cpu", "train.device = ' cpu' is not allowed"),
    ("train.device", "cuda:\u0663", "train.device = 'cuda:\u0663' is not allowed"),
    ("train.device", "cuda:128", "with N in 0..127"),
    ("train.device", "cuda:99999999999999999999", "with N in 0..127"),
    ("train.device", "cuda:01", "with N in 0..127"),
    ("train.precision", "fp16", "'auto', 'fp32', 'bf16'"),
    ("train.compile", "yes", "'auto', 'off', 'on'"),
    ("train.channels_last", "true", "expected bool"),
    ("dropout.fc", 1.0, "dropout.fc = 1.0 is not allowed: expected a dropout rate in [0, 1)"),
    ("dropout.pool1", -0.1, "dropout rate in [0, 1)"),
    ("staged_dropout.pool2", "0.2", "expected float"),
    ("baseline.epochs", 0, "baseline.epochs = 0"),
    ("baseline.epochs", 2.5, "expected int"),
    ("data.val_size", 0, "data.val_size = 0"),
    ("data.normalize", "minmax", "'standardize', 'none'"),
    ("data.url", "ftp://example.org/c.tar.gz", "http://, https:// or file:// URL"),
    ("data.url", "file://otherhost/c.tar.gz", "a file URL of this machine (file:///path)"),
    ("data.url", "http:///c.tar.gz", "an http:// or https:// URL with a host"),
    ("data.url", "https://example.org/a b.tar.gz", "without spaces or control characters"),
    ("data.md5", "abc", "md5"),
    ("data.content_sha256", "Z" * 64, "sha256"),
    ("train.seeds", 0, "train.seeds = 0 is not allowed: expected an integer in [1, 100]"),
    ("train.seeds", 101, "train.seeds = 101 is not allowed: expected an integer in [1, 100]"),
    ("train.seeds", 4611686018427387904, "train.seeds = 4611686018427387904 is not allowed"),
    ("train.seeds", 2.0, "expected int"),
    ("staged_dropout.crop_padding", 17, "an integer in [0, 16] (pixels)"),
    ("staged_dropout.crop_padding", -1, "an integer in [0, 16] (pixels)"),
    ("dropout.flip", "yes", "expected bool"),
    ("dropout.flip", 1, "expected bool"),
    ("seed", -1, "seed = -1"),
    ("seed", "zero", "expected int"),
    # Upper bounds: each of these would have run until memory or time ran out, or overflowed.
    ("seed", 2**63, f"seed = {2**63} is not allowed: expected an integer in [0, {2**63 - 1}]"),
    ("seed", 18446744073709551616, "seed = 18446744073709551616 is not allowed"),
    ("train.batch_size", 4097, "train.batch_size = 4097 is not allowed: expected an integer in [1, 4096]"),
    ("train.eval_batch_size", 10_001, "expected an integer in [1, 10000]"),
    ("train.eval_batch_size", 0, "expected an integer in [1, 10000]"),
    ("train.log_every", 10**18, "expected an integer in [1, 1000000]"),
    ("baseline.epochs", 1001, "baseline.epochs = 1001 is not allowed: expected an integer in [1, 1000]"),
    ("data.val_size", 50_000, "expected an integer in [1, 49999] (CIFAR-10 has 50,000 training images)"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_VALUES)
def test_bad_value_is_refused_with_key_value_and_rule(key: str, value: object, message: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse_params(with_value(key, value))
    assert key in str(err.value)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("seed", 2**63 - 1),
        ("train.seeds", 100),
        ("train.batch_size", 4096),
        ("train.eval_batch_size", 10_000),
        ("train.log_every", 1_000_000),
        ("dropout.epochs", 1000),
        ("data.val_size", 49_999),
    ],
)
def test_the_upper_bounds_themselves_are_allowed(key: str, value: int) -> None:
    raw = with_value(key, value)
    if key == "seed":  # the largest seed leaves room for one run only
        raw["train"]["seeds"] = 1
    parse_params(raw)


def test_every_run_seed_must_be_a_valid_seed() -> None:
    raw = with_value("train.seeds", 3)
    raw["seed"] = 2**63 - 3  # runs 2**63 - 3, - 2, - 1: the last is the largest seed
    assert parse_params(raw).run_seeds[-1] == 2**63 - 1
    raw["train"]["seeds"] = 4
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    assert str(err.value).startswith("train.seeds = 4 is not allowed: expected at most 3 with seed = ")
    assert "\n" not in str(err.value)


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ParamsError, match=r"train\.lrate is not a known key"):
        parse_params(with_value("train.lrate", 0.1))
    with pytest.raises(ParamsError, match="extra is not a known key"):
        parse_params(with_value("extra", 1))


def test_missing_keys_are_refused() -> None:
    raw = copy.deepcopy(RAW)
    del raw["dropout"]["fc"]
    with pytest.raises(ParamsError, match=r"dropout\.fc is missing"):
        parse_params(raw)
    raw = copy.deepcopy(RAW)
    del raw["train"]["seeds"]
    with pytest.raises(ParamsError, match=r"train\.seeds is missing"):
        parse_params(raw)


def test_integer_is_accepted_for_a_float() -> None:
    assert parse_params(with_value("dropout.fc", 0)).variant("dropout").fc == 0.0


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(ParamsError, match="unknown variant 'wide'"):
        parse_params(RAW).variant("wide")


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("written", "key", "value"),
    [
        # What `dvc exp run -S` writes for the spellings users type: YAML 1.2, as DVC reads it.
        ("lr: 1e-05", "lr", 1e-05),  # -S train.lr=1e-5
        ("lr: 0.0005", "lr", 0.0005),
        ("lr: 5e-4", "lr", 0.0005),
        ("lr: 1E-3", "lr", 0.001),
        ("compile: off", "compile", "off"),  # YAML 1.1 (PyYAML) would read false
        ("compile: on", "compile", "on"),
        ("channels_last: true", "channels_last", True),
        ("channels_last: false", "channels_last", False),
    ],
)
def test_params_read_as_dvc_writes_them(tmp_path: Path, written: str, key: str, value: object) -> None:
    default = {"lr": "lr: 0.001", "compile": "compile: auto", "channels_last": "channels_last: true"}[key]
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS_TEXT.replace(default, written))
    assert getattr(load_params(path).train, key) == value


@pytest.mark.parametrize(
    ("text", "what"),
    [
        (
            "a: &a [1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b]\n",
            "alias (*a)",
        ),
        ("a: " + "[" * 800 + "]" * 800 + "\n", "nests deeper than 4 levels"),
        ("seed: 0\n1: 2\n", "key '1' is not a plain string (line 2)"),
        ("? [a, b]\n: 1\n", "is not a plain string"),
        ("seed: 0\nseed: 1\n", "not valid YAML: found duplicate key"),
        ("- seed\n", "holds list, not a mapping"),
        ("", "holds NoneType, not a mapping"),
        ("seed: 0\n" + "#" * 70_000 + "\n", "larger than 64 KiB"),
    ],
    ids=["alias-bomb", "deep", "int-key", "complex-key", "duplicate", "list", "empty", "huge"],
)
def test_what_no_params_file_needs_is_refused_in_one_line(tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert what in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_params_file_that_is_no_text_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(b"seed: \xff\n")
    with pytest.raises(ParamsError, match="is not UTF-8 text"):
        load_params(path)
    with pytest.raises(ParamsError, match="is a folder, not a params file"):
        load_params(tmp_path)


def test_cuda_where_there_is_none_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ParamsError, match="train.device = 'cuda' is not allowed: no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
