"""HTTP for NSD's public bucket: verified whole-file downloads and remote HDF5 files.

``requests`` does the HTTP of whole files, ``fsspec``'s HTTP file (on aiohttp)
the ranged reads, ``tenacity`` the retries with exponential backoff on
transient failures (drops, timeouts, 408/429/5xx). Ours is thin:
:func:`download` resumes into ``<name>.part`` (``Range`` + ``If-Range``), checks
size, MD5 (a plain S3 ETag) and format (:func:`check_file`), renames atomically
and refetches a corrupt file; :func:`open_remote` opens ``h5py.File`` over a
block cache retried per block; 403/404 raise :class:`RemoteNotFoundError`
naming the key (S3 answers 403 for a missing key); :class:`Traffic` counts.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import gzip
import logging
import os
import threading
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import fsspec
import h5py
import requests
import scipy.io
import tenacity

from nrf.checks import file_digest

log = logging.getLogger(__name__)
logging.getLogger("fsspec.caching").setLevel(logging.WARNING)  # not a line per block fetched

USER_AGENT = "nrf-replication/0.1 (+https://github.com/haomiao8/NRF replication)"
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class RemoteError(RuntimeError):
    """A request failed for good (after retries, or with a non-transient status)."""


class RemoteNotFoundError(RemoteError):
    """The server answered 403 or 404: the key does not exist (or is not public)."""


class IntegrityError(RemoteError):
    """A downloaded file failed its size, checksum or format check."""


class ShortBody(RemoteError):
    """A response ended before all its bytes arrived (retried)."""


def is_transient(err: BaseException) -> bool:
    """Whether a failure may succeed on retry (a drop, a timeout, a 408/429/5xx)."""
    if isinstance(err, requests.HTTPError) and err.response is not None:
        return err.response.status_code in TRANSIENT_STATUS
    if isinstance(err, aiohttp.ClientResponseError):
        return err.status in TRANSIENT_STATUS
    return isinstance(err, (ShortBody, requests.ConnectionError, requests.Timeout,
                            requests.exceptions.ChunkedEncodingError, aiohttp.ClientPayloadError,
                            aiohttp.ClientConnectionError, asyncio.TimeoutError))


class Traffic:
    """Requests made and body bytes received (thread-safe counters)."""

    def __init__(self):
        self.requests = self.bytes = 0
        self._lock = threading.Lock()

    def add(self, requests: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.bytes += nbytes

    def snapshot(self) -> dict:
        with self._lock:
            return {"requests": self.requests, "bytes": self.bytes}

    def since(self, before: dict) -> dict:
        """Requests and bytes added since ``before`` (a :meth:`snapshot`)."""
        now = self.snapshot()
        return {k: now[k] - before[k] for k in now}


@dataclass(frozen=True)
class RemoteInfo:
    """What the server says about an object."""

    url: str
    size: int
    etag: str | None

    @property
    def md5(self) -> str | None:
        """The MD5 hex digest when the ETag is a plain S3 one (not multipart, not weak)."""
        tag = (self.etag or "").strip('"')
        return tag.lower() if len(tag) == 32 and all(c in "0123456789abcdefABCDEF" for c in tag) else None


def key_url(base_url: str, key: str) -> str:
    """``https://bucket/<key>`` with the key's path segments quoted."""
    return base_url.rstrip("/") + "/" + urllib.parse.quote(key.lstrip("/"))


