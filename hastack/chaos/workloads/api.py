"""API workload: HTTP GETs against an OpenStack API endpoint through the VIP.

A new connection per request (as a fresh client would open, and so every request crosses the
VIP and HAProxy's balancing), 2 s connect and 2 s read timeouts: a connect outlives one SYN
retransmission (the kernel's initial retransmission timeout is 1 s, RFC 6298), as any real
client's does, so a SYN lost to a VIP holder that just died shows as a slow request; with a
1 s connect timeout it would be an error whenever it was sent, by construction of the client
rather than of the cloud. ok is a 2xx/3xx answer
(Keystone's `/` says 300 Multiple Choices); a 5xx (HAProxy's 503 when no back end is up), a
refused or timed-out connection is a fail — a GET changes nothing, so nothing is
indeterminate. An https target is verified (certificate chain and name) against `--cacert`,
the cloud's CA, as a real client would; a TLS error is a fail too.

The answering back end is read from the JSON `hostname` (the stand-in API) or an
`X-Served-By` header (which HAProxy can add for the real Keystone). The service measured is
named in the timeline: from `--service`, else from the first answer ("standin-api" when the
stand-in says so, "keystone" for a Keystone version document).
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from hastack.chaos import ChaosError
from hastack.chaos.timeline import Outcome, TimelineWriter, short_error
from hastack.chaos.workloads import Workload, base_parser, setup_logging, stop_on_signals

NAME = "api"
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 2.0


class ApiWorkload(Workload):
    name = NAME

    def __init__(self, writer: TimelineWriter, url: str, service: str | None = None,
                 run_id: str | None = None, cacert: str | None = None):
        super().__init__(writer, run_id)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ChaosError(f"api: {url!r} is not an http(s) URL")
        self.url = url
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.service = service
        self._announced = service is not None
        self.cacert = cacert
        self.tls: ssl.SSLContext | None = None
        if self.https:
            try:
                self.tls = ssl.create_default_context(cafile=cacert)
            except (OSError, ssl.SSLError) as exc:
                raise ChaosError(f"api: cannot load the CA {cacert}: {exc}") from None

    def describe(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"target": self.url, "connect_timeout_s": CONNECT_TIMEOUT_S,
                                  "read_timeout_s": READ_TIMEOUT_S}
        if self.service:
            detail["service"] = self.service
        if self.cacert:
            detail["cacert"] = self.cacert
        return detail

    def step(self, seq: int) -> None:
        t0 = self.writer.now()
        outcome, error, target, status = self.get()
        self.writer.request(NAME, "get", outcome, t0, self.writer.now() - t0, error, target,
                            result=status)

    def get(self) -> tuple[Outcome, str, str | None, str | None]:
        """(outcome, error, answering back end, HTTP status)."""
        conn: http.client.HTTPConnection
        if self.tls is not None:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=CONNECT_TIMEOUT_S,
                                               context=self.tls)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=CONNECT_TIMEOUT_S)
        try:
            conn.connect()
            if conn.sock is not None:
                conn.sock.settimeout(READ_TIMEOUT_S)
            conn.request("GET", self.path, headers={"Accept": "application/json",
                                                    "Connection": "close"})
            response = conn.getresponse()
            body = response.read(65536)
            status = response.status
            doc = _json(body)
            target = response.getheader("X-Served-By") or _str(doc.get("hostname"))
            if not 200 <= status < 400:
                # A 4xx means our request is wrong (a setup error), a 5xx that no back end
                # answered; either way a failure the run must show.
                return "fail", f"http {status}", target, str(status)
            self._announce(doc)
            return "ok", "", target, str(status)
        except (OSError, http.client.HTTPException) as exc:
            return "fail", short_error(exc, 60), None, None
        finally:
            conn.close()

    def _announce(self, doc: dict[str, Any]) -> None:
        if self._announced:
            return
        self._announced = True
        self.service = _str(doc.get("service")) or (
            "keystone" if "version" in doc or "versions" in doc else "unknown")
        self.writer.mark(NAME, "info", service=self.service)


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, "HTTP GETs through the VIP.")
    parser.add_argument("--target", required=True, help="URL, e.g. http://VIP:5000/v3")
    parser.add_argument("--service", default=None,
                        help="name of the measured service (default: from the answer)")
    parser.add_argument("--cacert", default=None,
                        help="PEM CA certificate an https target is verified with "
                             "(default: the system's)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        with TimelineWriter(args.out) as writer:
            workload = ApiWorkload(writer, args.target, args.service, args.run_id,
                                   args.cacert)
            issued = workload.run(args.duration, args.rate, stop_on_signals())
            print(json.dumps({"run": workload.run_id, "issued": issued,
                              "service": workload.service}))
            return 0
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
