"""A small HTTP file server on 127.0.0.1 for the download tests, with HTTP Range support.

``serve(files)`` starts it in a thread; the server records every request's path and Range
header, can ignore Range (``honour_range = False``) and can cut a transfer after
``cut_after`` bytes (the connection closes mid-body, as a dropped network does).
"""

from __future__ import annotations

import contextlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = files
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.bytes_sent = 0
        self.honour_range = True
        self.cut_after: int | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class _Handler(BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        range_header = self.headers.get("Range")
        self.server.requests.append((name, range_header))
        body = self.server.files.get(name)
        if body is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and self.server.honour_range:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if self.server.cut_after is not None:
            payload = payload[: self.server.cut_after]
        # Count before writing: the client may finish reading (and the test check the count)
        # before this thread runs another line after the write.
        self.server.bytes_sent += len(payload)
        self.wfile.write(payload)
        self.wfile.flush()
        if self.server.cut_after is not None:
            self.close_connection = True


@contextlib.contextmanager
def serve(files: dict[str, bytes]):
    """Run a :class:`FileServer` for the block; yields it."""
    server = FileServer(files)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
