"""An active/active RPC service on oslo.messaging, one instance per controller.

    python -m hastack.agents.rpc_service --config-file /etc/hastack/rpc-service.conf

Every instance is an oslo.messaging RPC server on one topic (`[rpc_service] topic`) with its
node's name as server (`[DEFAULT] host`), exactly as nova-conductor or cinder-scheduler run:
a call on the topic reaches any one instance through RabbitMQ (no load balancer), a call
prepared with `server=<node>` reaches that node's instance. The endpoint answers with the
serving node's name, so a client sees which instance served it and that every one serves.

`call()` is the client side, for the lab's tests and the `rpc` chaos workload.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any

import oslo_messaging
from oslo_config import cfg

TOPIC = "hastack-rpc"
NAMESPACE = "hastack"
VERSION = "1.0"

OPTS = [cfg.StrOpt("host", default=socket.gethostname(), help="RPC server name")]
SERVICE_OPTS = [cfg.StrOpt("topic", default=TOPIC, help="topic every instance consumes")]


class EchoEndpoint:
    """The service's API: `echo(payload)` and `ping()`, both naming the serving node."""

    target = oslo_messaging.Target(namespace=NAMESPACE, version=VERSION)

    def __init__(self, host: str):
        self.host = host

    def echo(self, ctxt: dict[str, Any], payload: Any) -> dict[str, Any]:
        return {"host": self.host, "pid": os.getpid(), "payload": payload}

    def ping(self, ctxt: dict[str, Any]) -> str:
        return self.host


def load_config(argv: Sequence[str]) -> cfg.ConfigOpts:
    # The global CONF, as every OpenStack service uses: oslo.messaging registers some of its
    # options (tracing) only there, and a private ConfigOpts fails on the first call.
    conf = cfg.CONF
    conf.register_opts(OPTS)
    conf.register_opts(SERVICE_OPTS, group="rpc_service")
    conf(list(argv), project="hastack", prog="rpc-service", default_config_files=[])
    return conf


def serve(conf: cfg.ConfigOpts, stop: threading.Event) -> None:
    transport = oslo_messaging.get_rpc_transport(conf)
    target = oslo_messaging.Target(topic=conf.rpc_service.topic, server=conf.host)
    server = oslo_messaging.get_rpc_server(transport, target, [EchoEndpoint(conf.host)],
                                           executor="threading")
    server.start()
    print(f"rpc-service: {conf.host} serving topic {conf.rpc_service.topic}", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


class RpcClient:
    """A client of the service: one transport, calls with a timeout (oslo.messaging's own).

    `config_file` is an oslo.config file with the service's messaging options (a rendered
    rpc-service.conf): a client must declare the exchange exactly as the servers do (durable,
    quorum queues) or RabbitMQ refuses it. `transport_url` overrides the file's."""

    def __init__(self, config_file: str | None = None, transport_url: str | None = None,
                 topic: str = TOPIC, timeout_s: float = 5.0):
        if config_file is None and transport_url is None:
            raise ValueError("RpcClient needs a config file or a transport URL")
        # The global CONF, see load_config; parsed once per process.
        self.conf = cfg.CONF
        self.conf(["--config-file", config_file] if config_file else [], project="hastack",
                  prog="rpc-client", default_config_files=[])
        self.transport = oslo_messaging.get_rpc_transport(self.conf, url=transport_url)
        self.target = oslo_messaging.Target(topic=topic, namespace=NAMESPACE, version=VERSION)
        self.timeout_s = timeout_s
        self._client = oslo_messaging.get_rpc_client(self.transport, self.target,
                                                     timeout=timeout_s)

    def echo(self, payload: Any, server: str | None = None,
             timeout_s: float | None = None) -> dict[str, Any]:
        client = self._client.prepare(server=server, timeout=timeout_s or self.timeout_s) \
            if server or timeout_s else self._client
        result: dict[str, Any] = client.call({}, "echo", payload=payload)
        return result

    def ping(self, server: str | None = None) -> str:
        client = self._client.prepare(server=server) if server else self._client
        return str(client.call({}, "ping"))

    def close(self) -> None:
        self.transport.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    conf = load_config(sys.argv[1:] if argv is None else argv)
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    serve(conf, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
