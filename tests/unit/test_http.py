"""The downloader and the ranged reader against a real HTTP server on 127.0.0.1."""

import gzip
import socket

import h5py
import numpy as np
import pytest
from http_server import RangeServer

from nrf.data.http import (
    HttpClient,
    IntegrityError,
    RemoteError,
    RemoteNotFoundError,
    download,
    key_url,
    open_remote,
)

KEY = "nsddata/ppdata/subj01/func1pt8mm/brainmask.nii.gz"
BIN = "nsddata/experiments/nsd/blob.bin"


def fast_client(**kw):
    kw.setdefault("backoff", 0.01)
    kw.setdefault("retries", 4)
    kw.setdefault("timeout", 5)
    return HttpClient(**kw)


@pytest.fixture
def tree(tmp_path, rng):
    """A served folder with a gzip file (NSD-like key) and a plain binary file."""
    root = tmp_path / "bucket"
    (root / KEY).parent.mkdir(parents=True)
    (root / BIN).parent.mkdir(parents=True)
    payload = rng.integers(0, 50, size=300_000, dtype=np.uint8).tobytes()  # compressible
    (root / KEY).write_bytes(gzip.compress(payload, compresslevel=1))
    (root / BIN).write_bytes(rng.integers(0, 256, size=250_000, dtype=np.uint8).tobytes())
    return root


@pytest.fixture
def server(tree):
    with RangeServer(tree) as srv:
        yield srv


