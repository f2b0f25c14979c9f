"""Range reads of HDF5 datasets equal h5py's local reads, for every storage layout."""

import h5py
import numpy as np
import pytest
from http_server import RangeServer

from nrf.data import remote_hdf5
from nrf.data.http import HttpClient
from nrf.data.remote_hdf5 import (
    UnsupportedLayout,
    open_remote,
    read_points,
    read_points_h5py,
    storage_layout,
    walk_chunk_btree,
)

T, Z, Y, X = 30, 9, 11, 7  # a betas twin (T, Z, Y, X)


def _betas(rng, dtype="<i2"):
    return rng.integers(-3000, 3000, size=(T, Z, Y, X)).astype(dtype)


def _voxels(rng, n=120):
    """Random distinct (i, j, k) on the (X, Y, Z) grid, in C-order (as nsdgeneral is)."""
    flat = np.sort(rng.choice(X * Y * Z, size=n, replace=False))
    return np.stack(np.unravel_index(flat, (X, Y, Z)), axis=1)


def _read(server, name, dset="betas", axes=(1, 2, 3), points=None, **kw):
    client = HttpClient(backoff=0.01, timeout=5)
    with open_remote(f"{server.url}/{name}", client=client, whole_below=0) as (f, reader):
        return read_points(reader, f[dset], axes, points, **kw)


LAYOUTS = {
    "per_voxel": dict(chunks=(T, 1, 1, 1)),
    "contiguous": dict(),
    "odd_chunks": dict(chunks=(7, 2, 3, 2)),  # partial time, several voxels, partial edge chunks
    "v18_format": dict(chunks=(T, 1, 1, 1), libver=("v108", "v108")),  # v2 object header, v1 B-tree
    "latest_format": dict(chunks=(T, 1, 1, 1), libver="latest"),  # fixed-array chunk index
    "big_endian": dict(chunks=(T, 1, 1, 1), dtype=">i2"),
}


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """One (T, Z, Y, X) twin per storage layout, served on 127.0.0.1."""
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("twins")
    data = {}
    for name, opts in LAYOUTS.items():
        opts = dict(opts)
        libver = opts.pop("libver", None)
        dtype = opts.pop("dtype", "<i2")
        values = _betas(rng, dtype)
        with h5py.File(root / f"{name}.hdf5", "w", libver=libver) as f:
            f.create_dataset("betas", data=values, **opts)
        data[name] = values
    with RangeServer(root) as srv:
        yield srv, root, data


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_range_read_equals_local_read(twins, name):
    server, root, data = twins
    ijk = _voxels(np.random.default_rng(1))
    values, stats = _read(server, f"{name}.hdf5", points=ijk[:, ::-1])
    with h5py.File(root / f"{name}.hdf5", "r") as f:
        local = f["betas"][()]
    expected = local[:, ijk[:, 2], ijk[:, 1], ijk[:, 0]].T  # twin[:, k, j, i]
    assert values.shape == (len(ijk), T)
    assert values.dtype == np.dtype("int16")  # native order whatever the file's
    np.testing.assert_array_equal(values, expected)
    assert stats.needed_bytes == len(ijk) * T * 2
    assert stats.requests <= 2 + stats.metadata_requests + stats.data_ranges
    if LAYOUTS[name].get("chunks") and LAYOUTS[name].get("libver") != "latest":
        assert stats.extra["index"].startswith("v1 B-tree")


def test_per_voxel_chunks_cost_few_requests_and_bytes(twins):
    server, root, _ = twins
    ijk = _voxels(np.random.default_rng(2), n=60)
    _, small_gap = _read(server, "per_voxel.hdf5", points=ijk[:, ::-1], max_gap=0, max_requests=None)
    assert small_gap.extra["index"].startswith("v1 B-tree")
    # without merging: a request per run of adjacent voxels not already read with the index
    assert small_gap.data_ranges > 10
    _, merged = _read(server, "per_voxel.hdf5", points=ijk[:, ::-1], max_requests=4)
    assert merged.data_ranges <= 4
    assert merged.requests < small_gap.requests
    assert merged.bytes < (root / "per_voxel.hdf5").stat().st_size


