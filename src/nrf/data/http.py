"""HTTP for NSD's public bucket: robust whole-file downloads and ranged reads.

Standard library only (``http.client``), one keep-alive connection per thread
and host. Three pieces:

- :class:`HttpClient`: HEAD and ranged GET with retries and exponential
  backoff on transient failures (dropped connections, timeouts, 5xx, 429),
  and a clear :class:`RemoteNotFoundError` naming the key on 403/404 (S3
  answers 403 for a missing key to anonymous clients). It counts the
  requests and bytes it makes in a :class:`Traffic`.
- :func:`download`: one object to one local file, atomically. Bytes go to
  ``<name>.part``; an interrupted download resumes from the part's size
  (``Range: bytes=N-`` guarded by ``If-Range: <ETag>``); the result is checked
  (size against the server's Content-Length / Content-Range total, MD5
  against a plain S3 ETag, the file format's own integrity by
  :func:`check_file`) and only then renamed to its final name. An existing
  final file that fails the same checks is fetched again.
- :class:`RangeReader`: a read-only, seekable file-like object whose reads are
  ranged GETs through a cache of byte extents, so ``h5py.File(reader, "r")``
  fetches only the metadata it touches. :meth:`RangeReader.read_ranges` fetches
  many ranges in parallel into the same cache.
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import http.client
import io
import logging
import os
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
USER_AGENT = "nrf-replication/0.1 (+https://github.com/haomiao8/NRF replication)"
_CHUNK = 1 << 20  # bytes read from a response at a time
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_TRANSIENT_EXC = (
    http.client.HTTPException,  # IncompleteRead, RemoteDisconnected, BadStatusLine
    ConnectionError,
    TimeoutError,
    socket.timeout,
    ssl.SSLError,
    OSError,
)


class RemoteError(RuntimeError):
    """A request failed for good (after retries, or with a non-transient status)."""


class RemoteNotFoundError(RemoteError):
    """The server answered 403 or 404: the key does not exist (or is not public)."""


class IntegrityError(RemoteError):
    """A downloaded file failed its size, checksum or format check."""


class _Transient(Exception):
    """A failure worth retrying (connection drop, timeout, 5xx)."""


@dataclass
class Traffic:
    """Requests made and body bytes received (thread-safe counters)."""

    requests: int = 0
    bytes: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()

    def add(self, requests: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.bytes += nbytes

    def snapshot(self) -> dict:
        with self._lock:
            return {"requests": self.requests, "bytes": self.bytes}


@dataclass(frozen=True)
class RemoteInfo:
    """What the server says about an object."""

    url: str
    size: int
    etag: str | None

    @property
    def md5(self) -> str | None:
        """The MD5 hex digest when the ETag is a plain S3 one (not multipart)."""
        if self.etag is None:
            return None
        tag = self.etag.strip('"')
        if tag.startswith("W/"):
            return None
        if len(tag) == 32 and all(c in "0123456789abcdefABCDEF" for c in tag):
            return tag.lower()
        return None


def key_url(base_url: str, key: str) -> str:
    """``https://bucket/<key>`` with the key's path segments quoted."""
    return base_url.rstrip("/") + "/" + urllib.parse.quote(key.lstrip("/"))


def _content_range(value: str | None) -> tuple[int, int, int | None]:
    """Parse ``bytes a-b/total`` -> (a, b inclusive, total or None)."""
    if not value or not value.startswith("bytes "):
        raise _Transient(f"malformed Content-Range {value!r}")
    span, _, total = value[6:].partition("/")
    a, _, b = span.partition("-")
    try:
        return int(a), int(b), (None if total.strip() == "*" else int(total))
    except ValueError as err:
        raise _Transient(f"malformed Content-Range {value!r}") from err


