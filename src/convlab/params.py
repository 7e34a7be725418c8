"""params.yaml, validated once into typed objects: the home of what every knob allows.

Every key is checked at load: unknown keys, wrong types and out-of-range values raise a
ParamsError that names the key, the value and what is allowed, before any stage does work. Code
behind this module trusts the typed params it gets.

params.yaml is read the way `dvc exp run -S` writes it: YAML 1.2 (ruamel.yaml, as DVC itself
uses), so `1e-05` is a float and `off` a string. PyYAML reads YAML 1.1, where `1e-05` is a string
and `off` is false. The file is a handful of keys, so the reader is bounded to what such a file
can be: its size, its nesting, plain keys, and no aliases (an alias bomb expands without limit).
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from convlab.errors import ConvlabError

VARIANTS = ("baseline", "dropout", "staged_dropout")
NORMALIZATIONS = ("standardize", "none")
PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_MODES = ("auto", "off", "on")
URL_SCHEMES = ("http", "https", "file")  # what data.url, CIFAR10_URL and any redirect may use
CIFAR10_TRAIN_IMAGES = 50_000
# Reflect padding needs fewer pixels than the 32-pixel image has; beyond 16 a crop is mostly mirror.
MAX_CROP_PADDING = 16
# torch.manual_seed takes 64-bit seeds; keeping every run's seed within a signed int64 means each
# one is also a valid int64 anywhere it is stored (numpy, JSON readers, torch tensors).
MAX_SEED = 2**63 - 1
MAX_SEEDS = 100  # runs per variant: five is the study's choice; hundreds would be days of training
# torch keeps a device index in 8 bits: cuda:128 silently becomes cuda:-128.
MAX_CUDA_INDEX = 127
_DEVICE = re.compile(r"auto|cpu|cuda(?::(0|[1-9][0-9]{0,2}))?", re.ASCII)
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# params.yaml holds about 40 keys in 1.6 KB, two levels deep.
MAX_PARAMS_BYTES = 64 * 1024
MAX_PARAMS_DEPTH = 4


class ParamsError(ConvlabError, ValueError):
    """A params value that is missing, of the wrong type, out of range or unknown."""


@dataclass(frozen=True)
class DataParams:
    url: str
    md5: str
    content_sha256: str
    val_size: int
    normalize: str


@dataclass(frozen=True)
class TrainParams:
    batch_size: int
    lr: float
    momentum: float
    log_every: int
    eval_batch_size: int
    device: str
    precision: str
    channels_last: bool
    compile: str
    seeds: int = 1  # train each variant this many times, with seeds seed, seed+1, ...


@dataclass(frozen=True)
class VariantParams:
    epochs: int
    pool1: float
    pool2: float
    fc: float
    # On-device augmentation of training batches, off by default (the study trains without it).
    crop_padding: int = 0  # random 32x32 crop of the image reflect-padded by this many pixels
    flip: bool = False  # random horizontal flip of half the images

    @property
    def augments(self) -> bool:
        return self.crop_padding > 0 or self.flip

    @property
    def augmentation(self) -> str:
        """The augmentation in words, for logs and the report: 'none' when off."""
        parts = [f"crop (pad {self.crop_padding})"] if self.crop_padding else []
        return " + ".join(parts + (["flip"] if self.flip else [])) or "none"


@dataclass(frozen=True)
class Params:
    seed: int
    data: DataParams
    train: TrainParams
    variants: dict[str, VariantParams]

    @property
    def run_seeds(self) -> list[int]:
        """The seed of each training run of a variant: seed, seed + 1, ..., train.seeds of them."""
        return [self.seed + k for k in range(self.train.seeds)]

    def variant(self, name: str) -> VariantParams:
        if name not in self.variants:
            raise ParamsError(f"unknown variant {name!r}: allowed are {', '.join(VARIANTS)}")
        return self.variants[name]


# --- checks: each returns None when the value is fine, else what is allowed ------------------

Check = Callable[[Any], "str | None"]


def _positive(value: float) -> str | None:
    return None if value > 0 else "a number > 0"


def _int_in(low: int, high: int, why: str = "") -> Check:
    def check(value: int) -> str | None:
        return None if low <= value <= high else f"an integer in [{low}, {high}]{why}"

    return check


def _crop_padding(value: int) -> str | None:
    return None if 0 <= value <= MAX_CROP_PADDING else f"an integer in [0, {MAX_CROP_PADDING}] (pixels)"


def _dropout_rate(value: float) -> str | None:
    return None if 0 <= value < 1 else "a dropout rate in [0, 1)"


def _momentum(value: float) -> str | None:
    return None if 0 <= value < 1 else "a momentum in [0, 1)"


def _one_of(*choices: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in choices else "one of " + ", ".join(repr(c) for c in choices)

    return check


def _matches(pattern: re.Pattern[str], what: str) -> Check:
    def check(value: str) -> str | None:
        return None if pattern.fullmatch(value) else what

    return check


def _device(value: str) -> str | None:
    """A device as torch reads it: ASCII digits only, no surrounding space, an index torch keeps."""
    match = _DEVICE.fullmatch(value)
    if match is None or (match.group(1) is not None and int(match.group(1)) > MAX_CUDA_INDEX):
        return f"'auto', 'cpu', 'cuda' or 'cuda:N' with N in 0..{MAX_CUDA_INDEX}"
    return None


def url_problem(url: str) -> str | None:
    """None when convlab may fetch the archive from url, else what is allowed. The one rule for
    data.url, CIFAR10_URL and every redirect a server answers with."""
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return "a URL without spaces or control characters"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in URL_SCHEMES:
        return "an http://, https:// or file:// URL"
    if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
        return "a file URL of this machine (file:///path), not of another host"
    if parts.scheme != "file" and not parts.hostname:
        return "an http:// or https:// URL with a host"
    return None


# Upper bounds on integers: a huge value would not fail until it exhausted memory or time (a batch's
# activations grow with batch_size, a seeds count allocates one run per seed). Each bound is far
# beyond any useful value, so it only stops typos such as 4611686018427387904 for 5.
_CHECKS: dict[str, Check] = {
    "seed": _int_in(0, MAX_SEED),
    "data.url": url_problem,
    "data.md5": _matches(_HEX32, "32 lowercase hex digits (an md5 sum)"),
    "data.content_sha256": _matches(_HEX64, "64 lowercase hex digits (a sha256 sum)"),
    # Validation is taken from the training images, and at least one must be left to train on.
    "data.val_size": _int_in(
        1, CIFAR10_TRAIN_IMAGES - 1, f" (CIFAR-10 has {CIFAR10_TRAIN_IMAGES:,} training images)"
    ),
    "data.normalize": _one_of(*NORMALIZATIONS),
    # About 1 MB of fp32 activations and gradients per image: 4,096 is some 4 GB, beyond it the
    # batch no longer fits a CPU box or a small GPU, and SGD at these rates was not tuned for it.
    "train.batch_size": _int_in(1, 4096),
    "train.lr": _positive,
    "train.momentum": _momentum,
    # Beyond an epoch's steps it means one point per epoch; the bound only keeps typos out.
    "train.log_every": _int_in(1, 1_000_000),
    # Evaluation keeps no gradients: the whole 10,000-image test set in one batch is the most.
    "train.eval_batch_size": _int_in(1, 10_000),
    "train.device": _device,
    "train.precision": _one_of(*PRECISIONS),
    "train.compile": _one_of(*COMPILE_MODES),
    "train.seeds": _int_in(1, MAX_SEEDS),
    # The tuned run used 100 epochs (hours on a GPU); 1,000 is weeks on a CPU.
    "epochs": _int_in(1, 1000),
    "pool1": _dropout_rate,
    "pool2": _dropout_rate,
    "fc": _dropout_rate,
    "crop_padding": _crop_padding,
}


def _typed(key: str, value: Any, kind: type) -> Any:
    """Return value as kind, or raise naming the key. bool is never taken for a number."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if not ok or (kind is float and not math.isfinite(value)):
        raise ParamsError(f"{key} = {value!r} is not allowed: expected {kind.__name__}")
    return value


