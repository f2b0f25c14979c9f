"""Remote HDF5 reads (h5py over HTTP ranges) equal h5py's local reads, for every storage layout."""

import h5py
import numpy as np
import pytest
from http_server import RangeServer

from nrf.data.fetch_nsd import UnsupportedLayout, check_readable, read_rows, read_voxels
from nrf.data.http import HttpClient, open_remote

T, Z, Y, X = 30, 9, 11, 7  # a betas twin (T, Z, Y, X)


def _betas(rng, dtype="<i2"):
    return rng.integers(-3000, 3000, size=(T, Z, Y, X)).astype(dtype)


def _voxels(rng, n=120):
    """Random distinct (i, j, k) on the (X, Y, Z) grid, in C-order (as nsdgeneral is)."""
    flat = np.sort(rng.choice(X * Y * Z, size=n, replace=False))
    return np.stack(np.unravel_index(flat, (X, Y, Z)), axis=1)


def _read(server, name, points, dset="betas", block_size=4096):
    """(values, client) of ``read_voxels`` on the served file."""
    client = HttpClient(backoff=0.01, timeout=5)
    with open_remote(f"{server.url}/{name}", client=client, block_size=block_size) as (f, _):
        check_readable(f[dset])
        return read_voxels(f[dset], points), client


LAYOUTS = {
    "per_voxel": dict(chunks=(T, 1, 1, 1)),
    "contiguous": dict(),
    "odd_chunks": dict(chunks=(7, 2, 3, 2)),  # partial time, several voxels, partial edge chunks
    "v18_format": dict(chunks=(T, 1, 1, 1), libver=("v108", "v108")),  # v2 object header, v1 B-tree
    "latest_format": dict(chunks=(T, 1, 1, 1), libver="latest"),  # fixed-array chunk index
    "big_endian": dict(chunks=(T, 1, 1, 1), dtype=">i2"),
    "gzip": dict(chunks=(T, 1, 1, 1), compression="gzip"),  # filtered chunks: h5py decodes them
    # as MATLAB's HDF5 writes: a 512-byte user block, superblock v0, v1 B-tree, earliest formats
    "matlab_earliest": dict(chunks=(T, 1, 1, 1), libver=("earliest", "v108"), userblock_size=512),
}


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """One (T, Z, Y, X) twin per storage layout, served on 127.0.0.1."""
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("twins")
    data = {}
    for name, opts in LAYOUTS.items():
        opts = dict(opts)
        file_opts = {k: opts.pop(k) for k in ("libver", "userblock_size") if k in opts}
        values = _betas(rng, opts.pop("dtype", "<i2"))
        with h5py.File(root / f"{name}.hdf5", "w", **file_opts) as f:
            f.create_dataset("betas", data=values, **opts)
        data[name] = values
    with RangeServer(root) as srv:
        yield srv, root, data


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_range_read_equals_local_read(twins, name):
    server, root, _ = twins
    server.reset_log()
    ijk = _voxels(np.random.default_rng(1))
    values, client = _read(server, f"{name}.hdf5", ijk[:, ::-1])
    with h5py.File(root / f"{name}.hdf5", "r") as f:
        local = f["betas"][()]
    expected = local[:, ijk[:, 2], ijk[:, 1], ijk[:, 0]].T  # twin[:, k, j, i]
    assert values.shape == (len(ijk), T)
    assert values.dtype == np.dtype("int16")  # native order whatever the file's
    np.testing.assert_array_equal(values, expected)
    # each block is fetched once: never more than the file (plus the last block's slack)
    assert client.traffic.requests == len(server.requests)
    assert client.traffic.bytes <= (root / f"{name}.hdf5").stat().st_size


def test_matlab_layout_is_the_earliest_format(twins):
    _, root, _ = twins
    head = (root / "matlab_earliest.hdf5").read_bytes()[:1024]
    assert head[512:520] == b"\x89HDF\r\n\x1a\n" and head[520] == 0  # after the user block: superblock v0


def test_few_voxels_of_a_deep_index_cost_a_fraction_of_the_file(tmp_path, rng):
    """13,824 per-voxel chunks (a B-tree of several levels): a ribbon of voxels reads a few blocks."""
    shape = (30, 24, 24, 24)
    values = rng.integers(-999, 999, shape).astype("<i2")
    with h5py.File(tmp_path / "deep.hdf5", "w") as f:
        f.create_dataset("betas", data=values, chunks=(30, 1, 1, 1))
    kji = np.array([(k, j, i) for k in (5, 6) for j in range(3, 9) for i in range(2, 20)])  # 216 voxels
    with RangeServer(tmp_path) as srv:
        got, client = _read(srv, "deep.hdf5", kji, block_size=16384)
    np.testing.assert_array_equal(got, values[:, kji[:, 0], kji[:, 1], kji[:, 2]].T)
    size = (tmp_path / "deep.hdf5").stat().st_size
    assert client.traffic.bytes < 0.15 * size
    assert client.traffic.requests < 0.15 * size / 16384


