"""The one table model of the report layer: a title, column headers, rows of cells and a note. The text
leaderboards and the report page build tables; ``report.render`` writes them as Markdown, LaTeX, HTML or CSV."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Cell:
    """One cell: its value (the text of a leaderboard cell; any value in a plain table), the CI shown after
    it (``[low, high]``, leaderboard cells only) and its mark (``statistics.BEST``: bold, ``NOT_WORSE``: †)."""

    value: Any
    ci: str = ""
    mark: str = ""


@dataclass(frozen=True)
class Table:
    """A titled table. ``ranked``: a leaderboard block (first column the row label, numbers right-aligned, cells
    with CI and marks); otherwise a plain table of values. ``header`` is empty for a table without a body
    (only its title and note are shown)."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    note: str = ""
    ranked: bool = False

    @classmethod
    def from_frame(cls, title: str, frame: pd.DataFrame | None, note: str = "") -> "Table":
        """A plain table of a data frame's columns and values (None: a table without a body)."""
        if frame is None:
            return cls(title, (), (), note)
        rows = tuple(tuple(Cell(v) for v in row) for row in frame.itertuples(index=False))
        return cls(title, tuple(str(c) for c in frame.columns), rows, note)

    def frame(self) -> pd.DataFrame:
        """The values as a data frame (for CSV and pandas' HTML)."""
        return pd.DataFrame([[c.value for c in row] for row in self.rows], columns=list(self.header))
