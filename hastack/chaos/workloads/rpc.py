"""RPC workload: oslo.messaging calls to nova-conductor, through RabbitMQ.

Every Nova service serves Nova's base RPC API beside its own (`nova.baserpc`: namespace
`baseapi`, exchange `nova`), whose `ping(arg)` answers `{"service": ..., "arg": arg}` from
inside the running service. A call on the `conductor` topic reaches any one nova-conductor
through RabbitMQ (no load balancer), a call prepared with `server=<node>` reaches that node's
(`[DEFAULT] host`, the node's name): what an active/active RPC service sees when a broker or
a node fails, measured on the real one.

The client reads a rendered nova.conf: it must declare the exchange and queues exactly as
the services do (durable, quorum queues) or RabbitMQ refuses them, and it fails over over
the same `transport_url`.

One transport, one `ping` per slot, each call retried up to `--retries` times as a service
would retry an idempotent call. Every attempt is one request in the timeline (op `call`, or
`retry` for a second and later attempt; `id` is the call's sequence number; `target` the
server asked for, when one was). Outcomes:

- ok:            the reply came back, carrying the call's own argument.
- fail:          the call was never sent (no broker reachable: MessageDeliveryFailure), the
                 service replied with an error (RemoteError), or with someone else's argument.
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
# Nova's base RPC API (nova/baserpc.py; the exchange is Nova's control_exchange).
EXCHANGE = "nova"
TOPIC = "conductor"
NAMESPACE = "baseapi"
VERSION = "1.0"


class NovaRpcClient:
    """`ping` on a Nova service's topic: one transport, calls with a timeout (oslo.messaging's
    own). `config_file` is a rendered nova.conf; `transport_url` overrides its own."""

    def __init__(self, config_file: str | None = None, transport_url: str | None = None,
                 topic: str = TOPIC, timeout_s: float = 5.0):
        import oslo_messaging
        from oslo_config import cfg
        if config_file is None and transport_url is None:
            raise ValueError("NovaRpcClient needs a config file or a transport URL")
        # The global CONF, as the services use: oslo.messaging registers some of its options
        # (tracing) only there. Options of nova.conf it does not register are not read.
        self.conf = cfg.CONF
        self.conf(["--config-file", config_file] if config_file else [], project="nova",
                  prog="hastack-rpc-client", default_config_files=[])
        self.transport = oslo_messaging.get_rpc_transport(self.conf, url=transport_url)
        target = oslo_messaging.Target(exchange=EXCHANGE, topic=topic, namespace=NAMESPACE,
                                       version=VERSION)
        self._client = oslo_messaging.get_rpc_client(self.transport, target,
                                                     timeout=timeout_s)

    def ping(self, arg: Any, server: str | None = None,
             timeout_s: float | None = None) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if server:
            options["server"] = server
        if timeout_s:
            options["timeout"] = timeout_s
        client = self._client.prepare(**options) if options else self._client
        # An empty request context: Nova's serializer makes an anonymous one of it, and
        # `ping` checks no policy.
        result: dict[str, Any] = client.call({}, "ping", arg=arg)
        return result

    def close(self) -> None:
        self.transport.cleanup()


class RpcWorkload(Workload):
    name = NAME

    def __init__(self, writer: TimelineWriter, config_file: str | None = None,
                 transport_url: str | None = None, topic: str = TOPIC,
                 timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
                 server: str | None = None, run_id: str | None = None):
        super().__init__(writer, run_id)
        if config_file is None and transport_url is None:
            raise ChaosError("rpc: give --config-file (a rendered nova.conf) "
                             "or --transport-url")
        if timeout_s <= 0 or retries < 0:
            raise ChaosError("rpc: timeout must be > 0 and retries >= 0")
        self.config_file, self.transport_url = config_file, transport_url
        self.topic, self.timeout_s, self.retries, self.server = topic, timeout_s, retries, server
        self._client: NovaRpcClient | None = None
        self.calls = self.errors = self.retried = self.lost = 0

    def describe(self) -> dict[str, Any]:
        return {"service": f"nova-{self.topic}", "topic": self.topic, "server": self.server,
                "timeout_s": self.timeout_s, "retries": self.retries}

    def setup(self) -> None:
        try:
            import oslo_messaging  # noqa: F401
        except ImportError as exc:
            raise ChaosError(f"rpc: oslo.messaging is not installed: {exc}") from exc
        try:
            self._client = NovaRpcClient(self.config_file, self.transport_url, self.topic,
                                         self.timeout_s)
        except Exception as exc:  # bad URL, unreadable file: nothing will ever work
            raise ChaosError(f"rpc: cannot create the RPC client: {exc}") from exc

    def step(self, seq: int) -> None:
        self.calls += 1
        sent = False
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
            t0 = self.writer.now()
            outcome, error = self.call(seq)
            self.writer.request(NAME, "retry" if attempt else "call", outcome, t0,
                                self.writer.now() - t0, error, self.server, id=seq)
            if outcome == "ok":
                return
            self.errors += 1
            sent = sent or outcome == "indeterminate"
        if sent:
            self.lost += 1

    def call(self, seq: int) -> tuple[Outcome, str]:
        import oslo_messaging
        assert self._client is not None, "setup() first"
        arg = {"run": self.run_id, "seq": seq}
        try:
            reply = self._client.ping(arg, server=self.server)
        except oslo_messaging.MessagingTimeout as exc:
            return "indeterminate", short_error(exc, 60)
        except (oslo_messaging.MessageDeliveryFailure, oslo_messaging.RemoteError) as exc:
            return "fail", short_error(exc, 60)
        if not isinstance(reply, dict) or reply.get("arg") != arg:
            return "fail", f"ping: wrong reply {str(reply)[:40]}"
        return "ok", ""

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
    parser = base_parser(NAME, "oslo.messaging pings of a Nova service (nova-conductor).")
    parser.add_argument("--config-file", default=None,
                        help="a rendered nova.conf (its messaging options)")
    parser.add_argument("--transport-url", default=None, help="overrides the file's")
    parser.add_argument("--topic", default=TOPIC,
                        help="the Nova service's topic (conductor, scheduler, compute)")
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
