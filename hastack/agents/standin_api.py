"""A stand-in for an OpenStack API (Keystone) until the lab runs the real one.

    python -m hastack.agents.standin_api --bind 198.18.0.11 --port 5000

A threaded HTTP server that answers GET / and /v3 with a small JSON naming the node that
answered (so the `api` workload can record which back end HAProxy chose), and /healthcheck
with 200 (as oslo.middleware's healthcheck does, for HAProxy's httpchk). Each node binds its
own address so HAProxy can bind the same port on the VIP. Standard library only: it runs
inside a lab node.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = "standin-api"


class StandinHandler(BaseHTTPRequestHandler):
    server_version = "hastack-standin/1"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802  (the http.server naming)
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        server: StandinServer = self.server  # type: ignore[assignment]
        if path in ("/", "/v3"):
            self._reply(200, {
                "service": SERVICE, "hostname": server.hostname, "path": path,
                # The shape of Keystone's version document, so clients parse either.
                "version": {"id": "v3.14", "status": "stable", "media-types": []},
            })
        elif path == "/healthcheck":
            self._reply(200, {"status": "OK", "hostname": server.hostname})
        else:
            self._reply(404, {"error": {"code": 404, "message": f"no such path {path}"}})

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def _reply(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Served-By", self.server.hostname)  # type: ignore[attr-defined]
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:  # type: ignore[attr-defined]
            super().log_message(format, *args)


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, bind: str, port: int, hostname: str | None = None,
                 verbose: bool = False):
        self.hostname = hostname or socket.gethostname()
        self.verbose = verbose
        super().__init__((bind, port), StandinHandler)


def serve(bind: str, port: int, hostname: str | None = None,
          verbose: bool = False) -> StandinServer:
    """Start serving in a background thread; call `.shutdown()` then `.server_close()`."""
    server = StandinServer(bind, port, hostname, verbose)
    threading.Thread(target=server.serve_forever, name="standin-api", daemon=True).start()
    return server


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hastack.agents.standin_api",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--hostname", default=None, help="name to report (default: uname)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    try:
        server = StandinServer(args.bind, args.port, args.hostname, args.verbose)
    except OSError as exc:
        print(f"error: cannot bind {args.bind}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever to return: run it off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"{SERVICE} on {args.bind}:{args.port} as {server.hostname}", flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
