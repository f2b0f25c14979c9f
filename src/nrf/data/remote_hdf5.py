"""Read a selection of a remote HDF5 dataset with a few merged HTTP range requests.

h5py opens the remote file through a :class:`~nrf.data.http.RangeReader`, so
only metadata is fetched (superblock, object headers, the chunk index). From
the dataset's own storage layout (``get_offset`` for contiguous storage, the
chunk index for chunks, see below) every needed element gets its byte
offset; nearby byte ranges are merged (gap at most ``max_gap`` bytes, and at
most ``max_requests`` ranges), fetched in parallel and decoded with the
dataset's dtype. Any chunk shape works (one voxel per chunk, several voxels or
part of the time axis per chunk, or contiguous storage); filtered
(compressed) chunks raise :class:`UnsupportedLayout` (the bytes on the server
are not the values), and :func:`read_points_h5py` reads those through h5py.

The selection is "points x full axes": ``points`` (n, len(axes)) index the
dataset on ``axes``, every other axis is read whole, and the result is
``(n, *other_dims)``. NSD's betas twin (750, Z, Y, X) with the nsdgeneral
voxels as points on axes (1, 2, 3) gives (n_voxels, 750); the stimuli brick
(73000, 425, 425, 3) with image ids as points on axis 0 gives (n, 425, 425, 3).

HDF5's own per-chunk lookup (``get_chunk_info_by_coord``) iterates the index
from its start on every call, which over HTTP reads most of the index again
and again. So a version-1 B-tree chunk index (the default of h5py and MATLAB,
its nodes scattered through the file) is walked here instead: its root comes
from the dataset's layout message, and each level fetches only the nodes
whose key range holds a needed chunk, in one merged, parallel batch. Other
chunk indices (HDF5 1.10's fixed/extensible arrays, v2 B-trees) are compact
and read in one pass with ``chunk_iter``.
"""

from __future__ import annotations

import itertools
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field

import h5py
import numpy as np

from nrf.data.http import HttpClient, RangeReader, merge_ranges

log = logging.getLogger(__name__)

# Defaults: merge ranges whose gap is at most 256 KiB (at ~100 MB/s that is
# ~2.5 ms of transfer, cheaper than another request's ~30-80 ms to S3), and
# close more gaps until at most 256 requests remain per batch (each level of
# the chunk index, then the data). See benchmarks/range_reads.md.
MAX_GAP = 256 << 10
MAX_REQUESTS = 256
WORKERS = 8
# Elements gathered per unit of work (bounds memory of the offset arrays).
_UNIT_ELEMENTS = 1 << 22


class UnsupportedLayout(RuntimeError):
    """The dataset's bytes on the server are not its raw values (filters, external, virtual)."""