def test_unwritten_chunks_read_as_fill_value(tmp_path, rng):
    values = np.zeros((T, Z, Y, X), np.int16)
    with h5py.File(tmp_path / "sparse.hdf5", "w") as f:
        d = f.create_dataset("betas", shape=(T, Z, Y, X), dtype="<i2", chunks=(T, 1, 1, 1), fillvalue=-7)
        for z, y, x in [(0, 0, 0), (4, 5, 6), (8, 10, 6)]:
            values[:, z, y, x] = d[:, z, y, x] = rng.integers(-100, 100, T)
    expected = np.where(values == 0, -7, values)
    points = np.array([[0, 0, 0], [4, 5, 6], [1, 1, 1], [8, 10, 6]])
    with RangeServer(tmp_path) as srv:
        got, _ = _read(srv, "sparse.hdf5", points)
    np.testing.assert_array_equal(got, expected[:, points[:, 0], points[:, 1], points[:, 2]].T)


def test_image_rows_by_range(tmp_path, rng):
    """Rows of an (n, H, W, 3) uint8 brick: contiguous, chunked per image, odd chunks, gzip."""
    brick = rng.integers(0, 256, (40, 6, 5, 3), dtype=np.uint8)
    with h5py.File(tmp_path / "stim.hdf5", "w") as f:
        f.create_dataset("contiguous", data=brick)
        f.create_dataset("chunked", data=brick, chunks=(1, 6, 5, 3))
        f.create_dataset("odd", data=brick, chunks=(3, 4, 5, 2))
        f.create_dataset("gzip", data=brick, chunks=(1, 6, 5, 3), compression="gzip")
    ids = np.array([0, 3, 4, 5, 17, 39])
    with RangeServer(tmp_path) as srv:
        with open_remote(f"{srv.url}/stim.hdf5", client=HttpClient(timeout=5), block_size=256,
                         cache_type="bytes") as (f, _):
            for name in ("contiguous", "chunked", "odd", "gzip"):
                np.testing.assert_array_equal(read_rows(f[name], ids), brick[ids])


def test_unavailable_filter_and_external_storage_are_refused(tmp_path):
    with h5py.File(tmp_path / "odd.hdf5", "w") as f:
        f.create_dataset("blosc", shape=(T, Z, Y, X), dtype="<i2", chunks=(T, 1, 1, 1), compression=32001,
                         allow_unknown_filter=True)  # Blosc, which this HDF5 has no plugin for
        f.create_dataset("external", shape=(4, 3), dtype="<i2", external=[("values.raw", 0, 24)])
    with RangeServer(tmp_path) as srv:
        with open_remote(f"{srv.url}/odd.hdf5", client=HttpClient(timeout=5)) as (f, _):
            with pytest.raises(UnsupportedLayout, match="filter 32001"):
                check_readable(f["blosc"])
            with pytest.raises(UnsupportedLayout, match="other files"):
                check_readable(f["external"])


def test_out_of_bounds_points_raise(twins):
    server, _, _ = twins
    with pytest.raises(IndexError, match="out of bounds"):
        _read(server, "per_voxel.hdf5", np.array([[Z, 0, 0]]))


GC_SCRIPT = """
import gc, sys, h5py, numpy as np
from pathlib import Path
from http_server import RangeServer
from nrf.data.http import HttpClient, open_remote
root = Path(sys.argv[1])
with h5py.File(root / "a.hdf5", "w") as f:
    f.create_dataset("x", data=np.arange(200000, dtype="f4").reshape(2000, 100), chunks=(1, 100))
class Holder: pass
gc.set_threshold(5, 1, 1)  # collect on almost every allocation, in whichever thread allocates
with RangeServer(root) as srv:
    with open_remote(f"{srv.url}/a.hdf5", client=HttpClient(backoff=0.01, timeout=5), block_size=4096,
                     cache_bytes=8192) as (f, _):
        for i in range(0, 2000, 7):
            h = Holder(); h.me = h; h.x = f["x"]  # cyclic garbage holding an h5py object
            del h
            f["x"][i]
print("read all rows")
"""


def test_garbage_collection_during_remote_reads_does_not_deadlock(tmp_path):
    """A collection in fsspec's IO thread that frees an h5py object while the main
    thread waits inside h5py for a block used to deadlock (h5py's global lock)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    try:
        result = subprocess.run([sys.executable, "-c", GC_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                                timeout=120, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("remote HDF5 reads deadlocked under garbage collection")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "read all rows" in result.stdout
