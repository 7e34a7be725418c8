"""Exceptions as one short line, for the one-line messages stages end with."""

from __future__ import annotations


def one_line(err: BaseException, limit: int = 100) -> str:
    """An exception as `Type: its first sentence`, short enough for a one-line message (torch's
    and zipfile's messages run on for lines about things that do not apply here)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text.split(". ")[0]
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
