"""params.yaml, validated once into typed objects: the one home of what every knob allows.

params.yaml is what a user types (by hand or with `dvc exp run -S`), so it is checked whole when a
stage starts, before any work: an unknown key, a wrong type or a value out of range is one line
naming the key, the value and what is allowed. It is read as DVC writes it, YAML 1.2 (ruamel, as
DVC uses): `1e-05` is a float and `off` a string. Every top-level section other than seed, data
and train is a variant: adding one is a section here and its stages in dvc.yaml.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from convlab.errors import ConvlabError

TRAIN_IMAGES = 50_000  # CIFAR-10's training images, of which validation is taken
MAX_SEED = 2**63 - 1  # torch takes 64-bit seeds; every run's seed must stay one
SHARED = ("seed", "data", "train")  # the sections that are not variants


class ParamsError(ConvlabError, ValueError):
    """A params value that is missing, of the wrong type, out of range or unknown."""


def url_problem(url: str) -> str | None:
    """None when the archive may be fetched from url, else what is allowed: the one rule for
    data.url, $CIFAR10_URL and every redirect a server answers with."""
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return "a URL without spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number in 0..65535)
    except ValueError as err:
        return f"a well-formed URL ({err})"
    if parts.scheme == "file":
        return None if parts.netloc in ("", "localhost") else "a file URL of this machine (file:///path)"
    if parts.scheme not in ("http", "https"):
        return "an http://, https:// or file:/// URL"
    return None if parts.hostname else "an http:// or https:// URL with a host"


def _url(value: str) -> str:
    if (problem := url_problem(value)) is not None:
        raise ValueError(problem)
    return value


def _device(value: str) -> str:
    # torch keeps a CUDA index in 8 bits: cuda:128 would silently become cuda:-128.
    match = re.fullmatch(r"auto|cpu|cuda(?::(0|[1-9][0-9]{0,2}))?", value, re.ASCII)
    if match is None or int(match.group(1) or 0) > 127:
        raise ValueError("'auto', 'cpu', 'cuda' or 'cuda:N' with N in 0..127")
    return value


Rate = Annotated[float, Field(ge=0, lt=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DataParams(_Section):
    url: Annotated[str, AfterValidator(_url)]
    md5: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    content_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    val_size: Annotated[int, Field(ge=1, lt=TRAIN_IMAGES)]
    normalize: Literal["standardize", "none"]


class TrainParams(_Section):
    seeds: Annotated[int, Field(ge=1, le=100)]
    # Bounds far beyond any useful value: they stop typos, not choices.
    batch_size: Annotated[int, Field(ge=1, le=4096)]
    lr: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    momentum: Annotated[float, Field(ge=0, lt=1)]
    log_every: Annotated[int, Field(ge=1, le=1_000_000)]
    eval_batch_size: Annotated[int, Field(ge=1, le=10_000)]
    device: Annotated[str, AfterValidator(_device)]
    precision: Literal["auto", "fp32", "bf16"]
    cpu_kernels: Literal["avx2", "native"]
    channels_last: bool
    compile: Literal["auto", "on", "off"]


class VariantParams(_Section):
    epochs: Annotated[int, Field(ge=1, le=1000)]
    pool1: Rate
    pool2: Rate
    fc: Rate
    crop_padding: Annotated[int, Field(ge=0, le=16)] = 0  # reflect padding must stay below 32 pixels
    flip: bool = False

    @property
    def augments(self) -> bool:
        return self.crop_padding > 0 or self.flip

    @property
    def augmentation(self) -> str:
        return augmentation(self.crop_padding, self.flip)


def augmentation(crop_padding: int, flip: bool) -> str:
    """A variant's augmentation in words: 'none' when off."""
    parts = [f"crop (pad {crop_padding})"] if crop_padding else []
    return " + ".join(parts + (["flip"] if flip else [])) or "none"


class Params(_Section):
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)]
    data: DataParams
    train: TrainParams
    variants: dict[str, VariantParams]

    @property
    def run_seeds(self) -> list[int]:
        """The seed of each training run of a variant: seed, seed + 1, ..., train.seeds of them."""
        return [self.seed + k for k in range(self.train.seeds)]

    def variant(self, name: str) -> VariantParams:
        if name not in self.variants:
            raise ParamsError(f"unknown variant {name!r}: params.yaml has {', '.join(self.variants)}")
        return self.variants[name]


def _shown(value: Any) -> str:
    """A value for a one-line message, short whatever it is (a YAML alias can make it huge)."""
    if isinstance(value, dict | list):
        return f"a {'mapping' if isinstance(value, dict) else 'list'} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(error: ValidationError, prefix: tuple[str | int, ...] = ()) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in (*prefix, *first["loc"]))
    if first["type"] == "missing":
        return f"{key} is missing"
    if first["type"] == "extra_forbidden":
        return f"{key} is not a known key"
    allowed = first["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
    return f"{key} = {_shown(first['input'])} is not allowed: expected {allowed}"


def parse_params(raw: Any) -> Params:
    """Validate params as read from params.yaml; ParamsError names the first problem."""
    if not isinstance(raw, dict):
        raise ParamsError(f"params.yaml must be a mapping of sections, not {_shown(raw)}")
    variants = {key: value for key, value in raw.items() if key not in SHARED}
    for name in variants:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", str(name)):
            raise ParamsError(f"{_shown(name)} is not a variant name: lowercase letters, digits and _")
    if not variants:
        raise ParamsError("params.yaml has no variant section (epochs, pool1, pool2, fc)")
    shared = {key: raw[key] for key in SHARED if key in raw}
    parsed = {}
    for name, section in variants.items():
        try:
            parsed[name] = VariantParams.model_validate(section)
        except ValidationError as err:
            raise ParamsError(_one_line(err, (name,))) from None
    try:
        params = Params.model_validate({**shared, "variants": parsed})
    except ValidationError as err:
        raise ParamsError(_one_line(err)) from None
    if params.seed + params.train.seeds - 1 > MAX_SEED:
        raise ParamsError(f"seed + train.seeds - 1 must stay <= {MAX_SEED}: the last run's seed")
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        raw = YAML(typ="safe", pure=True).load(Path(path).read_text(encoding="utf-8"))
    except (YAMLError, UnicodeDecodeError) as err:
        raise ParamsError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    return parse_params(raw)