def _build(cls: type, section: Any, prefix: str, check_prefix: str | None = None) -> Any:
    if not isinstance(section, dict):
        raise ParamsError(f"{prefix} = {section!r} is not allowed: expected a mapping")
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(section) - set(names))
    if unknown:
        raise ParamsError(
            f"{prefix}.{unknown[0]} is not a known key: allowed keys in {prefix} are " + ", ".join(names)
        )
    values = {}
    for name, field in names.items():
        key = f"{prefix}.{name}"
        if name not in section:
            raise ParamsError(f"{key} is missing")
        kind = {"int": int, "float": float, "str": str, "bool": bool}[str(field.type)]
        value = _typed(key, section[name], kind)
        check = _CHECKS.get(f"{check_prefix}.{name}" if check_prefix else name)
        if check is not None and (allowed := check(value)) is not None:
            raise ParamsError(f"{key} = {value!r} is not allowed: expected {allowed}")
        values[name] = value
    return cls(**values)


def parse_params(raw: Any) -> Params:
    """Validate a params mapping (as read from params.yaml) into Params."""
    if not isinstance(raw, dict):
        raise ParamsError(f"params must be a mapping, got {type(raw).__name__}")
    allowed = ("seed", "data", "train", *VARIANTS)
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ParamsError(f"{unknown[0]} is not a known key: allowed top-level keys are {', '.join(allowed)}")
    for key in allowed:
        if key not in raw:
            raise ParamsError(f"{key} is missing")
    seed = _typed("seed", raw["seed"], int)
    if (allowed_seed := _CHECKS["seed"](seed)) is not None:
        raise ParamsError(f"seed = {seed!r} is not allowed: expected {allowed_seed}")
    data = _build(DataParams, raw["data"], "data", "data")
    train = _build(TrainParams, raw["train"], "train", "train")
    # Runs use seeds seed .. seed + seeds - 1: the last one must be a valid seed too.
    if seed + train.seeds - 1 > MAX_SEED:
        raise ParamsError(
            f"train.seeds = {train.seeds} is not allowed: expected at most {MAX_SEED - seed + 1} with "
            f"seed = {seed}, so that the last run's seed (seed + train.seeds - 1) is <= {MAX_SEED}"
        )
    return Params(
        seed=seed,
        data=data,
        train=train,
        variants={name: _build(VariantParams, raw[name], name) for name in VARIANTS},
    )


