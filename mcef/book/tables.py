"""How a chapter shows its tables and the values its prose cites.

- :class:`Tables`: a chapter's table numbering. ``tables(frame, "caption")`` renders a DataFrame the way every table
  of the book looks: captioned "Table N. caption" (N counts the chapter's tables in order of first display; running
  a cell again keeps its number), no index column (a named index becomes ordinary columns, a repeated group label is
  written once), numbers rounded, no NaN or None (an en dash instead), no truncation however long the table.
- :func:`glue_facts`: glue every value of a dict for the prose (``{glue:text}`name```) and return a one-line summary
  of them, so that a cell that only glues shows its numbers when run in JupyterLab. Such cells are tagged
  ``remove-cell`` in the sources: the book shows the numbers in the prose instead.
"""

from __future__ import annotations

import html
import math
import numbers
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

MISSING = "–"  # what a table shows where it has no value (never NaN or None)
TABLE_STYLES = [  # compact enough for the book's text column; long headers wrap instead of widening the table
    {"selector": "", "props": "font-size: 0.85em; border-collapse: collapse; margin: 0 auto 1em 0;"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: 600; padding: 0.3em 0;"},
    {"selector": "th", "props": "white-space: normal; text-align: left; vertical-align: bottom; padding: 0.2em 0.5em;"},
    {"selector": "td", "props": "padding: 0.2em 0.5em; vertical-align: top;"},
]
WORDS = {"f1": "F1", "wf1": "weighted F1", "acc": "accuracy", "std": "std", "utt": "utterances"}  # header words


def format_number(value: Any, digits: int = 3) -> str:
    """One table cell: ``digits`` decimals for floats (scientific below 10^-digits), thousands separators for
    integers of five digits or more, "yes"/"no" for booleans, an en dash for NaN, None and pandas' NA."""
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}" if abs(int(value)) >= 10_000 else str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return MISSING
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.1e}"
        text = f"{value:,.{digits}f}" if abs(value) >= 10_000 else f"{value:.{digits}f}"
        return text.lstrip("-") if float(text.replace(",", "")) == 0 else text  # no "-0.000"
    text = str(value)
    return MISSING if text in ("-", "nan", "NaN", "None", "<NA>") else text


def header(name: Any) -> str:
    """A column name for reading: underscores become spaces, ``f1`` becomes ``F1``."""
    if isinstance(name, tuple):
        name = " ".join(str(part) for part in name if str(part))
    return " ".join(WORDS.get(word, word) for word in str(name).replace("_", " ").split(" "))


