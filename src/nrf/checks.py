"""Guards where numbers enter and leave a stage: files that open, values that are finite.

A corrupted input must stop the job that reads it, with the file named, and
never become a number in a table (a NaN voxel silently dropped by a median
looks like a bad model, not a bad file). Damage that leaves finite numbers
(a block of zeros) is caught by checksums: every HDF5 dataset the pipeline
writes (:func:`new_hdf5`, :func:`add_dataset`) carries Fletcher-32 per chunk,
verified on read and reported by :func:`open_hdf5`; CSVs carry a sha256
line (nrf.frames), checkpoints and volumes a sha256 of their content, JSON
summaries a ``sha256`` key (:func:`write_json`, :func:`read_json`).
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from nrf.atomic import atomic_output

#: The HDF5 format of every file the pipeline writes (:func:`new_hdf5`): from
#: HDF5 1.10 on, object headers, the superblock and chunk indexes carry
#: checksums (the default, older formats do not, so damaged metadata could
#: read as other attributes); any HDF5 >= 1.10 reads these files.
HDF5_LIBVER = ("v110", "v110")

_H5PY_DIR = os.path.dirname(h5py.__file__)
#: what h5py raises reading a damaged file (a failed chunk checksum is an OSError)
_HDF5_ERRORS = (OSError, KeyError, RuntimeError, ValueError, SystemError)


class NonFiniteError(ValueError):
    """An array that must be finite holds NaN or infinity."""


class CorruptFileError(OSError):
    """A file one rule hands another fails its checksum or cannot be parsed."""


def rebuild_hint(path) -> str:
    """The command that rebuilds ``path``, for an error message."""
    return f"Rebuild it: snakemake --cores 1 --force {path}"


def corrupt_file(path, what: str, detail) -> CorruptFileError:
    """The error for a damaged ``path``: names it, says what failed and how to rebuild it."""
    return CorruptFileError(f"{path}: this {what} is corrupt or truncated ({detail}). {rebuild_hint(path)}")


def file_digest(path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (hashlib's ``algorithm``), read 4 MB at a time."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path) -> str:
    """The sha256 of a file's bytes (hex)."""
    return file_digest(path, "sha256")


def _json_digest(content: dict) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_json(path, content: dict) -> None:
    """``content`` as indented JSON, atomically, with a ``sha256`` key over the rest
    (its canonical form: sorted keys, no spaces), which :func:`read_json` verifies."""
    if "sha256" in content:
        raise ValueError("write_json: 'sha256' is the checksum's key")
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps({**content, "sha256": _json_digest(content)}, indent=1) + "\n")


def read_json(path, what: str) -> dict:
    """A JSON file :func:`write_json` wrote, verified: a garbled, truncated or edited
    file raises :class:`CorruptFileError` naming it."""
    try:
        content = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise corrupt_file(path, what, f"{type(error).__name__}: {error}") from error
    expected = content.pop("sha256", None) if isinstance(content, dict) else None
    if expected is None:
        raise corrupt_file(path, what, "it has no 'sha256' key: it was written by something else")
    if _json_digest(content) != expected:
        raise corrupt_file(path, what, "the sha256 of its contents does not match its 'sha256' key: "
                                       "it changed after it was written")
    return content


def new_hdf5(path) -> h5py.File:
    """``h5py.File(path, "w")`` in the pipeline's format (:data:`HDF5_LIBVER`);
    write its datasets with :func:`add_dataset`."""
    return h5py.File(path, "w", libver=HDF5_LIBVER)


def add_dataset(group, name: str, data=None, *, shape=None, dtype=None, chunks=True, **kwargs) -> h5py.Dataset:
    """``group.create_dataset`` with a Fletcher-32 checksum on every chunk.

    h5py verifies the checksum of each chunk it reads, so a damaged chunk
    raises (named by :func:`open_hdf5`) instead of reading as other numbers.
    Scalar, empty and variable-length datasets, which HDF5 cannot filter,
    are stored as ``create_dataset`` would store them.
    """
    probe = None if data is None else np.asarray(data)
    dims = probe.shape if shape is None and probe is not None else shape
    kind = np.dtype(dtype) if dtype is not None else (np.dtype("f4") if probe is None else probe.dtype)
    if (dims is not None and len(dims) > 0 and all(int(n) > 0 for n in dims)
            and kind.kind not in "OU" and h5py.check_vlen_dtype(kind) is None):
        kwargs.update(fletcher32=True, chunks=chunks)
    elif chunks is not True:
        kwargs["chunks"] = chunks
    return group.create_dataset(name, shape=shape, dtype=dtype, data=data, **kwargs)


def _elsewhere(obj, path: Path) -> bool:
    """Whether ``obj`` is an h5py object (file, group, dataset, attributes) of a file other than ``path``."""
    try:
        oid = getattr(obj, "id", None)
        if oid is None:
            oid = getattr(obj, "_id", None)
        if not isinstance(oid, h5py._objects.ObjectID):
            return False
        if not oid.valid:  # closed, so not of the file open_hdf5 still holds open
            return True
        return os.path.realpath(os.fsdecode(h5py.h5f.get_name(oid))) != os.path.realpath(path)
    except Exception:  # noqa: BLE001 — a damaged object: no evidence it is another file's
        return False


def _raised_reading(error: BaseException, path: Path) -> bool:
    """Whether h5py raised ``error`` working on ``path`` (not on another file the block had open)."""
    inside = False
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_filename.startswith(_H5PY_DIR):
            inside = True
            if _elsewhere(frame.f_locals.get("self"), path):
                return False
        tb = tb.tb_next
    return inside


@contextmanager
def open_hdf5(path, mode: str = "r", *, what: str = "HDF5 file"):
    """``h5py.File(path, mode)`` whose errors name the file.

    h5py says "Unable to synchronously open file (truncated file ...)" or,
    for a chunk whose checksum fails, "Can't read data (...)", and not which
    file; a user on a cluster needs the path. Those, and any other error h5py
    raises on this file inside the ``with`` block, become a
    :class:`CorruptFileError` (an OSError) naming the file and the command
    that rebuilds it.
    """
    path = Path(path)
    if mode == "r" and not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        f = h5py.File(path, mode)
    except OSError as error:
        raise CorruptFileError(f"{path}: cannot open this {what} ({error}); is it truncated or corrupt? "
                               f"{rebuild_hint(path)}") from error
    with f:
        try:
            yield f
        except CorruptFileError:
            raise
        except _HDF5_ERRORS as error:
            if not _raised_reading(error, path):
                raise
            detail = f"{type(error).__name__}: {error}"
            if "filter returned failure" in str(error):
                detail += "; a chunk fails its Fletcher-32 checksum"
            raise corrupt_file(path, what, detail) from error


def require_finite(array, *, name: str, source) -> np.ndarray:
    """Return ``array`` if every value is finite, else raise naming ``source`` and ``name``.

    The error says how many values are bad and where the first one is, so a
    user can tell a corrupt file (a block of NaN) from an overflow.
    """
    values = np.asarray(array)
    if values.dtype.kind not in "fc":
        return array
    finite = np.isfinite(values)
    if finite.all():
        return array
    bad = np.argwhere(~finite)
    raise NonFiniteError(
        f"{source}: {name} has {len(bad):,} non-finite value(s) of {values.size:,} "
        f"(first at index {tuple(int(i) for i in bad[0])}); "
        + ("the stage computing them diverged" if str(source).endswith("(before writing)") else
           f"the file is corrupt or the stage that wrote it diverged — rebuild it: "
           f"snakemake --cores 1 --force {source}")
    )