def _check_tree(node: Node, path: Path, depth: int = 1, seen: set[int] | None = None) -> None:
    """Refuse what no params file needs and what would make reading it unbounded: nesting beyond
    MAX_PARAMS_DEPTH, a node reached twice (an alias: *name), keys that are not plain strings."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        raise ParamsError(f"{path} uses a YAML alias (*{node.anchor or '...'}): write each value out")
    seen.add(id(node))
    if depth > MAX_PARAMS_DEPTH:
        raise ParamsError(f"{path} nests deeper than {MAX_PARAMS_DEPTH} levels: not a params file")
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if key.tag != "tag:yaml.org,2002:str":
                raise ParamsError(
                    f"{path}: key {key.value!r} is not a plain string (line {key.start_mark.line + 1})"
                )
            _check_tree(value, path, depth + 1, seen)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            _check_tree(item, path, depth + 1, seen)


def read_params_file(path: str | Path = "params.yaml") -> Any:
    """params.yaml as plain Python values, read as YAML 1.2 and bounded (see the module's notes)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_PARAMS_BYTES:
            raise ParamsError(f"{path} is larger than {MAX_PARAMS_BYTES // 1024} KiB: not a params file")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run from the project root") from None
    except IsADirectoryError:
        raise ParamsError(f"{path} is a folder, not a params file") from None
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ParamsError(f"cannot read {path}: {err.strerror or err}") from None
    yaml = YAML(typ="safe", pure=True)
    try:
        tree = yaml.compose(text)
        if tree is not None:
            _check_tree(tree, path)
        raw = yaml.load(text)
    except YAMLError as err:
        problem = str(getattr(err, "problem", None) or err).strip().splitlines()[0]
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ParamsError(f"{path} is not valid YAML: {problem}{where}") from None
    except RecursionError:
        raise ParamsError(f"{path} nests deeper than {MAX_PARAMS_DEPTH} levels: not a params file") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} holds {type(raw).__name__}, not a mapping of params sections")
    return raw


def load_params(path: str | Path = "params.yaml") -> Params:
    return parse_params(read_params_file(path))
