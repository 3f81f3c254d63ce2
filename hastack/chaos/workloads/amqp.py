"""AMQP workload: numbered messages into a durable quorum queue, with publisher confirms.

The client knows every RabbitMQ node (as oslo.messaging's `transport_url` lists them). It
connects to the first that answers; when its connection is lost it starts the next attempt at
the node after the one that failed. Publish outcomes:

- ok:            the broker confirmed (basic.ack): it has taken responsibility.
- fail:          nacked, returned as unroutable, or the connection could not be opened or the
                 queue declared (nothing was sent). A nacked message may still be delivered;
                 the check reports that (`unconfirmed_delivered`), it is not data loss.
- indeterminate: the connection broke while waiting for the confirm, and publishing the
                 same message again on the next node (as oslo.messaging does) was not
                 confirmed either. A republished message that is confirmed is ok; if the
                 first copy also got through, the check counts a duplicate.

A consumer thread (own connection, manual acks) receives during the run and records each
message as a `delivery` event; the check phase (`--check`) drains the queue until it is empty
and quiet, then records `check {drained: true}`. `measure.classify_queue` derives lost
(confirmed, never consumed) and duplicated (consumed twice) from the timeline.

Dead peers: TCP_USER_TIMEOUT (2 s) makes the kernel abort a connection whose sent data is not
acknowledged, so a crashed or unplugged node costs ≈ 2 s instead of minutes of
retransmissions; AMQP heartbeats (2 s, pika checks after timeout + 5 s) catch a frozen broker
whose kernel still ACKs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from hastack.chaos import ChaosError
from hastack.chaos.timeline import Outcome, TimelineWriter, short_error
from hastack.chaos.workloads import (
    Workload,
    as_list,
    base_parser,
    run_id_of,
    setup_logging,
    stop_on_signals,
)

log = logging.getLogger(__name__)

NAME = "amqp"
DEFAULT_QUEUE = "hastack-chaos"
CONNECT_TIMEOUT_S = 1.0
HEARTBEAT_S = 2
TCP_USER_TIMEOUT_MS = 2000
_CONNECTION_ERRORS = (pika.exceptions.AMQPError, OSError)


def parameters(urls: Sequence[str]) -> list[pika.URLParameters]:
    """One URLParameters per node, with timeouts short enough that a dead node costs ~1-2 s."""
    params = []
    for url in urls:
        p = pika.URLParameters(url)
        p.socket_timeout = CONNECT_TIMEOUT_S
        p.stack_timeout = CONNECT_TIMEOUT_S * 2
        p.blocked_connection_timeout = 5
        p.heartbeat = HEARTBEAT_S
        p.connection_attempts = 1
        p.retry_delay = 0
        p.tcp_options = {"TCP_USER_TIMEOUT": TCP_USER_TIMEOUT_MS}
        params.append(p)
    if not params:
        raise ChaosError("amqp: give at least one --url")
    return params


class NodeRing:
    """The nodes in order, remembering where to start the next connection attempt."""

    def __init__(self, urls: Sequence[str]):
        self.params = parameters(urls)
        self._next = 0

    def connect(self) -> tuple[pika.BlockingConnection, str]:
        errors = []
        n = len(self.params)
        for k in range(n):
            index = (self._next + k) % n
            p = self.params[index]
            try:
                conn = pika.BlockingConnection(p)
            except _CONNECTION_ERRORS as exc:
                errors.append(f"{p.host}: {short_error(exc, 40)}")
                continue
            self._next = index
            return conn, f"{p.host}:{p.port}"
        raise pika.exceptions.AMQPConnectionError("; ".join(errors))

    def failed(self) -> None:
        """The current node broke a connection: start at the next one."""
        self._next = (self._next + 1) % len(self.params)


def declare(channel: BlockingChannel, queue: str) -> None:
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})


class AmqpWorkload(Workload):
    name = NAME

    def __init__(self, writer: TimelineWriter, urls: Sequence[str], queue: str = DEFAULT_QUEUE,
                 run_id: str | None = None, consume: bool = True,
                 setup_timeout_s: float = 30.0):
        super().__init__(writer, run_id)
        self.urls, self.queue, self.consume = list(urls), queue, consume
        self.setup_timeout_s = setup_timeout_s
        self.ring = NodeRing(self.urls)
        self._conn: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._node: str | None = None
        self._consumer: Consumer | None = None

    def describe(self) -> dict[str, Any]:
        return {"targets": [f"{p.host}:{p.port}" for p in self.ring.params],
                "queue": self.queue, "service": "rabbitmq", "heartbeat_s": HEARTBEAT_S,
                "tcp_user_timeout_ms": TCP_USER_TIMEOUT_MS}

    def setup(self) -> None:
        deadline = time.monotonic() + self.setup_timeout_s
        while True:
            try:
                self._open()
                break
            except pika.exceptions.ChannelClosedByBroker as exc:
                raise ChaosError(f"amqp: cannot declare quorum queue {self.queue}: "
                                 f"{exc.reply_text}") from exc
            except (pika.exceptions.ProbableAuthenticationError,
                    pika.exceptions.ProbableAccessDeniedError) as exc:
                raise ChaosError(f"amqp: access refused: {exc}") from exc
            except _CONNECTION_ERRORS as exc:
                if time.monotonic() >= deadline:
                    raise ChaosError(f"amqp: no node answered within "
                                     f"{self.setup_timeout_s:g} s: {exc}") from exc
                time.sleep(0.5)
        if self.consume:
            self._consumer = Consumer(self.writer, self.urls, self.queue).start()

    def _open(self) -> None:
        conn, node = self.ring.connect()
        try:
            channel = conn.channel()
            channel.confirm_delivery()
            declare(channel, self.queue)
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            raise
        if self._node is not None and node != self._node:
            self.writer.transition("amqp-node", self._node, node, source=NAME)
        self._conn, self._channel, self._node = conn, channel, node

    def _drop(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def step(self, seq: int) -> None:
        t0 = self.writer.now()
        outcome, error = self.publish(seq)
        self.writer.request(NAME, "publish", outcome, t0, self.writer.now() - t0, error,
                            self._node, id=seq)

    def publish(self, seq: int) -> tuple[Outcome, str]:
        """Publish and wait for the confirm. When the connection breaks before the confirm,
        publish the same message again on the next node, once, as oslo.messaging's
        `ensure()` does: at least once, so a duplicate is possible (the check counts them),
        a loss is not."""
        body = json.dumps({"run": self.run_id, "id": seq}).encode()
        outcome, error = self._publish_once(body, seq)
        if outcome != "indeterminate":
            return outcome, error
        again, again_error = self._publish_once(body, seq)
        if again == "ok":
            return "ok", ""
        return "indeterminate", f"{error}; again: {again_error}"

    def _publish_once(self, body: bytes, seq: int) -> tuple[Outcome, str]:
        try:
            if self._channel is None:
                self._open()
        except _CONNECTION_ERRORS as exc:
            self._drop()
            return "fail", f"connect: {short_error(exc, 70)}"
        assert self._channel is not None
        try:
            self._channel.basic_publish(
                "", self.queue, body, mandatory=True,
                properties=pika.BasicProperties(delivery_mode=2,
                                                message_id=f"{self.run_id}:{seq}"))
            return "ok", ""
        except pika.exceptions.NackError:
            return "fail", "nack"
        except pika.exceptions.UnroutableError:
            return "fail", "unroutable (returned)"
        except _CONNECTION_ERRORS as exc:
            self._drop()
            self.ring.failed()
            return "indeterminate", f"confirm: {short_error(exc, 70)}"

    def teardown(self) -> None:
        if self._consumer is not None:
            self._consumer.stop()
        self._drop()


class Consumer:
    """Receives messages in a thread (its own connection), records each as a `delivery`,
    then acks it. Losing the connection between the two means a redelivery: a duplicate,
    which the check reports (at-least-once is what AMQP promises)."""

    def __init__(self, writer: TimelineWriter, urls: Sequence[str], queue: str):
        self.writer, self.queue = writer, queue
        self.ring = NodeRing(urls)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="amqp-consumer", daemon=True)
        self.last_delivery = time.monotonic()
        self.received = 0

    def start(self) -> Consumer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        last_error = ""
        while not self._stop.is_set():
            try:
                self._consume_once()
                last_error = ""
            except _CONNECTION_ERRORS as exc:
                text = f"consumer: {short_error(exc)}"
                if text != last_error:
                    log.info("amqp %s", text)
                    self.writer.note(NAME, text)
                last_error = text
                self.ring.failed()
                self._stop.wait(0.2)

    def _consume_once(self) -> None:
        conn, node = self.ring.connect()
        try:
            channel = conn.channel()
            declare(channel, self.queue)
            channel.basic_qos(prefetch_count=50)
            for method, _props, body in channel.consume(self.queue, inactivity_timeout=0.2):
                if self._stop.is_set():
                    break
                if method is None:
                    continue
                run, seq = _parse(body)
                if seq is None:
                    self.writer.note(NAME, f"consumer: unparsable message {body[:40]!r}")
                else:
                    self.writer.delivery(NAME, seq, node, run)
                self.received += 1
                self.last_delivery = time.monotonic()
                channel.basic_ack(method.delivery_tag)
            with contextlib.suppress(Exception):
                channel.cancel()
        finally:
            with contextlib.suppress(Exception):
                conn.close()


def drain(writer: TimelineWriter, urls: Sequence[str], queue: str, run_id: str,
          quiet_s: float = 2.0, timeout_s: float = 60.0) -> bool:
    """The check phase: consume until the queue is empty and nothing arrived for `quiet_s`,
    then record `check {drained}`. False (and recorded so) when the deadline passes first."""
    consumer = Consumer(writer, urls, queue).start()
    ring = NodeRing(urls)
    deadline = time.monotonic() + timeout_s
    drained = False
    remaining: int | None = None
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if time.monotonic() - consumer.last_delivery < quiet_s:
                continue
            try:
                conn, _node = ring.connect()
                try:
                    ok = conn.channel().queue_declare(queue, passive=True)
                    remaining = int(ok.method.message_count)
                finally:
                    with contextlib.suppress(Exception):
                        conn.close()
            except _CONNECTION_ERRORS as exc:
                log.info("amqp: check: %s", short_error(exc))
                ring.failed()
                continue
            if remaining == 0:
                drained = True
                break
    finally:
        consumer.stop()
    writer.check(NAME, {"run": run_id, "queue": queue, "drained": drained,
                        "remaining": remaining, "received": consumer.received})
    return drained


def _parse(body: bytes) -> tuple[str | None, int | None]:
    try:
        obj = json.loads(body)
        return str(obj["run"]), int(obj["id"])
    except (ValueError, KeyError, TypeError):
        return None, None


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, "Confirmed publishes into a quorum queue; consume; drain-check.")
    parser.add_argument("--url", action="append", default=[], required=True,
                        help="amqp://user:pass@node:5672/%%2F, once per node (or comma list)")
    parser.add_argument("--queue", default=DEFAULT_QUEUE)
    parser.add_argument("--no-consume", action="store_true",
                        help="do not consume during the run (the check drains everything)")
    parser.add_argument("--check", action="store_true",
                        help="only drain the queue and record the deliveries")
    parser.add_argument("--check-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    urls = as_list(args.url)
    try:
        with TimelineWriter(args.out) as writer:
            if args.check:
                run_id = args.run_id or run_id_of(args.out, NAME)
                drained = drain(writer, urls, args.queue, run_id, timeout_s=args.check_timeout)
                print(json.dumps({"run": run_id, "drained": drained}))
                return 0 if drained else 1
            workload = AmqpWorkload(writer, urls, args.queue, args.run_id,
                                    consume=not args.no_consume)
            issued = workload.run(args.duration, args.rate, stop_on_signals())
            print(json.dumps({"run": workload.run_id, "issued": issued}))
            return 0
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
