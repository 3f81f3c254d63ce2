"""RPC workload: oslo.messaging calls to hastack's A/A RPC service, through RabbitMQ.

One transport (oslo.messaging's own failover over every broker of `transport_url`), one
`echo` call per slot, each call retried up to `--retries` times as a service would retry an
idempotent call. Every attempt is one request in the timeline (op `call`, or `retry` for a
second and later attempt; `id` is the call's sequence number; `target` the node that
answered). Outcomes:

- ok:            the reply came back.
- fail:          the call was never sent (no broker reachable: MessageDeliveryFailure) or the
                 service replied with an error (RemoteError): it was not executed, or it
                 said so.
- indeterminate: sent, no reply within the timeout (MessagingTimeout): the service may or may
                 not have executed it.

Summary (printed as JSON, also written as the end mark): calls, errors (attempts not ok),
retries, lost (calls sent at least once and never answered, even after retries).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from hastack.chaos import ChaosError
from hastack.chaos.timeline import Outcome, TimelineWriter, short_error
from hastack.chaos.workloads import Workload, base_parser, setup_logging, stop_on_signals

NAME = "rpc"
DEFAULT_TIMEOUT_S = 2.0
DEFAULT_RETRIES = 2


class RpcWorkload(Workload):
    name = NAME

    def __init__(self, writer: TimelineWriter, config_file: str | None = None,
                 transport_url: str | None = None, topic: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
                 server: str | None = None, run_id: str | None = None):
        super().__init__(writer, run_id)
        if config_file is None and transport_url is None:
            raise ChaosError("rpc: give --config-file (a rendered rpc-service.conf) "
                             "or --transport-url")
        if timeout_s <= 0 or retries < 0:
            raise ChaosError("rpc: timeout must be > 0 and retries >= 0")
        self.config_file, self.transport_url = config_file, transport_url
        self.topic, self.timeout_s, self.retries, self.server = topic, timeout_s, retries, server
        self._client: Any = None
        self.calls = self.errors = self.retried = self.lost = 0

    def describe(self) -> dict[str, Any]:
        from hastack.agents.rpc_service import TOPIC
        return {"service": "rpc-service", "topic": self.topic or TOPIC,
                "server": self.server, "timeout_s": self.timeout_s, "retries": self.retries}

    def setup(self) -> None:
        try:
            from hastack.agents.rpc_service import TOPIC, RpcClient
        except ImportError as exc:
            raise ChaosError(f"rpc: oslo.messaging is not installed: {exc}") from exc
        try:
            self._client = RpcClient(self.config_file, self.transport_url,
                                     self.topic or TOPIC, self.timeout_s)
        except Exception as exc:  # bad URL, unreadable file: nothing will ever work
            raise ChaosError(f"rpc: cannot create the RPC client: {exc}") from exc

    def step(self, seq: int) -> None:
        self.calls += 1
        sent = False
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
            t0 = self.writer.now()
            outcome, error, host = self.call(seq)
            self.writer.request(NAME, "retry" if attempt else "call", outcome, t0,
                                self.writer.now() - t0, error, host, id=seq)
            if outcome == "ok":
                return
            self.errors += 1
            sent = sent or outcome == "indeterminate"
        if sent:
            self.lost += 1

    def call(self, seq: int) -> tuple[Outcome, str, str | None]:
        import oslo_messaging
        try:
            reply = self._client.echo({"run": self.run_id, "seq": seq}, server=self.server)
        except oslo_messaging.MessagingTimeout as exc:
            return "indeterminate", short_error(exc, 60), None
        except oslo_messaging.MessageDeliveryFailure as exc:
            return "fail", short_error(exc, 60), None
        except oslo_messaging.RemoteError as exc:
            return "fail", short_error(exc, 60), None
        host = reply.get("host") if isinstance(reply, dict) else None
        return "ok", "", str(host) if host else None

    def summary(self) -> dict[str, Any]:
        return {"run": self.run_id, "calls": self.calls, "errors": self.errors,
                "retries": self.retried, "lost": self.lost}

    def teardown(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # teardown must not raise
                client.close()
        self.writer.mark(NAME, "info", **self.summary())


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, "oslo.messaging calls to hastack's RPC service.")
    parser.add_argument("--config-file", default=None,
                        help="oslo.config file with the messaging options (rpc-service.conf)")
    parser.add_argument("--transport-url", default=None, help="overrides the file's")
    parser.add_argument("--topic", default=None)
    parser.add_argument("--server", default=None, help="call one node's instance only")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        with TimelineWriter(args.out) as writer:
            workload = RpcWorkload(writer, args.config_file, args.transport_url, args.topic,
                                   args.timeout, args.retries, args.server, args.run_id)
            workload.run(args.duration, args.rate, stop_on_signals())
            print(json.dumps(workload.summary()))
            return 0
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
