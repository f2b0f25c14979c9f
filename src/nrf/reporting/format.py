"""How every table is written: mean ± SEM cells, the paper's value, Markdown
and a self-contained HTML page that Snakemake's report shows inline."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd

from nrf.atomic import atomic_output


def mean_sem(values) -> tuple[float, float]:
    """Mean and standard error of the mean (ddof=1; nan SEM for one value)."""
    values = np.asarray(values, dtype=np.float64)
    sem = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.nan
    return float(values.mean()), float(sem)


def _cell(mean: float, sem: float, digits: int = 3) -> str:
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f}" if np.isnan(sem) else f"{mean:.{digits}f} ± {sem:.{digits}f}"


def _paper(value) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:.3f}"


def to_markdown(shown: pd.DataFrame, *, title: str, note: str) -> str:
    """A titled Markdown table of display columns (see :func:`shown_columns`) and its note."""
    return f"# {title}\n\n{shown.to_markdown(index=False)}\n\n{note}\n"


def _write_atomic(path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def to_html(shown: pd.DataFrame, *, title: str, note: str) -> str:
    """A self-contained HTML page of a table, which Snakemake's report shows inline."""
    body = shown.to_html(index=False, border=0, classes="nrf-table", na_rep="n/a")
    # numbers align right; columns of sentences (the claims page's statements and reasons) read left-aligned
    prose = "".join(
        f"table.nrf-table td:nth-child({i + 1}),table.nrf-table th:nth-child({i + 1}){{text-align:left}}"
        for i, col in enumerate(shown.columns)
        if not pd.api.types.is_numeric_dtype(shown[col]) and shown[col].astype(str).str.len().max() > 40
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>"
        "body{font-family:sans-serif;margin:1.5em;max-width:110em}"
        "table.nrf-table{border-collapse:collapse}"
        "table.nrf-table th,table.nrf-table td{border-bottom:1px solid #ccc;padding:.3em .8em;text-align:right;"
        "vertical-align:top}"
        "table.nrf-table td:first-child,table.nrf-table th:first-child{text-align:left}"
        f"{prose}</style></head><body><h2>{title}</h2>{body}"
        + "".join(f"<p>{_bold(html.escape(para))}</p>" for para in note.split("\n") if para)
        + "</body></html>\n"
    )


def _bold(text: str) -> str:
    """The notes' Markdown **bold** as HTML."""
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