class HttpClient:
    """A requests session with retries, backoff and traffic counts.

    Parameters
    ----------
    retries : attempts after the first on a transient failure
    backoff : seconds before the first retry, doubled each time up to ``max_backoff``
    timeout : seconds to connect and between bytes received
    traffic : counters to add to (a new one if None)
    """

    def __init__(self, *, retries: int = 6, backoff: float = 0.5, max_backoff: float = 30.0,
                 timeout: float = 60.0, traffic: Traffic | None = None):
        self.retries, self.backoff, self.max_backoff = int(retries), float(backoff), float(max_backoff)
        self.timeout = float(timeout)
        self.traffic = traffic if traffic is not None else Traffic()
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})

    def close(self) -> None:
        self.session.close()

    def call(self, fn, what: str):
        """``fn()``, retried with exponential backoff while it fails transiently."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retries + 1),
            wait=tenacity.wait_exponential(multiplier=self.backoff, max=self.max_backoff),
            retry=tenacity.retry_if_exception(is_transient),
            before_sleep=lambda s: log.warning("%s: %r; retry %d/%d", what, s.outcome.exception(),
                                               s.attempt_number, self.retries),
        )
        try:
            return retrying(fn)
        except tenacity.RetryError as err:
            cause = err.last_attempt.exception()
            raise RemoteError(f"{what}: giving up after {self.retries} retries: {cause!r}") from cause

    def request(self, method: str, url: str, what: str, headers: dict | None = None) -> requests.Response:
        """One request (body streamed, unread); 403/404 name ``what``, other errors raise."""
        resp = self.session.request(method, url, headers=headers, stream=True, timeout=self.timeout)
        self.traffic.add(requests=1)
        if resp.status_code in (403, 404):
            resp.close()
            raise RemoteNotFoundError(
                f"{what}: the server answered {resp.status_code} {resp.reason} for {url} — the key does "
                f"not exist in the bucket or is not public (S3 answers 403 to anonymous requests for "
                f"missing keys); check the subject, session and key spelling")
        if resp.status_code >= 400:
            resp.close()
        resp.raise_for_status()
        return resp

    def head(self, url: str, what: str | None = None) -> RemoteInfo:
        """Size and ETag of ``url``."""
        def attempt():
            with self.request("HEAD", url, what or url) as resp:
                if "Content-Length" not in resp.headers:
                    raise RemoteError(f"{what or url}: the server gives no size for {url}")
                return RemoteInfo(url, int(resp.headers["Content-Length"]), resp.headers.get("ETag"))

        return self.call(attempt, what or url)


# ---------------------------------------------------------------- integrity


def file_md5(path) -> str:
    """The md5 of a file's bytes (hex): what S3 reports as the ETag of a single-part upload."""
    return file_digest(path, "md5")


def check_file(path, name: str | None = None) -> None:
    """Raise :class:`IntegrityError` if ``path`` is not a readable file of its kind.

    The kind comes from ``name`` (default: the path's own name): ``.gz`` is
    decompressed to the end (gzip's CRC-32 and length check), ``.hdf5``/``.h5``
    and v7.3 ``.mat`` opened with h5py and every object's header visited,
    older ``.mat`` listed by scipy. Other kinds are not checked here.
    """
    path = Path(path)
    name = name or path.name
    try:
        if name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                while f.read(1 << 22):
                    pass
        elif name.endswith((".hdf5", ".h5", ".mat")):
            if name.endswith(".mat") and not h5py.is_hdf5(path):
                scipy.io.whosmat(path)
                return
            with h5py.File(path, "r") as f:
                f.visititems(lambda _n, obj: getattr(obj, "shape", None))
    except Exception as err:  # every reader has its own error kinds
        raise IntegrityError(f"{name}: the file at {path} is corrupt ({type(err).__name__}: {err})") from err


def verify(path, info: RemoteInfo, name: str, *, check_md5: bool = True) -> None:
    """Size, MD5 (when the ETag is one) and format checks of a local copy of ``info``."""
    size = os.path.getsize(path)
    if size != info.size:
        raise IntegrityError(f"{name}: {path} has {size:,} bytes, the server has {info.size:,}")
    if check_md5 and info.md5 is not None and (got := file_md5(path)) != info.md5:
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
    dest, name = Path(dest), name or Path(dest).name
    part = dest.with_name(dest.name + ".part")
    before = client.traffic.snapshot()
    info = client.head(url, name)

    if dest.exists():
        try:
            verify(dest, info, name, check_md5=check_md5)
            return DownloadResult(dest, info.size, status="present", **client.traffic.since(before))
        except IntegrityError as err:
            log.warning("%s; fetching it again", err)
            dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    status = "resumed" if part.exists() and part.stat().st_size > 0 else "downloaded"
    for attempt in range(1, attempts + 1):
        client.call(functools.partial(_append_to_part, client, info, part, name), name)
        try:
            verify(part, info, name, check_md5=check_md5)
        except IntegrityError as err:
            part.unlink(missing_ok=True)
            if attempt == attempts:
                raise IntegrityError(f"{err} (after {attempts} downloads)") from err
            log.warning("%s; downloading it again (%d/%d)", err, attempt + 1, attempts)
            continue
        os.replace(part, dest)
        return DownloadResult(dest, info.size, status=status, **client.traffic.since(before))
    raise AssertionError("unreachable")