def mean_std_columns(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Every pair of columns ``X_mean`` and ``X_std`` merged into one column ``X``: "mean ± std", or the mean alone
    where the std is missing (a single seed)."""
    frame = frame.copy()
    for column in [c for c in frame.columns if isinstance(c, str) and c.endswith("_mean")]:
        base = column[: -len("_mean")]
        if f"{base}_std" not in frame.columns:
            continue
        cells = [MISSING if _missing(m) else format_number(m, digits) if _missing(s)
                 else f"{format_number(m, digits)} ± {format_number(s, digits)}"
                 for m, s in zip(frame[column], frame[f"{base}_std"])]
        position = list(frame.columns).index(column)
        frame = frame.drop(columns=[column, f"{base}_std"])
        frame.insert(position, base, cells)
    return frame


def plain_frame(frame: pd.DataFrame, index: str | None = None) -> pd.DataFrame:
    """``frame`` with its index turned into leading columns (dropped when it is a plain 0..n-1 range).

    A group label that repeats on consecutive rows (every level of a multi-level index but the last) is written
    once, on its first row.
    """
    frame = frame.copy()
    if isinstance(frame.columns, pd.MultiIndex):
        frame.columns = [header(c) for c in frame.columns]
    frame.columns.name = None
    plain_range = isinstance(frame.index, pd.RangeIndex) and frame.index.name is None and (
        len(frame) == 0 or (frame.index.start == 0 and frame.index.step == 1))
    if plain_range:
        return frame.reset_index(drop=True)
    levels = list(frame.index.names)
    if len(levels) == 1 and levels[0] is None:
        frame.index.name = index or ""
    elif index is not None and len(levels) == 1:
        frame.index.name = index
    names = [name if name is not None else f"level {k}" for k, name in enumerate(frame.index.names)]
    frame.index.names = names
    frame = frame.reset_index()
    grouped = names[:-1] if len(names) > 1 else ([] if frame[names[0]].is_unique else names)
    for name in grouped:
        column = frame[name].astype(object)
        repeated = column.eq(column.shift()) & column.notna()
        frame[name] = column.where(~repeated, "")
    return frame


class Tables:
    """A chapter's tables: ``tables = Tables()`` once, then ``tables(frame, "what the table shows")`` per table."""

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def number(self, caption: str) -> int:
        """The table number of ``caption``: the next one the first time it is shown, the same one after."""
        return self._numbers.setdefault(caption, len(self._numbers) + 1)

    def __call__(self, frame: pd.DataFrame, caption: str, *, digits: int = 3, index: str | None = None,
                 columns: Mapping[str, str] | None = None, percent: Iterable[str] = (),
                 formats: Mapping[str, str | Callable[[Any], str]] | None = None):
        """``frame`` as the book shows a table (:class:`BookTable`: HTML in the book and in JupyterLab).

        Columns ``X_mean`` and ``X_std`` become one column ``X`` ("mean ± std"). ``digits``: decimals of float columns; ``percent``: columns of fractions shown as percentages with one
        decimal; ``formats``: per-column format strings or functions (after renaming); ``columns``: new names
        (default: :func:`header` of each); ``index``: the name of an unnamed index that carries information.
        """
        shown = mean_std_columns(plain_frame(frame, index), digits)
        renames = {c: (columns or {}).get(c, header(c)) for c in shown.columns}
        percent = {renames.get(c, c) for c in percent}
        shown = shown.rename(columns=renames)
        formats = dict(formats or {})
        for column in shown.columns:
            rule = formats.get(column)
            if rule is None and column in percent:
                rule = "{:.1%}"
            if isinstance(rule, str):
                template = rule
                rule = lambda v, t=template: MISSING if _missing(v) else t.format(v)  # noqa: E731
            if rule is None and _whole(shown[column]):
                rule = lambda v: format_number(int(v) if not _missing(v) else v)  # noqa: E731
            if rule is None and shown[column].dtype == object:  # mixed values (a recipe's fields): no fixed decimals
                rule = _general
            cell = rule or (lambda v: format_number(v, digits))
            shown[column] = [cell(v) for v in shown[column]]
        return BookTable(shown, f"Table {self.number(caption)}. {caption}")


class BookTable:
    """A formatted table: ``frame`` holds its cells as text, ``caption`` its numbered caption. Its HTML is a pandas
    Styler without index, in a box that scrolls sideways when the table is wider than the text column."""

    def __init__(self, frame: pd.DataFrame, caption: str) -> None:
        self.frame, self.caption = frame, caption

    @property
    def styler(self):
        return (self.frame.style.hide(axis="index").set_caption(html.escape(self.caption))
                .set_table_attributes('class="mcef-table"').set_table_styles(TABLE_STYLES))

    def _repr_html_(self) -> str:
        return f'<div class="mcef-table-box" style="overflow-x: auto; max-width: 100%;">{self.styler.to_html()}</div>'

    def __repr__(self) -> str:
        return f"{self.caption}\n{self.frame.to_string(index=False)}"


def _general(value: Any) -> str:
    """A cell of a column of mixed values: floats with 4 significant digits, the rest as :func:`format_number`."""
    if isinstance(value, float) and not math.isnan(value) and not math.isinf(value):
        return f"{value:.4g}"
    return format_number(value)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _whole(column: pd.Series) -> bool:
    """True for a float column whose values are all whole numbers (counts computed as floats): shown as integers."""
    if not pd.api.types.is_float_dtype(column):
        return False
    values = column.dropna()
    return len(values) > 0 and bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


# ----------------------------------------------------------------------------- the values the prose cites


class Facts(dict):
    """The values a cell glued, shown on one line in JupyterLab (the book prints them in the prose instead)."""

    def _items(self) -> list[tuple[str, str]]:
        return [(name, _fact(value)) for name, value in self.items()]

    def __repr__(self) -> str:
        return "glued: " + "; ".join(f"{name} = {text}" for name, text in self._items())

    def _repr_html_(self) -> str:
        parts = [f"<code>{html.escape(name)}</code> = {html.escape(text)}" for name, text in self._items()]
        return '<p class="mcef-facts"><b>Glued for the prose:</b> ' + "; ".join(parts) + "</p>"


def _fact(value: Any) -> str:
    data = getattr(value, "data", None)  # IPython.display.Markdown and friends
    if isinstance(data, str):
        return data
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return f"{float(value):.4g}"
    return str(value)


def glue_facts(values: Mapping[str, Any]) -> Facts:
    """Glue every ``name: value`` for the prose (not displayed where glued) and return them as :class:`Facts`."""
    from myst_nb import glue

    for name, value in values.items():
        glue(name, value, display=False)
    return Facts(values)
