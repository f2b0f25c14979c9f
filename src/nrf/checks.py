"""Guards where numbers enter and leave a stage: files that open, values that are finite.

A corrupted input must stop the job that reads it, with the file named, and
never become a number in a table (a NaN voxel silently dropped by a median
looks like a bad model, not a bad file).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np


class NonFiniteError(ValueError):
    """An array that must be finite holds NaN or infinity."""


@contextmanager
def open_hdf5(path, mode: str = "r", *, what: str = "HDF5 file"):
    """``h5py.File(path, mode)`` whose open errors name the file.

    h5py says "Unable to synchronously open file (truncated file ...)" and
    not which file; a user on a cluster needs the path.
    """
    path = Path(path)
    if mode == "r" and not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        f = h5py.File(path, mode)
    except OSError as error:
        raise OSError(f"{path}: cannot open this {what} ({error}); is it truncated or corrupt? "
                      f"Rebuild it: snakemake --cores 1 --force {path}") from error
    with f:
        yield f


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