class HttpClient:
    """HEAD and GET with retries, backoff, keep-alive and traffic counts.

    Parameters
    ----------
    retries : attempts after the first on a transient failure; a download that
        made progress before failing gets its attempts back
    backoff : seconds before the first retry, doubled each time up to ``max_backoff``
    timeout : socket timeout in seconds (connect and each read)
    traffic : counters to add to (a new one if None)
    """

    def __init__(self, *, retries: int = 6, backoff: float = 0.5, max_backoff: float = 30.0,
                 timeout: float = 60.0, traffic: Traffic | None = None):
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.timeout = float(timeout)
        self.traffic = traffic if traffic is not None else Traffic()
        self._local = threading.local()
        self._ssl = ssl.create_default_context()
        self._lock = threading.Lock()
        self._conns: list[http.client.HTTPConnection] = []
        self._executor: ThreadPoolExecutor | None = None
        self._executor_workers = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def map(self, fn, items, workers: int = 8) -> list:
        """``[fn(x) for x in items]`` on up to ``workers`` threads kept between calls.

        The threads keep their connections alive, so a batch of ranged reads
        reuses the connections of the previous batch.
        """
        items = list(items)
        if workers <= 1 or len(items) <= 1:
            return [fn(x) for x in items]
        with self._lock:
            if self._executor is None or self._executor_workers < workers:
                if self._executor is not None:
                    self._executor.shutdown(wait=True)
                self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nrf-http")
                self._executor_workers = workers
            executor = self._executor
        return list(executor.map(fn, items))

    # ------------------------------------------------------------ connections

    def _connection(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        """A kept-alive connection for this thread and ``url``'s host, and the request target."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise RemoteError(f"{url}: only http and https URLs are supported")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        key = (parts.scheme, parts.netloc)
        conn = pool.get(key)
        if conn is None:
            host = parts.hostname or ""
            loopback = host in ("localhost", "::1") or host.startswith("127.")
            proxy = None if loopback or urllib.request.proxy_bypass(host) else \
                urllib.request.getproxies().get(parts.scheme)
            if proxy:  # honour http(s)_proxy like urllib does
                p = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
                if parts.scheme == "https":  # CONNECT tunnel through the proxy
                    conn = http.client.HTTPSConnection(p.hostname, p.port or 80,
                                                       timeout=self.timeout, context=self._ssl)
                    conn.set_tunnel(parts.hostname, parts.port or 443)
                else:  # plain HTTP: the proxy gets the absolute URL
                    conn = http.client.HTTPConnection(p.hostname, p.port or 80, timeout=self.timeout)
                    target = url
            elif parts.scheme == "https":
                conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443,
                                                   timeout=self.timeout, context=self._ssl)
            else:
                conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=self.timeout)
            pool[key] = conn
            with self._lock:
                self._conns.append(conn)
        return conn, target

    def _drop(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        pool = getattr(self._local, "pool", {})
        conn = pool.pop((parts.scheme, parts.netloc), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Stop the worker threads and close every connection (they reopen on next use)."""
        with self._lock:
            executor, self._executor, self._executor_workers = self._executor, None, 0
            conns, self._conns = self._conns, []
        if executor is not None:
            executor.shutdown(wait=True)
        for conn in conns:
            conn.close()
        self._local.pool = {}

    def _request(self, method: str, url: str, headers: dict, what: str):
        """Send one request; return the response (status 200 or 206) with its body unread.

        Raises :class:`_Transient` for what may succeed on retry,
        :class:`RemoteNotFoundError` for 403/404, :class:`RemoteError` otherwise.
        """
        stale_retry = True
        for _ in range(6):  # redirects, and one retry of a stale kept-alive connection
            conn, target = self._connection(url)
            hdrs = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
            reused = conn.sock is not None
            try:
                conn.request(method, target, headers=hdrs)
                resp = conn.getresponse()
            except _TRANSIENT_EXC as err:
                self._drop(url)
                if reused and stale_retry:  # the server closed an idle connection
                    stale_retry = False
                    continue
                raise _Transient(f"{type(err).__name__}: {err}") from err
            self.traffic.add(requests=1)
            status = resp.status
            if status in (200, 206):
                return resp
            body = resp.read(4096) if method != "HEAD" else b""
            self._drop(url)  # the rest of an error body must not be read as the next response
            if status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                url = urllib.parse.urljoin(url, resp.getheader("Location"))
                continue
            if status in (403, 404):
                raise RemoteNotFoundError(
                    f"{what}: the server answered {status} {resp.reason} for {url} — the key does not "
                    f"exist in the bucket or is not public (S3 answers 403 to anonymous requests for "
                    f"missing keys); check the subject, session and key spelling"
                )
            if status in _TRANSIENT_STATUS:
                raise _Transient(f"{status} {resp.reason}")
            raise RemoteError(f"{what}: the server answered {status} {resp.reason} for {url}: "
                              f"{body[:200]!r}")
        raise RemoteError(f"{what}: too many redirects from {url}")

    def _retrying(self, fn, what: str):
        """Run ``fn(progress)`` until it returns, retrying transient failures with backoff.

        ``progress()`` called by ``fn`` resets the attempt count (a long
        download that keeps moving is not failed by occasional drops).
        """
        state = {"attempt": 0}

        def progress():
            state["attempt"] = 0

        while True:
            try:
                return fn(progress)
            except _Transient as err:
                state["attempt"] += 1
                if state["attempt"] > self.retries:
                    raise RemoteError(f"{what}: giving up after {self.retries} retries: {err}") from err
                delay = min(self.max_backoff, self.backoff * 2 ** (state["attempt"] - 1))
                log.warning("%s: %s; retry %d/%d in %.2g s", what, err, state["attempt"], self.retries, delay)
                time.sleep(delay)

    # ------------------------------------------------------------ requests

    def head(self, url: str, what: str | None = None) -> RemoteInfo:
        """Size and ETag of ``url`` (a 1-byte ranged GET when HEAD gives no length)."""
        what = what or url

        def attempt(progress):
            resp = self._request("HEAD", url, {}, what)
            resp.read()
            length = resp.getheader("Content-Length")
            etag = resp.getheader("ETag")
            if length is not None:
                return RemoteInfo(url, int(length), etag)
            resp = self._request("GET", url, {"Range": "bytes=0-0"}, what)
            resp.read()
            if resp.status == 206:
                total = _content_range(resp.getheader("Content-Range"))[2]
                if total is not None:
                    return RemoteInfo(url, total, etag or resp.getheader("ETag"))
            raise RemoteError(f"{what}: the server gives no size for {url}")

        return self._retrying(attempt, what)

    def _read_body(self, resp, sink, expected: int, url: str, on_bytes=None) -> None:
        """Copy exactly ``expected`` body bytes to ``sink``; a short body is transient."""
        got = 0
        try:
            while got < expected:
                block = resp.read(min(_CHUNK, expected - got))
                if not block:
                    break
                sink(block)
                got += len(block)
                self.traffic.add(nbytes=len(block))
                if on_bytes is not None:
                    on_bytes(len(block))
        except _TRANSIENT_EXC as err:
            self._drop(url)
            raise _Transient(f"connection lost after {got} of {expected} bytes ({type(err).__name__})") from err
        if got < expected:
            self._drop(url)
            raise _Transient(f"connection closed after {got} of {expected} bytes")

    def get_range(self, url: str, start: int, stop: int, what: str | None = None) -> bytes:
        """Bytes ``[start, stop)`` of ``url``; a dropped transfer resumes where it stopped."""
        what = what or url
        if stop <= start:
            return b""
        buf = bytearray()

        def attempt(progress):
            pos = start + len(buf)
            resp = self._request("GET", url, {"Range": f"bytes={pos}-{stop - 1}"}, what)
            if resp.status == 206:
                a, b, _ = _content_range(resp.getheader("Content-Range"))
                if a != pos or b != stop - 1:
                    resp.close()
                    self._drop(url)
                    raise RemoteError(f"{what}: asked bytes {pos}-{stop - 1}, the server sent {a}-{b}")
                skip = 0
            else:  # 200: the server ignored Range; skip to pos
                skip = pos
            if skip:
                self._read_body(resp, lambda b: None, skip, url)
            self._read_body(resp, buf.extend, stop - pos, url, on_bytes=lambda n: progress())
            if resp.status == 200:  # do not reuse a connection with an unread body
                resp.close()
                self._drop(url)
            return bytes(buf)

        return self._retrying(attempt, f"{what} [{start}, {stop})")


# ---------------------------------------------------------------- integrity


def file_md5(path, block: int = 1 << 22) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def check_file(path, name: str | None = None) -> None:
    """Raise :class:`IntegrityError` if ``path`` is not a readable file of its kind.

    The kind comes from ``name`` (default: the path's own name): ``.gz`` is
    decompressed to the end (gzip's CRC-32 and length check), ``.hdf5``/``.h5``
    opened with h5py and every object's header visited, ``.mat`` opened with
    scipy (or h5py for v7.3). Other kinds are not checked here.
    """
    path = Path(path)
    name = name or path.name
    try:
        if name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                while f.read(1 << 22):
                    pass
        elif name.endswith((".hdf5", ".h5")):
            import h5py

            with h5py.File(path, "r") as f:
                f.visititems(lambda _n, obj: getattr(obj, "shape", None))
        elif name.endswith(".mat"):
            import scipy.io

            try:
                scipy.io.whosmat(path)
            except NotImplementedError:  # v7.3 is HDF5
                import h5py

                with h5py.File(path, "r") as f:
                    f.visititems(lambda _n, obj: getattr(obj, "shape", None))
    except Exception as err:  # every reader has its own error kinds
        raise IntegrityError(f"{name}: the file at {path} is corrupt ({type(err).__name__}: {err})") from err


def verify(path, info: RemoteInfo, name: str, *, check_md5: bool = True) -> None:
    """Size, MD5 (when the ETag is one) and format checks of a local copy of ``info``."""
    size = os.path.getsize(path)
    if size != info.size:
        raise IntegrityError(f"{name}: {path} has {size:,} bytes, the server has {info.size:,}")
    if check_md5 and info.md5 is not None:
        got = file_md5(path)
        if got != info.md5:
            raise IntegrityError(f"{name}: {path} has MD5 {got}, the server's ETag says {info.md5}")
    check_file(path, name)


# ---------------------------------------------------------------- whole files


@dataclass
class DownloadResult:
    path: Path
    size: int
    requests: int
    bytes: int  # body bytes received this call
    status: str  # "downloaded", "resumed" or "present"


def download(url: str, dest, *, client: HttpClient | None = None, name: str | None = None,
             attempts: int = 3, check_md5: bool = True) -> DownloadResult:
    """Download ``url`` to ``dest`` atomically, resuming a ``.part`` left by an earlier try.

    An existing ``dest`` that matches the server (size, MD5 when the ETag is
    one, format check) is kept; one that does not is fetched again. A download
    that fails verification is discarded and fetched again, up to ``attempts``
    times, then :class:`IntegrityError`. ``dest`` never holds a partial file.
    """
    client = client or HttpClient()
    dest = Path(dest)
    name = name or dest.name
    part = dest.with_name(dest.name + PART_SUFFIX)
    before = client.traffic.snapshot()
    info = client.head(url, name)

    def result(status):
        now = client.traffic.snapshot()
        return DownloadResult(dest, info.size, now["requests"] - before["requests"],
                              now["bytes"] - before["bytes"], status)

    if dest.exists():
        try:
            verify(dest, info, name, check_md5=check_md5)
            return result("present")
        except IntegrityError as err:
            log.warning("%s; fetching it again", err)
            dest.unlink()

    dest.parent.mkdir(parents=True, exist_ok=True)
    status = "resumed" if part.exists() and part.stat().st_size > 0 else "downloaded"
    for attempt in range(1, attempts + 1):
        _fill_part(client, url, part, info, name)
        try:
            verify(part, info, name, check_md5=check_md5)
        except IntegrityError as err:
            part.unlink(missing_ok=True)
            if attempt == attempts:
                raise IntegrityError(f"{err} (after {attempts} downloads)") from err
            log.warning("%s; downloading it again (%d/%d)", err, attempt + 1, attempts)
            continue
        os.replace(part, dest)
        return result(status)
    raise AssertionError("unreachable")


def _fill_part(client: HttpClient, url: str, part: Path, info: RemoteInfo, name: str) -> None:
    """Append to ``part`` until it holds ``info.size`` bytes (resuming across drops)."""

    def attempt(progress):
        have = part.stat().st_size if part.exists() else 0
        if have > info.size:  # not ours: start over
            part.unlink()
            have = 0
        if have == info.size:
            return
        headers = {}
        if have:
            headers["Range"] = f"bytes={have}-"
            if info.etag:
                headers["If-Range"] = info.etag
        resp = client._request("GET", url, headers, name)
        if resp.status == 206:
            a, _b, total = _content_range(resp.getheader("Content-Range"))
            if a != have:
                resp.close()
                client._drop(url)
                raise _Transient(f"resumed at {have} but the server sent from {a}")
            if total is not None and total != info.size:
                resp.close()
                client._drop(url)
                raise RemoteError(f"{name}: the object changed size on the server "
                                  f"({info.size:,} -> {total:,}); run again")
            mode = "ab"
        else:  # 200: whole object (no Range, or the ETag changed under If-Range)
            length = resp.getheader("Content-Length")
            if length is not None and int(length) != info.size:
                resp.close()
                client._drop(url)
                raise RemoteError(f"{name}: the server sent {int(length):,} bytes, HEAD said {info.size:,}")
            have, mode = 0, "wb"
        with open(part, mode) as f:
            try:
                client._read_body(resp, f.write, info.size - have, url, on_bytes=lambda n: progress())
            finally:
                f.flush()
                os.fsync(f.fileno())

    client._retrying(attempt, name)


# ---------------------------------------------------------------- ranged reads


def merge_ranges(starts, stops, *, max_gap: int = 0, max_requests: int | None = None):
    """Merge byte ranges whose gap is at most ``max_gap`` bytes.

    If ``max_requests`` is given, also close the smallest remaining gaps until
    at most that many ranges remain (the fewest extra bytes for that many
    requests). Overlapping and touching ranges always merge.

    Parameters
    ----------
    starts, stops : (n,) int, half-open ranges in any order

    Returns
    -------
    starts, stops : (m,) int64 sorted, disjoint
    """
    import numpy as np

    starts = np.asarray(starts, dtype=np.int64)
    stops = np.asarray(stops, dtype=np.int64)
    if starts.size == 0:
        return starts, stops
    order = np.argsort(starts, kind="stable")
    starts, stops = starts[order], stops[order]
    reach = np.maximum.accumulate(stops)
    gaps = starts[1:] - reach[:-1]  # > 0 where a gap separates range i from i+1
    split = gaps > max_gap
    if max_requests is not None and split.sum() + 1 > max_requests:
        keep = max(int(max_requests) - 1, 0)
        cand = np.flatnonzero(split)
        if keep == 0:
            split[:] = False
        else:  # keep only the `keep` largest gaps as splits
            largest = cand[np.argsort(gaps[cand], kind="stable")[-keep:]]
            split[:] = False
            split[largest] = True
    first = np.concatenate([[0], np.flatnonzero(split) + 1])
    last = np.concatenate([np.flatnonzero(split), [len(starts) - 1]])
    return starts[first], reach[last]


class RangeReader(io.RawIOBase):
    """A read-only file over HTTP: reads are ranged GETs, cached as byte extents.

    ``h5py.File(RangeReader(url), "r")`` opens a remote HDF5 file and fetches
    only what the library reads. A read that misses the cache fetches the
    missing bytes rounded out to ``block_size`` (read-ahead for the small
    metadata reads of HDF5); :meth:`read_ranges` fetches many ranges in parallel.

    Parameters
    ----------
    url : the object
    client : the :class:`HttpClient` (its ``traffic`` counts this reader's requests)
    size : the object's size, or None to ask the server
    block_size : read-ahead granularity of cache misses, bytes
    max_cache_bytes : oldest extents are dropped beyond this
    whole_below : a file at most this big is fetched whole on the first read
        (one request instead of several)
    on_read : optional ``callback(offset, data)`` after every read
    """

    def __init__(self, url: str, *, client: HttpClient | None = None, size: int | None = None,
                 block_size: int = 64 << 10, max_cache_bytes: int = 1 << 30, whole_below: int = 4 << 20,
                 on_read=None, name: str | None = None):
        super().__init__()
        self.url = url
        self.name_ = name or url
        self.client = client or HttpClient()
        self.size = int(size) if size is not None else self.client.head(url, self.name_).size
        self.block_size = int(block_size)
        self.max_cache_bytes = int(max_cache_bytes)
        self.whole_below = int(whole_below)
        self.on_read = on_read
        self._pos = 0
        self._lock = threading.RLock()
        self._starts: list[int] = []  # sorted starts of cached extents
        self._extents: OrderedDict[int, bytes] = OrderedDict()  # start -> data, insertion order
        self._cached = 0

    # ------------------------------------------------------------ io.RawIOBase

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, b) -> int:
        view = memoryview(b).cast("B")
        n = max(0, min(len(view), self.size - self._pos))
        if n == 0:
            return 0
        data = self.pread(self._pos, self._pos + n)
        view[:n] = data
        if self.on_read is not None:
            self.on_read(self._pos, data)
        self._pos += n
        return n

    # ------------------------------------------------------------ cache

    def _pieces(self, start: int, stop: int):
        """Cached pieces and missing gaps covering [start, stop): list of (a, b, data|None)."""
        out = []
        pos = start
        i = bisect.bisect_right(self._starts, start) - 1
        if i < 0:
            i = 0
        while pos < stop:
            if i < len(self._starts):
                s = self._starts[i]
                data = self._extents[s]
                e = s + len(data)
                if e <= pos:
                    i += 1
                    continue
                if s <= pos:
                    b = min(stop, e)
                    out.append((pos, b, data[pos - s : b - s]))
                    pos = b
                    i += 1
                    continue
                b = min(stop, s)
                out.append((pos, b, None))
                pos = b
            else:
                out.append((pos, stop, None))
                pos = stop
        return out

    def _insert(self, start: int, data: bytes) -> None:
        """Cache ``data`` at ``start`` (only where nothing is cached yet)."""
        with self._lock:
            for a, b, have in self._pieces(start, start + len(data)):
                if have is None and b > a:
                    bisect.insort(self._starts, a)
                    self._extents[a] = data[a - start : b - start]
                    self._cached += b - a
            while self._cached > self.max_cache_bytes and len(self._extents) > 1:
                s, d = self._extents.popitem(last=False)
                self._starts.pop(bisect.bisect_left(self._starts, s))
                self._cached -= len(d)

    def discard(self, starts, stops) -> None:
        """Drop cached extents lying inside any of the (sorted, disjoint) ranges."""
        with self._lock:
            for a, b in zip(starts, stops):
                i = bisect.bisect_left(self._starts, int(a))
                while i < len(self._starts) and self._starts[i] < b:
                    s = self._starts[i]
                    if s + len(self._extents[s]) <= b:
                        self._cached -= len(self._extents.pop(s))
                        self._starts.pop(i)
                    else:
                        i += 1

    def cached_bytes(self) -> int:
        return self._cached

    def missing(self, start: int, stop: int) -> list[tuple[int, int]]:
        """Sub-ranges of [start, stop) not in the cache."""
        with self._lock:
            return [(a, b) for a, b, d in self._pieces(start, stop) if d is None]

    def pread(self, start: int, stop: int) -> bytes:
        """Bytes [start, stop), fetching what is missing rounded out to ``block_size``."""
        stop = min(stop, self.size)
        with self._lock:
            gaps = self.missing(start, stop)
        if gaps:
            bs = self.block_size if self.size > self.whole_below else max(self.size, 1)
            for a, b in gaps:
                a0 = max(a // bs * bs, 0)
                b0 = min(-(-b // bs) * bs, self.size)
                for ma, mb in self.missing(a0, b0):
                    self._insert(ma, self.client.get_range(self.url, ma, mb, self.name_))
        with self._lock:
            pieces = self._pieces(start, stop)
        if any(d is None for _, _, d in pieces):  # evicted meanwhile: fetch directly
            return self.client.get_range(self.url, start, stop, self.name_)
        return b"".join(d for _, _, d in pieces)

    def prefetch(self, starts, stops, *, workers: int = 8) -> None:
        """Fetch the given (already merged) ranges into the cache, in parallel.

        A range the cache holds entirely costs nothing; any other costs one
        request for the whole range (not one per uncached piece).
        """
        jobs = [(int(a), min(int(b), self.size)) for a, b in zip(starts, stops)]
        jobs = [(a, b) for a, b in jobs if b > a and self.missing(a, b)]

        def get(job):
            a, b = job
            self._insert(a, self.client.get_range(self.url, a, b, self.name_))

        self.client.map(get, jobs, workers)

    def read_ranges(self, starts, stops, *, workers: int = 8) -> list[bytes]:
        """Bytes of each range (already merged): one request per range the cache lacks any of.

        The fetched bytes are returned, not cached (bulk data read once).
        """

        def get(job):
            a, b = job
            with self._lock:
                pieces = self._pieces(a, b)
            if all(d is not None for _, _, d in pieces):
                return b"".join(d for _, _, d in pieces)
            return self.client.get_range(self.url, a, b, self.name_)

        jobs = [(int(a), min(int(b), self.size)) for a, b in zip(starts, stops)]
        return self.client.map(get, jobs, workers)
