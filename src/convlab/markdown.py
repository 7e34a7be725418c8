"""Tables as Markdown, the one way the report and tools/sweep.py print them."""

from __future__ import annotations

import pandas as pd


def markdown_table(frame: pd.DataFrame) -> str:
    """The frame's columns as a Markdown table (the index left out). Cells print as given: numbers
    are not re-parsed (0.001 stays 0.001, not 1e-03) and cells are not padded, so a row reads the
    same whatever the other rows hold, `grep '| 0.2 |'` finds it, and a table's diff touches only
    the rows that changed."""
    return frame.to_markdown(index=False, disable_numparse=True, stralign=None)
