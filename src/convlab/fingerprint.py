"""A key for everything that determines a training run: params, data bytes and code."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def fingerprint(settings: Any, files: Iterable[str | Path]) -> str:
    """sha256 over the JSON of `settings` and the names and bytes of `files` (sorted)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in sorted(Path(p) for p in files):
        digest.update(str(path).encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