def test_server_supports_ranges_and_stops(tree):
    import urllib.request

    srv = RangeServer(tree).start()
    url = srv.url + "/" + BIN
    req = urllib.request.Request(url, headers={"Range": "bytes=10-19"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 206
        assert resp.read() == (tree / BIN).read_bytes()[10:20]
        assert resp.headers["Content-Range"] == f"bytes 10-19/{(tree / BIN).stat().st_size}"
    port = int(url.split(":")[2].split("/")[0])
    srv.stop()
    assert not srv._thread.is_alive()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_download_equals_source_then_is_kept(server, tree, tmp_path):
    dest = tmp_path / "local" / KEY
    client = fast_client()
    res = download(key_url(server.url, KEY), dest, client=client, name=KEY)
    assert res.status == "downloaded"
    assert dest.read_bytes() == (tree / KEY).read_bytes()
    assert not dest.with_name(dest.name + ".part").exists()
    server.reset_log()
    again = download(key_url(server.url, KEY), dest, client=client, name=KEY)
    assert again.status == "present" and again.bytes == 0
    assert server.gets() == 0  # a HEAD only


def test_dropped_connection_resumes(server, tree, tmp_path):
    dest = tmp_path / "local" / BIN
    server.drop[BIN] = (60_000, 2)  # the first two GETs are cut after 60 kB
    res = download(key_url(server.url, BIN), dest, client=fast_client(), name=BIN)
    assert dest.read_bytes() == (tree / BIN).read_bytes()
    gets = [r for m, k, r in server.requests if m == "GET" and k == BIN]
    assert gets == [None, "bytes=60000-", "bytes=120000-"]
    assert res.bytes == (tree / BIN).stat().st_size  # nothing fetched twice


def test_interrupted_run_leaves_part_and_next_run_resumes(server, tree, tmp_path):
    dest = tmp_path / "local" / BIN
    part = dest.with_name(dest.name + ".part")
    server.drop[BIN] = (100_000, 1)  # the run is cut after 100 kB and does not retry
    with pytest.raises(RemoteError, match="giving up"):
        download(key_url(server.url, BIN), dest, client=fast_client(retries=0), name=BIN)
    assert not dest.exists()  # never a partial file under the final name
    assert part.stat().st_size == 100_000
    server.drop.clear()
    res = download(key_url(server.url, BIN), dest, client=fast_client(), name=BIN)
    assert res.status == "resumed"
    assert res.bytes == (tree / BIN).stat().st_size - 100_000
    assert dest.read_bytes() == (tree / BIN).read_bytes()


def test_corrupted_transfer_is_refetched(server, tree, tmp_path):
    dest = tmp_path / "local" / BIN
    server.corrupt[BIN] = 1  # first body has a flipped byte: MD5 (ETag) catches it
    download(key_url(server.url, BIN), dest, client=fast_client(), name=BIN)
    assert dest.read_bytes() == (tree / BIN).read_bytes()
    assert server.gets(BIN) == 2


def test_corrupted_gzip_without_etag_is_refetched(tree, tmp_path):
    dest = tmp_path / "local" / KEY
    with RangeServer(tree, etags=False) as srv:
        srv.corrupt[KEY] = 1  # no ETag: the gzip check catches the flipped byte
        download(key_url(srv.url, KEY), dest, client=fast_client(), name=KEY)
        assert srv.gets(KEY) == 2
    assert dest.read_bytes() == (tree / KEY).read_bytes()


def test_corrupt_and_truncated_local_files_are_refetched(server, tree, tmp_path):
    dest = tmp_path / "local" / BIN
    dest.parent.mkdir(parents=True)
    good = (tree / BIN).read_bytes()
    dest.write_bytes(good[:1000] + bytes([good[1000] ^ 1]) + good[1001:])
    assert download(key_url(server.url, BIN), dest, client=fast_client()).status == "downloaded"
    assert dest.read_bytes() == good
    dest.write_bytes(good[:-10])
    assert download(key_url(server.url, BIN), dest, client=fast_client()).status == "downloaded"
    assert dest.read_bytes() == good


def test_stale_part_with_wrong_bytes_is_discarded(server, tree, tmp_path):
    dest = tmp_path / "local" / BIN
    part = dest.with_name(dest.name + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 5000)  # not the object's first bytes
    download(key_url(server.url, BIN), dest, client=fast_client())
    assert dest.read_bytes() == (tree / BIN).read_bytes()
    assert not part.exists()


def test_missing_key_gives_clear_error(server, tmp_path):
    key = "nsddata/ppdata/subj09/func1pt8mm/brainmask.nii.gz"
    dest = tmp_path / "local" / key
    with pytest.raises(RemoteNotFoundError, match="subj09/func1pt8mm/brainmask.nii.gz.*403"):
        download(key_url(server.url, key), dest, client=fast_client(), name=key)
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()
    server.missing_status = 404
    with pytest.raises(RemoteNotFoundError, match="404"):
        download(key_url(server.url, key), dest, client=fast_client(), name=key)


def test_transient_5xx_is_retried_then_gives_up(server, tree, tmp_path):
    dest = tmp_path / "local" / BIN
    server.fail[BIN] = (503, 3)
    download(key_url(server.url, BIN), dest, client=fast_client(), name=BIN)
    assert dest.read_bytes() == (tree / BIN).read_bytes()
    dest.unlink()
    server.fail[BIN] = (500, 100)
    with pytest.raises(RemoteError, match="giving up after 2 retries"):
        download(key_url(server.url, BIN), dest, client=fast_client(retries=2), name=BIN)
    assert not dest.exists()


def test_integrity_error_after_repeated_corruption(server, tmp_path):
    dest = tmp_path / "local" / BIN
    server.corrupt[BIN] = 100
    with pytest.raises(IntegrityError, match="MD5"):
        download(key_url(server.url, BIN), dest, client=fast_client(), name=BIN, attempts=2)
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()


def test_remote_hdf5_reads_only_what_it_needs(tmp_path, rng):
    """h5py over the block cache: equal values, repeated reads cached, traffic counted exactly."""
    root = tmp_path / "bucket"
    root.mkdir()
    values = rng.standard_normal((400, 500)).astype(np.float32)  # 800 kB
    with h5py.File(root / "x.hdf5", "w") as f:
        f.create_dataset("x", data=values)
    with RangeServer(root) as srv:
        client = fast_client()
        with open_remote(srv.url + "/x.hdf5", client=client, block_size=4096, cache_bytes=1 << 20) as (f, size):
            assert size == (root / "x.hdf5").stat().st_size
            assert np.array_equal(f["x"][3:7], values[3:7])
            first = client.traffic.snapshot()
            assert np.array_equal(f["x"][3:7], values[3:7])  # from the cache
            assert client.traffic.snapshot() == first
            assert np.array_equal(f["x"][399], values[399])
        gets = [r for m, _, r in srv.requests if m == "GET"]
        assert all(r is not None and r.startswith("bytes=") for r in gets)  # never the whole file
        assert client.traffic.requests == len(srv.requests)  # HEAD + every GET
        assert client.traffic.bytes == srv.bytes_sent < size // 10


def test_remote_reads_retry_drops_and_5xx(tmp_path, rng):
    root = tmp_path / "bucket"
    root.mkdir()
    values = rng.integers(0, 1000, (200, 300)).astype("<i4")
    with h5py.File(root / "x.hdf5", "w") as f:
        f.create_dataset("x", data=values)
    with RangeServer(root) as srv:
        srv.drop["x.hdf5"] = (100, 2)  # the first two GETs are cut after 100 bytes
        with open_remote(srv.url + "/x.hdf5", client=fast_client(), block_size=8192) as (f, _):
            srv.fail["x.hdf5"] = (503, 2)
            assert np.array_equal(f["x"][150:], values[150:])
        assert not srv.drop and not srv.fail  # the faults happened
        srv.fail["x.hdf5"] = (500, 1)
        with open_remote(srv.url + "/x.hdf5", client=fast_client(), block_size=8192) as (f, _):
            srv.fail["x.hdf5"] = (500, 100)
            with pytest.raises(Exception, match="giving up after 4 retries"):
                f["x"][:]


def test_remote_missing_key_gives_clear_error(server):
    key = "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session41.hdf5"
    with pytest.raises(RemoteNotFoundError, match="betas_session41.hdf5.*403"):
        with open_remote(key_url(server.url, key), client=fast_client(), name=key):
            pass
