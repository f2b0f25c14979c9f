"""A real HTTP server on 127.0.0.1 for the download tests: a folder tree served like S3.

``http.server.SimpleHTTPRequestHandler`` ignores ``Range``; this handler
serves GET and HEAD with single byte ranges (``bytes=a-b``, ``a-``, ``-n``),
``If-Range`` on the ETag, keep-alive, and an S3-like ETag (the quoted MD5 of
the file; ``etags=False`` sends none). Missing keys answer 403, as S3 does
for anonymous clients (404 with ``missing_status=404``). Faults can be injected per key to test the client:

- ``drop[key] = (n_bytes, times)``: the next ``times`` GETs send ``n_bytes``
  of the body, then the connection is cut;
- ``corrupt[key] = times``: the next ``times`` GETs flip one byte of the body;
- ``fail[key] = (status, times)``: the next ``times`` requests answer ``status``.

``delay`` (seconds) is slept before every response, to emulate a remote
server's latency in benchmarks.

Usage::

    with RangeServer(root) as server:
        url = server.url + "/" + key
        ...
        server.requests  # [(method, key, range header), ...]

The server runs in a daemon thread; leaving the ``with`` block shuts it down
and joins the thread (bounded by ``timeout``).
"""

from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
import time
import urllib.parse
from pathlib import Path

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = 5  # an idle kept-alive connection frees its thread after this
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall between headers and body
    server_version = "RangeServer/1"

    def log_message(self, format, *args):  # quiet
        pass

    # ------------------------------------------------------------ helpers

    def _key(self) -> str:
        return urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")

    def _error(self, status: int) -> None:
        body = f"<Error><Code>{status}</Code></Error>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self, head: bool) -> None:
        srv: RangeServer = self.server.owner
        key = self._key()
        if srv.delay:
            time.sleep(srv.delay)
        srv._log(self.command, key, self.headers.get("Range"))
        fault = srv._take_fault("fail", key)
        if fault is not None:
            self._error(fault)
            return
        path = (srv.root / key).resolve()
        if srv.root not in path.parents or not path.is_file():
            self._error(srv.missing_status)
            return
        size = path.stat().st_size
        etag = srv.etag(path) if srv.etags else None
        start, stop, status = 0, size, 200
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and (if_range is None or (etag is not None and if_range == etag)):
            m = _RANGE.match(rng.strip())
            if not m or (m.group(1) == "" and m.group(2) == ""):
                self._error(416)
                return
            a, b = m.group(1), m.group(2)
            if a == "":  # suffix: last n bytes
                start, stop = max(0, size - int(b)), size
            else:
                start = int(a)
                stop = size if b == "" else min(size, int(b) + 1)
            if start >= size or stop <= start:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        if etag is not None:
            self.send_header("ETag", etag)
        self.send_header("Content-Length", str(stop - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.end_headers()
        if head:
            return
        drop = srv._take_fault("drop", key)
        corrupt = srv._take_fault("corrupt", key)
        limit = stop - start if drop is None else min(stop - start, drop)
        sent = 0
        with open(path, "rb") as f:
            f.seek(start)
            while sent < limit:
                block = f.read(min(1 << 20, limit - sent))
                if not block:
                    break
                if corrupt is not None and sent == 0:
                    block = bytes([block[0] ^ 0xFF]) + block[1:]
                # Counted before the write: a client that has its bytes must find them counted
                # (counting after let a test read the total before this thread had added it).
                srv._count(len(block))
                self.wfile.write(block)
                sent += len(block)
        if drop is not None and sent < stop - start:
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._serve(head=False)

    def do_HEAD(self):  # noqa: N802
        self._serve(head=True)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class RangeServer:
    """Serve ``root`` on 127.0.0.1 (an ephemeral port) with Range support.

    Attributes
    ----------
    url : ``http://127.0.0.1:<port>``
    requests : list of (method, key, Range header or None), in arrival order
    bytes_sent : body bytes sent
    drop, corrupt, fail : fault injection (see the module docstring)
    """

    def __init__(self, root, *, missing_status: int = 403, etags: bool = True, delay: float = 0.0,
                 timeout: float = 10.0):
        self.root = Path(root).resolve()
        self.delay = float(delay)
        self.etags = etags
        self.missing_status = missing_status
        self.timeout = timeout
        self.requests: list[tuple[str, str, str | None]] = []
        self.bytes_sent = 0
        self.drop: dict[str, tuple[int, int]] = {}
        self.corrupt: dict[str, int] = {}
        self.fail: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._etags: dict[tuple, str] = {}
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "RangeServer":
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="RangeServer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()  # returns once serve_forever has stopped
        self._httpd.server_close()
        self._thread.join(self.timeout)
        if self._thread.is_alive():
            raise RuntimeError("RangeServer thread did not stop")
        self._httpd = None

    def __enter__(self) -> "RangeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------ state

    def etag(self, path: Path) -> str:
        st = path.stat()
        ident = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            tag = self._etags.get(ident)
        if tag is None:
            h = hashlib.md5()
            with open(path, "rb") as f:
                while block := f.read(1 << 22):
                    h.update(block)
            tag = f'"{h.hexdigest()}"'
            with self._lock:
                self._etags[ident] = tag
        return tag

    def _log(self, method: str, key: str, rng: str | None) -> None:
        with self._lock:
            self.requests.append((method, key, rng))

    def _count(self, n: int) -> None:
        with self._lock:
            self.bytes_sent += n

    def _take_fault(self, kind: str, key: str):
        with self._lock:
            table = getattr(self, kind)
            if key not in table:
                return None
            value = table[key]
            if kind == "corrupt":
                value, times = True, value
            else:
                value, times = value
            if times <= 1:
                del table[key]
            else:
                table[key] = (value, times - 1) if kind != "corrupt" else times - 1
            return value

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.bytes_sent = 0

    def gets(self, key: str | None = None) -> int:
        """Number of GET requests (for ``key`` if given)."""
        with self._lock:
            return sum(1 for m, k, _ in self.requests if m == "GET" and (key is None or k == key))


def tree_size(root) -> int:
    """Total bytes of the files under ``root``."""
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())


__all__ = ["RangeServer", "tree_size"]
