"""Atomic outputs: a file appears under its final name only when complete."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    If the block raises, the temporary file is removed and ``path`` is left as
    it was, so a crashed job never leaves a half-written output behind.
    (Resumable downloads keep their partial file on purpose: nrf.data.http.)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a prefix keeps the suffix, which writers such as nibabel read the format from
    tmp = path.with_name(".part-" + path.name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