def test_unwritten_chunks_read_as_fill_value(tmp_path, rng):
    values = np.zeros((T, Z, Y, X), np.int16)
    with h5py.File(tmp_path / "sparse.hdf5", "w") as f:
        d = f.create_dataset("betas", shape=(T, Z, Y, X), dtype="<i2", chunks=(T, 1, 1, 1), fillvalue=-7)
        for z, y, x in [(0, 0, 0), (4, 5, 6), (8, 10, 6)]:
            values[:, z, y, x] = d[:, z, y, x] = rng.integers(-100, 100, T)
    expected = np.where(values == 0, -7, values)
    points = np.array([[0, 0, 0], [4, 5, 6], [1, 1, 1], [8, 10, 6]])
    with RangeServer(tmp_path) as srv:
        got, _ = _read(srv, "sparse.hdf5", points=points)
    np.testing.assert_array_equal(got, expected[:, points[:, 0], points[:, 1], points[:, 2]].T)


def test_btree_walk_finds_the_addresses_h5py_finds(tmp_path, rng):
    """A tree deep enough for several levels: the walk agrees with HDF5's lookups."""
    shape = (4, 24, 24, 24)  # 13,824 chunks: root, internal level, leaves
    with h5py.File(tmp_path / "deep.hdf5", "w") as f:
        f.create_dataset("betas", data=rng.integers(0, 9, shape).astype("<i2"), chunks=(4, 1, 1, 1))
    needed = np.concatenate([np.zeros((300, 1), int), rng.integers(0, 24, (300, 3))], axis=1)
    with h5py.File(tmp_path / "deep.hdf5", "r") as f:
        d = f["betas"]
        expected = [d.id.get_chunk_info_by_coord(tuple(int(v) for v in c * (4, 1, 1, 1))).byte_offset
                    for c in needed]
    with RangeServer(tmp_path) as srv:
        client = HttpClient(timeout=5)
        with open_remote(f"{srv.url}/deep.hdf5", client=client, whole_below=0) as (f, reader):
            d = f["betas"]
            root, node_size, _ = remote_hdf5.chunk_btree_address(d, reader)
            layout = storage_layout(d)
            addrs, info = walk_chunk_btree(reader, root, node_size, rank=4, chunks=layout.chunks,
                                           grid=layout.grid, needed=needed)
    assert info["levels"] >= 3
    assert addrs.tolist() == expected


def test_image_rows_by_range(tmp_path, rng):
    """Points on axis 0 of an (n, H, W, 3) uint8 brick, contiguous and chunked per image."""
    brick = rng.integers(0, 256, (40, 6, 5, 3), dtype=np.uint8)
    with h5py.File(tmp_path / "stim.hdf5", "w") as f:
        f.create_dataset("contiguous", data=brick)
        f.create_dataset("chunked", data=brick, chunks=(1, 6, 5, 3))
        f.create_dataset("odd", data=brick, chunks=(3, 4, 5, 2))
    ids = np.array([0, 3, 4, 5, 17, 39])
    with RangeServer(tmp_path) as srv:
        for name in ("contiguous", "chunked", "odd"):
            got, _ = _read(srv, "stim.hdf5", dset=name, axes=(0,), points=ids[:, None])
            np.testing.assert_array_equal(got, brick[ids])


def test_filtered_chunks_are_refused_and_read_through_h5py(tmp_path, rng):
    brick = rng.integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    with h5py.File(tmp_path / "gz.hdf5", "w") as f:
        f.create_dataset("imgBrick", data=brick, chunks=(1, 4, 4, 3), compression="gzip")
    with RangeServer(tmp_path) as srv:
        with pytest.raises(UnsupportedLayout, match="filtered"):
            _read(srv, "gz.hdf5", dset="imgBrick", axes=(0,), points=np.array([[1]]))
        with open_remote(f"{srv.url}/gz.hdf5", client=HttpClient(timeout=5)) as (f, _):
            got = read_points_h5py(f["imgBrick"], (0,), np.array([7, 2, 7]))
    np.testing.assert_array_equal(got, brick[[7, 2, 7]])


def test_out_of_bounds_points_raise(twins):
    server, _, _ = twins
    with pytest.raises(IndexError, match="out of bounds"):
        _read(server, "per_voxel.hdf5", points=np.array([[Z, 0, 0]]))