def _append_to_part(client: HttpClient, info: RemoteInfo, part: Path, name: str) -> None:
    """One GET of what ``part`` lacks (all of it when the server ignores the Range)."""
    have = part.stat().st_size if part.exists() else 0
    if have > info.size:  # not ours: start over
        part.unlink()
        have = 0
    if have == info.size:
        return
    headers = {"Range": f"bytes={have}-", **({"If-Range": info.etag} if info.etag else {})} if have else {}
    with client.request("GET", info.url, name, headers) as resp:
        if resp.status_code == 206:
            span, _, total = resp.headers.get("Content-Range", "").removeprefix("bytes ").partition("/")
            if not span.startswith(f"{have}-") or total not in ("*", str(info.size)):
                raise RemoteError(f"{name}: asked bytes {have}- of {info.size:,}, the server sent "
                                  f"{resp.headers.get('Content-Range')!r}; the object may have changed, run again")
        else:  # 200: the whole object (no Range sent, or the ETag changed under If-Range)
            have = 0
        with open(part, "ab" if have else "wb") as f:
            try:  # raw bytes as stored, even if the object has a Content-Encoding
                for block in resp.raw.stream(1 << 20, decode_content=False):
                    f.write(block)
                    client.traffic.add(nbytes=len(block))
            except Exception as err:  # urllib3's errors for a cut connection
                raise ShortBody(f"{name}: connection lost ({type(err).__name__}: {err})") from err
            finally:
                f.flush()
                os.fsync(f.fileno())
    if (got := part.stat().st_size) < info.size:
        raise ShortBody(f"{name}: the connection closed after {got:,} of {info.size:,} bytes")


# ---------------------------------------------------------------- remote HDF5


@contextmanager
def open_remote(url: str, *, client: HttpClient | None = None, name: str | None = None,
                block_size: int = 1 << 20, cache_bytes: int = 256 << 20, cache_type: str = "blockcache"):
    """``h5py.File`` of a remote HDF5 file read by HTTP range requests; yields (file, size).

    Reads go through an fsspec HTTP file: ``cache_type="blockcache"`` fetches
    aligned ``block_size`` blocks and keeps the ``cache_bytes`` most recently
    used (many scattered small reads, as for chunked betas); ``"bytes"`` reads
    each miss plus ``block_size`` read-ahead (large rows read once, as for
    stimuli). Each fetch is retried on transient errors; requests and bytes
    are counted in ``client.traffic``.
    """
    client = client or HttpClient()
    what = name or url
    info = client.head(url, what)
    trace = aiohttp.TraceConfig()

    async def on_request_end(_session, _ctx, _params):
        client.traffic.add(requests=1)

    async def on_chunk(_session, _ctx, params):
        client.traffic.add(nbytes=len(params.chunk))

    trace.on_request_end.append(on_request_end)
    trace.on_response_chunk_received.append(on_chunk)
    timeout = aiohttp.ClientTimeout(sock_connect=client.timeout, sock_read=client.timeout)
    fs = fsspec.filesystem("http", skip_instance_cache=True, headers={"User-Agent": USER_AGENT},
                           client_kwargs={"trace_configs": [trace], "timeout": timeout})
    options = {"maxblocks": max(1, int(cache_bytes) // int(block_size))} if cache_type == "blockcache" else {}
    # h5py holds its global lock while it waits for fsspec's IO thread to
    # fetch a block; a garbage collection in that thread that frees an h5py
    # object needs the same lock and deadlocks. Collect now, and pause the
    # cyclic collector while the remote file is open (reference counting
    # still frees everything else).
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with fs.open(url, "rb", size=info.size, block_size=int(block_size), cache_type=cache_type,
                     cache_options=options) as raw:
            fetch = raw.cache.fetcher
            raw.cache.fetcher = lambda start, stop: client.call(functools.partial(fetch, start, stop),
                                                                f"{what} [{start}, {stop})")
            with h5py.File(raw, "r") as f:
                yield f, info.size
    finally:
        if was_enabled:
            gc.enable()