@dataclass(frozen=True)
class StorageLayout:
    """Where a dataset's raw values live in its file.

    kind : "contiguous" or "chunked"
    shape, dtype : the dataset's
    chunks : chunk shape; for contiguous storage, the virtual chunk
        ``(1, *shape[1:])`` (one row of the first axis) used to plan reads
    offset : byte offset of the contiguous data (None if never written)
    """

    kind: str
    shape: tuple
    dtype: np.dtype
    chunks: tuple
    offset: int | None = None

    @property
    def chunk_nbytes(self) -> int:
        return int(np.prod(self.chunks, dtype=np.int64)) * self.dtype.itemsize

    @property
    def grid(self) -> tuple:
        """Number of chunks along each axis."""
        return tuple(-(-s // c) for s, c in zip(self.shape, self.chunks))


def storage_layout(dset: h5py.Dataset) -> StorageLayout:
    """Describe ``dset``'s storage, or raise :class:`UnsupportedLayout`."""
    name = dset.name
    dcpl = dset.id.get_create_plist()
    layout = dcpl.get_layout()
    nfilters = dcpl.get_nfilters()
    if nfilters:
        filters = [dcpl.get_filter(i)[3].decode(errors="replace") or str(dcpl.get_filter(i)[0])
                   for i in range(nfilters)]
        raise UnsupportedLayout(
            f"{name}: chunks are filtered ({', '.join(filters)}); their bytes are not the values, "
            f"so they cannot be range-read raw — read through h5py or download the whole file"
        )
    if dcpl.get_external_count():
        raise UnsupportedLayout(f"{name}: data is stored in external files")
    dtype = dset.dtype
    if dtype.hasobject or dtype.kind not in "biuf":
        raise UnsupportedLayout(f"{name}: dtype {dtype} is not a plain number type")
    shape = tuple(int(s) for s in dset.shape)
    if layout == h5py.h5d.CONTIGUOUS:
        chunks = (1, *shape[1:]) if shape else ()
        return StorageLayout("contiguous", shape, dtype, chunks, dset.id.get_offset())
    if layout == h5py.h5d.CHUNKED:
        return StorageLayout("chunked", shape, dtype, tuple(int(c) for c in dset.chunks))
    kinds = {h5py.h5d.COMPACT: "compact"}
    if hasattr(h5py.h5d, "VIRTUAL"):
        kinds[h5py.h5d.VIRTUAL] = "virtual"
    raise UnsupportedLayout(f"{name}: {kinds.get(layout, layout)} layout cannot be range-read")


def _c_strides(shape) -> np.ndarray:
    """Element strides of a C-order array of ``shape``."""
    shape = np.asarray(shape, dtype=np.int64)
    return np.concatenate([np.cumprod(shape[::-1])[::-1][1:], [1]]).astype(np.int64)


def _lex_index(coords, radix) -> np.ndarray:
    """Order-preserving integer of chunk coordinate rows (lexicographic order)."""
    coords = np.asarray(coords, dtype=np.int64)
    return coords @ _c_strides(radix)


# ---------------------------------------------------------------- chunk index


def _u(data: bytes, off: int, n: int) -> int:
    return int.from_bytes(data[off : off + n], "little")


def _superblock(reader: RangeReader, base: int) -> tuple[int, int]:
    """(size of addresses, K of the chunk B-trees) from the superblock at ``base``."""
    sb = reader.pread(base, base + 64)
    if sb[:8] != b"\x89HDF\r\n\x1a\n":
        raise UnsupportedLayout("no HDF5 superblock at the file's base address")
    version = sb[8]
    if version in (0, 1):
        sizeof_addr = sb[13]
        k = _u(sb, 24, 2) if version == 1 else 32
    else:  # versions 2 and 3 keep a non-default K in an extension; h5py never writes one
        sizeof_addr, k = sb[9], 32
    return sizeof_addr, k


def _header_messages(reader: RangeReader, addr: int, sizeof_addr: int):
    """Yield (type, data) of the messages of the object header at ``addr`` (versions 1 and 2)."""
    head = reader.pread(addr, addr + 64)
    blocks = []
    if head[:4] == b"OHDR":
        flags = head[5]
        pos = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 0x03)
        size0 = _u(head, pos, width)
        start = addr + pos + width
        blocks.append((2, start, start + size0, flags))
    elif head[0] == 1:
        size0 = _u(head, 8, 4)
        blocks.append((1, addr + 16, addr + 16 + size0, 0))
    else:
        raise UnsupportedLayout(f"unknown object header at {addr}")
    seen = 0
    while blocks and seen < 64:
        version, start, stop, flags = blocks.pop(0)
        seen += 1
        data = reader.pread(start, stop)
        pos = 0
        while True:
            if version == 1:
                if pos + 8 > len(data):
                    break
                mtype, msize = _u(data, pos, 2), _u(data, pos + 2, 2)
                body = pos + 8
            else:
                if pos + 4 > len(data):
                    break
                mtype, msize = data[pos], _u(data, pos + 1, 2)
                body = pos + 4 + (2 if flags & 0x04 else 0)
            msg = data[body : body + msize]
            pos = body + msize
            if mtype == 0x10:  # continuation
                caddr, clen = _u(msg, 0, sizeof_addr), _u(msg, sizeof_addr, 8)
                if version == 1:
                    blocks.append((1, caddr, caddr + clen, 0))
                else:  # OCHK signature first, checksum last
                    blocks.append((2, caddr + 4, caddr + clen - 4, flags))
            yield mtype, msg


def chunk_btree_address(dset: h5py.Dataset, reader: RangeReader) -> tuple[int, int, int] | None:
    """(root address, node size, size of addresses) of ``dset``'s version-1 chunk B-tree.

    None when the chunks are indexed otherwise (layout message version 4:
    single chunk, implicit, fixed or extensible array, version-2 B-tree).
    """
    base = dset.file.userblock_size
    sizeof_addr, k = _superblock(reader, base)
    # H5Oget_info would total the index's size (walking all of it); the link holds the address
    link = dset.file.id.links.get_info(dset.name.encode())
    if link.type != h5py.h5l.TYPE_HARD:
        raise UnsupportedLayout(f"{dset.name}: reached through a soft or external link")
    header = int(link.u)
    for mtype, msg in _header_messages(reader, base + header, sizeof_addr):
        if mtype != 0x08:
            continue
        version = msg[0]
        if version in (1, 2):
            ndims, cls, pos = msg[1], msg[2], 8
        elif version == 3:
            cls = msg[1]
            if cls != 2:
                return None
            ndims, pos = msg[2], 3
        else:
            return None
        if cls != 2:
            return None
        root = _u(msg, pos, sizeof_addr)
        dims = [_u(msg, pos + sizeof_addr + 4 * i, 4) for i in range(ndims)]
        if tuple(dims[:-1]) != tuple(dset.chunks) or dims[-1] != dset.dtype.itemsize:
            raise UnsupportedLayout(
                f"{dset.name}: layout message says chunks {dims}, h5py says {dset.chunks}"
            )
        rank = len(dset.chunks)
        key_size = 8 + 8 * (rank + 1)
        node_size = 24 + (2 * k + 1) * key_size + 2 * k * sizeof_addr
        return base + root, node_size, sizeof_addr
    return None


class _Node:
    __slots__ = ("level", "keys", "children", "sizes", "masks")


def _parse_node(data: bytes, rank: int, chunks: np.ndarray, radix: np.ndarray, where: str) -> _Node:
    """A raw-data chunk B-tree node: keys as lexicographic chunk indices, children addresses."""
    if data[:4] != b"TREE" or data[4] != 1:
        raise UnsupportedLayout(f"{where}: not a raw-data chunk B-tree node")
    entries = _u(data, 6, 2)
    rec = np.dtype([("size", "<u4"), ("mask", "<u4"), ("off", "<u8", (rank + 1,)), ("child", "<u8")])
    body = np.frombuffer(data, dtype=rec, count=entries, offset=24)
    last = np.frombuffer(data, dtype=np.dtype("<u8"), count=rank + 1, offset=24 + entries * rec.itemsize + 8)
    offs = np.vstack([body["off"][:, :rank], last[None, :rank]]).astype(np.int64)
    if entries == 0 or np.any(offs % chunks):
        raise UnsupportedLayout(f"{where}: B-tree node keys are not chunk offsets of this dataset")
    node = _Node()
    node.level = data[5]
    node.keys = _lex_index(offs // chunks, radix)
    if np.any(np.diff(node.keys) <= 0):
        raise UnsupportedLayout(f"{where}: B-tree node keys are not increasing")
    node.children = body["child"].astype(np.int64)
    node.sizes = body["size"].astype(np.int64)
    node.masks = body["mask"].astype(np.int64)
    return node


def walk_chunk_btree(reader: RangeReader, root: int, node_size: int, *, rank: int, chunks, grid, needed,
                     base: int = 0, max_gap: int = MAX_GAP, max_requests: int | None = MAX_REQUESTS,
                     workers: int = WORKERS) -> tuple[np.ndarray, dict]:
    """Byte offsets of the ``needed`` chunks from a version-1 chunk B-tree.

    Level by level from the root, only the children whose key range holds a
    needed chunk are fetched, each level in one merged, parallel batch.

    Parameters
    ----------
    needed : (n, rank) int chunk coordinates

    Returns
    -------
    addresses : (n,) int64, -1 for a chunk never written
    info : {"levels", "nodes", "sizes"} (sizes: (n,) stored chunk sizes, "masks": filter masks)
    """
    chunks = np.asarray(chunks, dtype=np.int64)
    radix = np.asarray(grid, dtype=np.int64) + 1  # the last key sits one past the last chunk
    key_size = 8 + 8 * (rank + 1)
    lex = _lex_index(needed, radix)
    uniq, inverse = np.unique(lex, return_inverse=True)
    found = np.full(len(uniq), -1, dtype=np.int64)
    sizes = np.zeros(len(uniq), dtype=np.int64)
    masks = np.zeros(len(uniq), dtype=np.int64)
    frontier = np.array([root], dtype=np.int64)
    expected, levels, nodes = None, 0, 0
    while frontier.size:
        starts, stops = merge_ranges(frontier, frontier + node_size, max_gap=max_gap, max_requests=max_requests)
        reader.prefetch(starts, stops, workers=workers)
        levels += 1
        nodes += len(frontier)
        nxt = []
        for addr in frontier:
            addr = int(addr)
            data = reader.pread(addr, addr + node_size)
            need = 24 + _u(data, 6, 2) * (key_size + 8) + key_size
            if len(data) < need:  # a larger K than the superblock said
                data = reader.pread(addr, addr + need)
            node = _parse_node(data, rank, chunks, radix, f"node at {addr}")
            if expected is not None and node.level != expected:
                raise UnsupportedLayout(f"node at {addr}: level {node.level}, expected {expected}")
            if node.level > 0:
                lo = np.searchsorted(uniq, node.keys[:-1], side="left")
                hi = np.searchsorted(uniq, node.keys[1:], side="right")
                nxt.append(node.children[hi > lo] + base)
            else:
                pos = np.searchsorted(uniq, node.keys[:-1])
                ok = pos < len(uniq)
                ok[ok] = uniq[pos[ok]] == node.keys[:-1][ok]
                found[pos[ok]] = node.children[ok] + base
                sizes[pos[ok]] = node.sizes[ok]
                masks[pos[ok]] = node.masks[ok]
            level = node.level
        expected = level - 1
        frontier = np.unique(np.concatenate(nxt)) if nxt else np.zeros(0, dtype=np.int64)
    return found[inverse], {"levels": levels, "nodes": nodes, "sizes": sizes[inverse], "masks": masks[inverse]}


# ---------------------------------------------------------------- planning


@dataclass
class ReadStats:
    """What a read cost."""

    requests: int = 0  # HTTP requests (metadata and data)
    bytes: int = 0  # body bytes received
    metadata_requests: int = 0
    metadata_bytes: int = 0
    data_ranges: int = 0  # merged ranges asked for the values
    needed_bytes: int = 0  # bytes of the selected values themselves
    chunks: int = 0  # chunks touched
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("requests", "bytes", "metadata_requests", "metadata_bytes",
                                           "data_ranges", "needed_bytes", "chunks")}
        d.update(self.extra)
        return d


def _plan(layout: StorageLayout, axes, points) -> tuple[list, np.ndarray]:
    """Units of work: the points of one chunk x the chunk's block of the full axes.

    Returns ``units``, each ``(rows, point_off, full_off, out_index)``: the
    output rows of its points, their element offsets inside the chunk, the
    element offsets inside the chunk of the full-axes block (C-order), and the
    block's slices of the output's full axes; and ``coords`` (n_units, ndim),
    each unit's chunk coordinates.
    """
    ndim = len(layout.shape)
    shape = np.asarray(layout.shape, dtype=np.int64)
    chunks = np.asarray(layout.chunks, dtype=np.int64)
    cstride = _c_strides(chunks)
    axes = list(axes)
    full = [a for a in range(ndim) if a not in axes]

    pc = points // chunks[axes]  # chunk coordinate of each point on the point axes
    pl = (points % chunks[axes]) @ cstride[axes]  # element offset inside its chunk
    # group points by chunk, keeping each group's points in order of their in-chunk offset
    order = np.lexsort((pl, *pc.T[::-1])) if len(axes) else np.arange(len(points))
    pcs = pc[order]
    if len(order):
        brk = np.flatnonzero(np.any(pcs[1:] != pcs[:-1], axis=1)) + 1
    else:
        brk = np.array([], dtype=np.int64)
    groups = np.split(order, brk) if len(order) else []

    # blocks of the full axes: one per chunk along each full axis
    full_ranges = [range(-(-int(shape[a]) // int(chunks[a]))) for a in full]
    full_cache: dict[tuple, np.ndarray] = {}
    units, coords = [], []
    for fc in itertools.product(*full_ranges):
        lo = [int(c) * int(chunks[a]) for c, a in zip(fc, full)]
        hi = [min(l + int(chunks[a]), int(shape[a])) for l, a in zip(lo, full)]
        ext = tuple(h - l for l, h in zip(lo, hi))
        fo = full_cache.get(ext)
        if fo is None:
            grids = np.meshgrid(*[np.arange(e, dtype=np.int64) for e in ext], indexing="ij")
            fo = sum((g.ravel() * cstride[a] for g, a in zip(grids, full)), np.zeros(1, np.int64)) \
                if full else np.zeros(1, np.int64)
            fo = np.asarray(fo, dtype=np.int64).ravel()
            full_cache[ext] = fo
        out_index = tuple(slice(l, h) for l, h in zip(lo, hi))
        batch = max(1, _UNIT_ELEMENTS // max(1, fo.size))
        for g in groups:
            coord = np.empty(ndim, dtype=np.int64)
            coord[axes] = pc[g[0]]
            coord[full] = fc
            for s in range(0, len(g), batch):
                gg = g[s : s + batch]
                units.append((gg, pl[gg], fo, out_index))
                coords.append(coord)
    coords = np.asarray(coords, dtype=np.int64).reshape(len(coords), ndim)
    return units, coords


def chunk_addresses(dset: h5py.Dataset, reader: RangeReader, layout: StorageLayout, coords, *,
                    max_gap: int = MAX_GAP, max_requests: int | None = MAX_REQUESTS,
                    workers: int = WORKERS) -> tuple[np.ndarray, str]:
    """Byte offset of each chunk at ``coords`` (n, ndim) (-1: never written) and how it was found.

    Contiguous storage: computed from the data's offset. A version-1 B-tree:
    :func:`walk_chunk_btree`. Any other chunk index: one pass of HDF5's
    ``chunk_iter`` over the whole index (compact for those index kinds).
    """
    coords = np.asarray(coords, dtype=np.int64)
    out = np.full(len(coords), -1, dtype=np.int64)
    if layout.kind == "contiguous":
        if layout.offset is not None:  # virtual chunks are rows of the first axis
            out[:] = layout.offset + coords[:, 0] * layout.chunk_nbytes
        return out, "contiguous offset"
    expected = layout.chunk_nbytes
    chunks = np.asarray(layout.chunks, dtype=np.int64)
    btree = chunk_btree_address(dset, reader)
    if btree is not None:
        root, node_size, _ = btree
        out, info = walk_chunk_btree(reader, root, node_size, rank=len(layout.shape), chunks=chunks,
                                     grid=layout.grid, needed=coords, base=dset.file.userblock_size,
                                     max_gap=max_gap, max_requests=max_requests, workers=workers)
        sizes, masks = info["sizes"][out >= 0], info["masks"][out >= 0]
        method = f"v1 B-tree ({info['levels']} levels, {info['nodes']} nodes read)"
    else:
        radix = np.asarray(layout.grid, dtype=np.int64) + 1
        want = {int(v): i for i, v in enumerate(np.unique(_lex_index(coords, radix)))}
        got = {}

        def visit(info):
            lex = int(_lex_index(np.asarray(info.chunk_offset, dtype=np.int64) // chunks, radix))
            if lex in want:
                got[lex] = (info.byte_offset, info.size, info.filter_mask)

        dset.id.chunk_iter(visit)
        lex = _lex_index(coords, radix)
        sizes, masks = [], []
        for i, v in enumerate(lex):
            hit = got.get(int(v))
            if hit is not None and hit[0] is not None:
                out[i] = hit[0]
                sizes.append(hit[1])
                masks.append(hit[2])
        method = "chunk_iter"
    bad = np.flatnonzero((np.asarray(sizes) != expected) | (np.asarray(masks) != 0)) if len(sizes) else []
    if len(bad):
        raise UnsupportedLayout(
            f"{dset.name}: {len(bad)} chunks are stored with another size than {expected} bytes "
            f"or filtered; they cannot be range-read raw"
        )
    return out, method


def read_points(reader: RangeReader, dset: h5py.Dataset, axes, points, *, max_gap: int = MAX_GAP,
                max_requests: int | None = MAX_REQUESTS, workers: int = WORKERS,
                ) -> tuple[np.ndarray, ReadStats]:
    """Values of ``dset`` at ``points`` on ``axes``, every other axis whole.

    Parameters
    ----------
    reader : the RangeReader ``dset``'s file was opened on
    dset : an h5py dataset of that file
    axes : the axes the points index, e.g. (1, 2, 3)
    points : (n, len(axes)) int, in bounds
    max_gap, max_requests : range merging (see :func:`nrf.data.http.merge_ranges`)
    workers : parallel requests

    Returns
    -------
    values : (n, *other_dims) in the dataset's dtype, native byte order
    stats : :class:`ReadStats` of this call
    """
    layout = storage_layout(dset)
    ndim = len(layout.shape)
    axes = [int(a) for a in axes]
    if sorted(set(axes)) != sorted(axes) or any(not 0 <= a < ndim for a in axes):
        raise ValueError(f"{dset.name}: axes {axes} must be distinct axes of a {ndim}-d dataset")
    points = np.asarray(points, dtype=np.int64).reshape(-1, len(axes))
    shape = np.asarray(layout.shape, dtype=np.int64)
    if len(points) and (points.min() < 0 or np.any(points.max(axis=0) >= shape[axes])):
        raise IndexError(f"{dset.name}: points out of bounds of shape {layout.shape} on axes {axes}")
    full = [a for a in range(ndim) if a not in axes]
    out_shape = (len(points), *[layout.shape[a] for a in full])
    native = layout.dtype.newbyteorder("=")
    out = np.empty(out_shape, dtype=native)
    stats = ReadStats(needed_bytes=int(np.prod(out_shape, dtype=np.int64)) * layout.dtype.itemsize)
    if out.size == 0:
        return out, stats

    traffic = reader.client.traffic
    t0 = traffic.snapshot()
    units, coords = _plan(layout, axes, points)
    addrs, method = chunk_addresses(dset, reader, layout, coords, max_gap=max_gap, max_requests=max_requests,
                                    workers=workers)
    stats.extra["index"] = method
    t1 = traffic.snapshot()
    stats.metadata_requests = t1["requests"] - t0["requests"]
    stats.metadata_bytes = t1["bytes"] - t0["bytes"]
    stats.chunks = len(np.unique(addrs))

    # the values' byte ranges: per unit, runs of consecutive elements (touching runs joined)
    isz = layout.dtype.itemsize
    run_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    starts, stops = [], []
    for (g, pl, fo, _), a in zip(units, addrs):
        if a < 0:
            continue
        key = id(fo)
        if key not in run_cache:
            brk = np.flatnonzero(np.diff(fo) != 1) + 1
            rs = fo[np.concatenate([[0], brk])]
            re = fo[np.concatenate([brk - 1, [len(fo) - 1]])] + 1
            run_cache[key] = (rs, re)
        rs, re = run_cache[key]
        s = (a + (pl[:, None] + rs[None, :]) * isz).ravel()
        e = (a + (pl[:, None] + re[None, :]) * isz).ravel()
        if len(s) > 1:
            s, e = merge_ranges(s, e)
        starts.append(s)
        stops.append(e)
    if starts:
        rs, re = merge_ranges(np.concatenate(starts), np.concatenate(stops))
        # fetch what the cache (spans read for the chunk index) lacks, merged into few requests
        gaps = [g for a, b in zip(rs.tolist(), re.tolist()) for g in reader.missing(a, b)]
        if gaps:
            gaps = np.asarray(gaps, dtype=np.int64)
            fs, fe = merge_ranges(gaps[:, 0], gaps[:, 1], max_gap=max_gap, max_requests=max_requests)
            reader.prefetch(fs, fe, workers=workers)
            stats.data_ranges = len(fs)
        else:
            fs = fe = np.zeros(0, np.int64)
        buf = np.frombuffer(b"".join(reader.pread(a, b) for a, b in zip(rs.tolist(), re.tolist())),
                            dtype=np.uint8)
        reader.discard(fs, fe)  # bulk data is read once: keep only the metadata cached
        bufpos = np.concatenate([[0], np.cumsum(re - rs)[:-1]]).astype(np.int64)
    else:
        rs = re = bufpos = np.zeros(0, np.int64)
        buf = np.zeros(0, np.uint8)

    fill = dset.fillvalue
    span = np.arange(isz, dtype=np.int64)
    one_run = {}
    for (g, pl, fo, out_index), a in zip(units, addrs):
        target = (g, *out_index)
        ext = tuple(s.stop - s.start for s in out_index)
        if a < 0:
            out[target] = fill
            continue
        if id(fo) not in one_run:
            one_run[id(fo)] = fo.size > 1 and bool(np.all(np.diff(fo) == 1))
        if len(g) == 1 and one_run[id(fo)]:  # one contiguous run: a slice
            start = a + (int(pl[0]) + int(fo[0])) * isz
            i = np.searchsorted(rs, start, side="right") - 1
            p = bufpos[i] + start - rs[i]
            vals = buf[p : p + fo.size * isz].view(layout.dtype)
        else:
            off = a + (pl[:, None] + fo[None, :]).ravel() * isz
            i = np.searchsorted(rs, off, side="right") - 1
            p = bufpos[i] + off - rs[i]
            vals = buf[(p[:, None] + span).ravel()].view(layout.dtype)
        out[target] = vals.reshape((len(g), *ext))
    t2 = traffic.snapshot()
    stats.requests = t2["requests"] - t0["requests"]
    stats.bytes = t2["bytes"] - t0["bytes"]
    return out, stats


def read_points_h5py(dset: h5py.Dataset, axes, points) -> np.ndarray:
    """Same selection as :func:`read_points`, through h5py (any layout, filters included).

    Slower over HTTP (HDF5 reads chunk by chunk, one request each); the
    fallback for filtered datasets. Points on one axis only.
    """
    axes = list(axes)
    if len(axes) != 1:
        raise UnsupportedLayout(f"{dset.name}: h5py fallback reads points on one axis only")
    idx = np.asarray(points, dtype=np.int64).reshape(-1)
    uniq, inv = np.unique(idx, return_inverse=True)
    sel = [slice(None)] * dset.ndim
    sel[axes[0]] = uniq
    vals = dset[tuple(sel)]
    vals = np.take(vals, inv, axis=axes[0])
    return np.moveaxis(vals, axes[0], 0)


@contextmanager
def open_remote(url: str, *, client: HttpClient | None = None, size: int | None = None,
                block_size: int = 64 << 10, whole_below: int = 4 << 20, name: str | None = None):
    """Open a remote HDF5 file read-only: yields ``(h5py.File, RangeReader)``.

    Files of at most ``whole_below`` bytes are fetched whole on the first read.
    """
    reader = RangeReader(url, client=client, size=size, block_size=block_size, whole_below=whole_below,
                         name=name)
    try:
        with h5py.File(reader, "r") as f:
            yield f, reader
    finally:
        reader.close()
