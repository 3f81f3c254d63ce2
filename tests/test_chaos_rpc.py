"""The chaos `rpc` workload speaks Nova's base RPC API: its pings reach Nova's own endpoint
(`nova.baserpc.BaseRPCAPI`, as every Nova service serves it) on oslo.messaging's
in-process fake transport, by topic and by server, and a reply that is not the call's own
counts as a failure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

oslo_messaging = pytest.importorskip("oslo_messaging")
baserpc = pytest.importorskip("nova.baserpc")

from oslo_config import cfg  # noqa: E402

from hastack.chaos.timeline import TimelineWriter  # noqa: E402
from hastack.chaos.workloads.rpc import RpcWorkload  # noqa: E402

FAKE_URL = "fake:/"
# Where nova-conductor listens: Nova's control_exchange (nova/config.py) and its topic.
NOVA_EXCHANGE, CONDUCTOR_TOPIC = "nova", "conductor"


class _Impostor:
    """Answers `ping` in Nova's namespace with an argument of its own."""

    target = oslo_messaging.Target(namespace="baseapi", version="1.1")

    def ping(self, context: dict[str, object], arg: object) -> dict[str, object]:
        return {"service": "conductor", "arg": "not yours"}


@pytest.fixture
def conductor(request: pytest.FixtureRequest) -> Iterator[str]:
    """One RPC server on the conductor topic, named ctl1, serving Nova's endpoint (or the
    impostor, when the test is parametrized with it)."""
    endpoint = getattr(request, "param", None) or baserpc.BaseRPCAPI("conductor", None)
    transport = oslo_messaging.get_rpc_transport(cfg.CONF, url=FAKE_URL)
    target = oslo_messaging.Target(exchange=NOVA_EXCHANGE, topic=CONDUCTOR_TOPIC, server="ctl1")
    server = oslo_messaging.get_rpc_server(transport, target, [endpoint])
    server.start()
    try:
        yield "ctl1"
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def _run(tmp_path: Path, server: str | None) -> tuple[dict[str, int], list[dict[str, object]]]:
    timeline = tmp_path / "rpc.jsonl"
    with TimelineWriter(timeline) as writer:
        workload = RpcWorkload(writer, transport_url=FAKE_URL, server=server, retries=0,
                               timeout_s=5)
        workload.run(duration_s=0.5, rate=10)
        summary = workload.summary()
    requests = [e for e in map(json.loads, timeline.read_text().splitlines())
                if e["kind"] == "request"]
    return summary, requests


@pytest.mark.parametrize("server", [None, "ctl1"])
def test_pings_reach_novas_own_endpoint(conductor: str, tmp_path: Path,
                                        server: str | None) -> None:
    summary, requests = _run(tmp_path, server)
    assert summary["calls"] >= 3 and summary["errors"] == 0 and summary["lost"] == 0
    assert {r["outcome"] for r in requests} == {"ok"}


@pytest.mark.parametrize("conductor", [_Impostor()], indirect=True)
def test_a_reply_with_another_argument_is_a_failure(conductor: str, tmp_path: Path) -> None:
    summary, requests = _run(tmp_path, None)
    assert summary["errors"] == summary["calls"] >= 3
    assert all(r["outcome"] == "fail" and "wrong reply" in str(r["error"]) for r in requests)
