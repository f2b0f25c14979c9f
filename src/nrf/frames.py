"""Tables one rule hands another (CSV): one writer and one reader, both checked.

:func:`write_frame` writes a CSV atomically and ends it with a checksum line,
``# sha256=<hex digest of every byte above it>``. :func:`read_frame` verifies
that line before parsing, then checks what the file's kind (:data:`KINDS`)
declares: the required columns are there, hold their type (int, float, str),
and are never empty, NaN or infinite, except the columns declared nullable
(a constant prediction's Pearson r is NaN by design). Float columns a kind
does not name must be finite too.

So a truncated, garbled or edited file (a changed digit, a block of NaN)
stops the job that reads it with an error naming the file and the command
that rebuilds it, and never becomes a number in a table.

The checksum line starts with ``#``: other tools read these files with
``pandas.read_csv(path, comment="#")``. The paper tables and the figures'
numbers (``results/{dataset}/tables/*.csv``, ``figures/*.csv``) are kind
``table``: they carry the checksum line too, because the claims page and the
HTML pages are built from them; an n/a cell is empty, so any column may be.
The paper's own numbers (``reference/nrf_paper_tables.csv``, kind ``paper``)
ship with their checksum line, so an edited or damaged value stops the
tables instead of appearing in their "paper" column.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nrf.atomic import atomic_output
from nrf.checks import CorruptFileError, corrupt_file, rebuild_hint  # noqa: F401 (what read_frame raises)
from nrf.data.nsd_layout import ROI_ATLASES

CHECKSUM_PREFIX = b"# sha256="


class FrameError(ValueError):
    """A table lacks a column its readers need, or holds a value its kind forbids."""


@dataclass(frozen=True)
class Kind:
    """What one kind of CSV holds.

    columns      : required column -> "int", "float" or "str"
    nullable     : columns that may be empty (read as NaN)
    float_format : ``DataFrame.to_csv``'s float_format (None: shortest repr)
    any_empty    : every column may be empty (a paper table's n/a cells)
    """

    what: str
    columns: dict[str, str] = field(default_factory=dict)
    nullable: tuple[str, ...] = ()
    float_format: str | None = "%.6g"
    any_empty: bool = False


#: Every CSV one rule hands another; the writer and reader name the same kind.
KINDS: dict[str, Kind] = {
    # nrf.experiments.scoring.score_predictions (also Universal transfer, Tables 5-6)
    "scores": Kind("scores CSV", {"voxel": "int", "pearson": "float", "mse": "float"}, nullable=("pearson",),
                   float_format="%.9g"),
    # nrf.retrieval.write_retrieval
    "retrieval": Kind("retrieval CSV", {"image_id": "int", "rank": "int"}, float_format=None),
    # nrf.experiments.voxels.write_voxel_table (and ``region``, int, on the simulator)
    "voxels": Kind("voxel table", {"voxel": "int", "x": "float", "y": "float", "z": "float",
                                   "noise_ceiling": "float", **{atlas: "int" for atlas in ROI_ATLASES}}),
    # nrf.experiments.adaptation.write_cell
    "adaptation_cell": Kind("adaptation cell CSV", {
        "target": "str", "n_train": "int", "draw": "int", "protocol": "str", "method": "str",
        "pearson": "float", "mse": "float", "steps": "int", "lambda": "float"}, nullable=("lambda",)),
    # nrf.experiments.probes.write_rows (nrf.perturbations.ROWS)
    "probe_rows": Kind("probe CSV", {
        "panel": "str", "subject": "str", "condition": "str", "n_train": "int", "draw": "int",
        "pearson": "float", "mse": "float", "steps": "int", "n_voxels": "int"}),
    # nrf.experiments.probes.write_fit_rows (FIT_COLUMNS; the linear baseline's row has no width or scale)
    "shuffle_fit": Kind("shuffle probe fit CSV", {
        "subject": "str", "n_train": "int", "draw": "int", "model": "str", "condition": "str", "width": "int",
        "fourier_scale": "float", "train_pearson": "float", "test_pearson": "float", "steps": "int"},
        nullable=("width", "fourier_scale")),
    # nrf.experiments.ablations.write_strategy_rows (Table 4)
    "finetune_strategies": Kind("finetune strategy CSV", {
        "method": "str", "subject": "str", "n_train": "int", "draw": "int", "pearson": "float", "mse": "float",
        "steps": "int"}),
    # nrf.decoding.scoring.score_reconstructions; a NaN value is a metric whose network is unavailable
    "decoding_metrics": Kind("decoding metrics CSV", {
        "metric": "str", "value": "float", "note": "str", "backend": "str", "source": "str", "subject": "str"},
        nullable=("value", "note", "backend", "source", "subject"), float_format=None),
    # nrf.decoding.cells.score_cells
    "adaptation_decoding": Kind("adaptation decoding CSV", {
        "target": "str", "n_train": "int", "draw": "int", "method": "str", "metric": "str", "value": "float",
        "note": "str", "backend": "str"}, nullable=("value", "note", "backend")),
    # the paper's reported numbers, shipped in reference/nrf_paper_tables.csv with their checksum line and
    # copied into the run by rule paper_tables; every table beside the paper and the claims page read them
    "paper": Kind("paper's numbers CSV", {
        "table": "str", "target_subject": "str", "base_subjects": "str", "train_images": "str", "method": "str",
        "metric": "str", "value": "float", "note": "str"}, nullable=("base_subjects", "note"), float_format=None),
    # a paper table or a figure's numbers (results/{dataset}/tables/*.csv, figures/*.csv), read by the
    # rules that render it and by the claims page; its columns differ per table, n/a cells are empty
    "table": Kind("table CSV", any_empty=True),
}


def _kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"unknown CSV kind {kind!r}; one of {sorted(KINDS)}")
    return KINDS[kind]


def _is_int(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series.dtype):
        return False
    if pd.api.types.is_integer_dtype(series.dtype):
        return True
    return series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) == "integer"


def _is_number(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series.dtype):
        return False
    if pd.api.types.is_numeric_dtype(series.dtype):
        return True
    return series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) in (
        "integer", "floating", "mixed-integer-float", "empty")


def _problems(table: pd.DataFrame, spec: Kind) -> list[str]:
    """What in ``table`` breaks ``spec``: missing columns, wrong types, empty or non-finite values."""
    missing = [c for c in spec.columns if c not in table.columns]
    if missing:
        return [f"lacks column(s) {missing}; it has {list(map(str, table.columns))}"]
    out = []
    for column in table.columns:
        series = table[column]
        want = spec.columns.get(column)
        if want is None and not (pd.api.types.is_float_dtype(series.dtype)):
            continue  # an extra column: only floats are checked (finite)
        empty = series.isna().to_numpy()
        if want == "int" and not _is_int(series):
            whole = series.dropna()
            integral = pd.api.types.is_float_dtype(series.dtype) and bool((whole == np.round(whole)).all())
            if not (integral and column in spec.nullable):
                numbers = pd.to_numeric(series, errors="coerce")
                bad = np.flatnonzero(numbers.isna().to_numpy() | (numbers != np.round(numbers)).to_numpy())
                out.append(f"column {column!r} must hold integers, got {series.dtype}"
                           + (f" (row {int(bad[0])}: {str(series.iloc[int(bad[0])])!r})" if len(bad) else ""))
            continue
        if want == "float" or want is None:
            if not _is_number(series):
                out.append(f"column {column!r} must hold numbers, got {series.dtype}")
                continue
            values = series.to_numpy(dtype=np.float64)
            infinite = np.isinf(values)
            if infinite.any():
                out.append(f"column {column!r} has {int(infinite.sum())} infinite value(s) "
                           f"(first at row {int(np.flatnonzero(infinite)[0])})")
        if empty.any() and column not in spec.nullable and not spec.any_empty:
            out.append(f"column {column!r} has {int(empty.sum())} empty or NaN value(s) of {len(series)} "
                       f"(first at row {int(np.flatnonzero(empty)[0])})")
    return out


_KIND_FORMAT = object()  # write_frame's float_format default: the kind's


def write_frame(table: pd.DataFrame, path, kind: str, *, float_format=_KIND_FORMAT) -> None:
    """Write ``table`` (no index) as a CSV of ``kind``, atomically, with its checksum line.

    ``float_format`` overrides the kind's (a paper table keeps the digits it
    has always been written with).

    Raises :class:`FrameError`, naming the file, if ``table`` breaks the kind
    (a NaN where none may be is a bug upstream, not a number to store).
    """
    spec = _kind(kind)
    path = Path(path)
    if not len(table.columns) and not len(table):  # no rows from the caller: the header alone
        table = pd.DataFrame(columns=list(spec.columns))
    problems = _problems(table, spec) if len(table) else []
    if problems:
        raise FrameError(f"{path} (before writing): this {spec.what} " + "; ".join(problems))
    digits = spec.float_format if float_format is _KIND_FORMAT else float_format
    data = table.to_csv(index=False, float_format=digits, lineterminator="\n").encode()
    data += CHECKSUM_PREFIX + hashlib.sha256(data).hexdigest().encode() + b"\n"
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def _verified_body(raw: bytes, path: Path, what: str) -> bytes:
    """The bytes above the checksum line, if they match it."""
    start = raw.rfind(b"\n", 0, len(raw) - 1) + 1  # the last line
    last = raw[start:]
    if not raw.endswith(b"\n") or not last.startswith(CHECKSUM_PREFIX) or len(last) != len(CHECKSUM_PREFIX) + 65:
        raise corrupt_file(path, what, "its last line is not the '# sha256=...' checksum line nrf.frames writes: "
                                       "the file is truncated, or was written by something else")
    expected = last[len(CHECKSUM_PREFIX):-1].decode("ascii", "replace")
    body = raw[:start]
    actual = hashlib.sha256(body).hexdigest()
    if actual != expected:
        raise corrupt_file(path, what, f"the sha256 of its contents is {actual[:16]}..., its checksum line says "
                                       f"{expected[:16]}...: it changed after it was written")
    return body


def read_frame(path, kind: str, *, dtype: dict | None = None) -> pd.DataFrame:
    """Read a CSV of ``kind`` written by :func:`write_frame`, checked (see the module docstring).

    Raises :class:`nrf.checks.CorruptFileError` (an OSError) for a file whose
    checksum fails or that does not parse, :class:`FrameError` (a ValueError)
    for one that parses but breaks its kind; both name the file. The kind's
    ``str`` columns are read as text (a paper table's ``train_images``, "20" or
    "full", stays a string); ``dtype`` adds ``pandas.read_csv`` dtypes for
    columns a kind does not declare (kind ``table`` declares none).
    """
    spec = _kind(kind)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {spec.what} not found. {rebuild_hint(path)}")
    raw = path.read_bytes()
    body = _verified_body(raw, path, spec.what)
    try:
        text = {column: str for column, want in spec.columns.items() if want == "str"}
        table = pd.read_csv(io.BytesIO(body), dtype={**text, **(dtype or {})})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        raise corrupt_file(path, spec.what, f"{type(error).__name__}: {error}") from error
    problems = _problems(table, spec)
    if problems:
        raise FrameError(f"{path}: this {spec.what} " + "; ".join(problems) + f". {rebuild_hint(path)}")
    return table

