"""Acceptance: a whole-cluster power loss, on the real lab.

Scenarios, each on the same lab, in order:
1. power loss — rows written through the VIP and messages published with confirms; every
   node's first process SIGKILLed at once; `hastack recover` brings every service green within
   120 s and no acknowledged row or message is lost.
2. stale-node trap — one member stops cleanly early (its grastate.dat gets a seqno), writes
   continue, the stale member is made to look bootstrappable (`safe_to_bootstrap: 1`), then
   the rest lose power: recovery bootstraps an advanced member, never the stale one.
3. power-cycled lab with one machine gone: `recover --without ctl3` refuses (ctl3 was in the
   last primary view: it might be ahead); then `hastack up` brings the whole lab back.
4. the same with --force: bootstrap from the two reachable members (warned), RabbitMQ
   force_boot; then `up` brings ctl3 back as a joiner.

The lab's nodes share one kernel: SIGKILL drops no page-cache write, so these prove the
recovery protocol, not fsync durability.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hastack.deploy import lab
from hastack.deploy.files import read_secrets
from hastack.deploy.lab.nodes import kill, wait_gone
from hastack.deploy.lab.recover import RecoveryRefused, recover
from hastack.deploy.lab.state import RecordStore, state_dir
from hastack.deploy.progress import StepTime
from hastack.deploy.recovery import Action, parse_grastate
from hastack.model import Cloud, parse_cloud

EXAMPLES = Path(__file__).resolve().parent.parent / "hastack" / "examples"
# A name of its own per run: lab names are machine-wide (bridge hs-<name>), and two runs of
# this module at once must not take each other's links down.
CLOUD = f"rec{os.getpid() % 100000}"
SUBNET = "198.18.41."
RECOVERY_TARGET_S = 120
QUEUE = "hastack-recover-check"

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (namespaces, links, mounts)"),
]

WRITER = """
import sys, pymysql
host, password, tag, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
conn = pymysql.connect(host=host, user="keystone", password=password, database="keystone",
                       autocommit=True, connect_timeout=10)
cur = conn.cursor()
cur.execute("CREATE TABLE IF NOT EXISTS power_loss (id INT AUTO_INCREMENT PRIMARY KEY, "
            "tag VARCHAR(32))")
for _ in range(count):
    cur.execute("INSERT INTO power_loss (tag) VALUES (%s)", (tag,))
    print(cur.lastrowid, flush=True)     # acknowledged: the commit returned
"""

READER = """
import sys, pymysql
conn = pymysql.connect(host=sys.argv[1], user="keystone", password=sys.argv[2],
                       database="keystone", connect_timeout=10)
cur = conn.cursor()
cur.execute("SELECT id FROM power_loss")
print(" ".join(str(r[0]) for r in cur.fetchall()))
"""

PUBLISHER = """
import sys, pika
cred = pika.PlainCredentials("openstack", sys.argv[1])
conn = pika.BlockingConnection(pika.ConnectionParameters(sys.argv[2], 5672, "/", cred,
                                                         connection_attempts=5, retry_delay=1))
channel = conn.channel()
channel.confirm_delivery()
channel.queue_declare(sys.argv[3], durable=True, arguments={"x-queue-type": "quorum"})
for i in range(int(sys.argv[4])):
    channel.basic_publish("", sys.argv[3], str(i).encode(),
                          pika.BasicProperties(delivery_mode=2), mandatory=True)
print("confirmed")
"""


def _cloud() -> Cloud:
    text = (EXAMPLES / "demo.yaml").read_text().replace("name: demo", f"name: {CLOUD}")
    return parse_cloud(text.replace("198.18.0.", SUBNET))


@pytest.fixture(scope="module")
def cloud_file() -> Iterator[Path]:
    saved = os.environ.get("HASTACK_STATE_DIR")
    root = tempfile.mkdtemp(prefix="hastack-recover-")
    os.environ["HASTACK_STATE_DIR"] = root
    path = Path(root) / f"{CLOUD}.yaml"
    text = (EXAMPLES / "demo.yaml").read_text().replace("name: demo", f"name: {CLOUD}")
    path.write_text(text.replace("198.18.0.", SUBNET))
    cloud = _cloud()
    purge = False     # a failed run keeps its logs (the lab itself is always torn down)
    try:
        summary = lab.up(cloud, str(path))
        assert summary.healthy, summary.status.anomalies
        print(f"\nlab {CLOUD} up in {summary.total_s:.1f} s")
        yield path
        purge = True
    finally:
        lab.down(CLOUD, purge=purge)
        if purge:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"\nlogs kept in {state_dir(CLOUD)}")
        if saved is None:
            os.environ.pop("HASTACK_STATE_DIR", None)
        else:
            os.environ["HASTACK_STATE_DIR"] = saved


def _client(script: str, *args: str, timeout: float = 120) -> str:
    result = lab.run_in(CLOUD, "client", [sys.executable, "-c", script, *args],
                        timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _secret(name: str) -> str:
    return str(read_secrets(state_dir(CLOUD))[name])


def _vip() -> str:
    return str(_cloud().vips.internal)


def write_rows(tag: str, count: int) -> set[int]:
    out = _client(WRITER, _vip(), _secret("db_keystone"), tag, str(count))
    return {int(line) for line in out.split()}


def stored_rows() -> set[int]:
    return {int(x) for x in _client(READER, _vip(), _secret("db_keystone")).split()}


def publish(count: int) -> None:
    first = str(_cloud().nodes[0].ip)
    assert "confirmed" in _client(PUBLISHER, _secret("rabbitmq_openstack"), first, QUEUE,
                                  str(count))


def power_cut(nodes: list[str] | None = None) -> float:
    """SIGKILL every cloud node's first process at once (the client keeps running)."""
    record = RecordStore(state_dir(CLOUD)).load()
    assert record is not None
    inits = [n.init for name, n in record.nodes.items()
             if n.init is not None and name != "client" and (nodes is None or name in nodes)]
    cut = time.monotonic()
    for ref in inits:
        kill(ref)
    assert wait_gone(inits) == []
    return cut


def _print_steps(steps: list[StepTime]) -> None:
    for st in steps:
        print(f"  {st.started_at + st.seconds:6.1f}  {st.node:<6} {st.component:<15}"
              f"{st.action:<44} {st.seconds:5.1f} s")


# Runs in the client node: the queue's message count as its leader tells a client (a passive
# declare), retried while the queue is still recovering.
COUNTER = """
import sys, time, pika
cred = pika.PlainCredentials("openstack", sys.argv[1])
deadline = time.time() + float(sys.argv[4])
count = None
while time.time() < deadline:
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters(sys.argv[2], 5672, "/", cred))
        try:
            count = conn.channel().queue_declare(sys.argv[3], passive=True).method.message_count
        finally:
            conn.close()
        if count == int(sys.argv[5]):
            break
    except pika.exceptions.AMQPError:
        pass
    time.sleep(1)
print(count)
"""


def _messages_settled(wanted: int, timeout_s: float = 60) -> int | None:
    """The queue's message count from its leader, asked again until it reaches `wanted`.

    `rabbitmqctl list_queues` reports a quorum queue's count from metrics that, after a
    whole-cluster restart, can say 0 for a minute while the queue already holds every message
    (seen on this lab: 0 for 45 s, then 500); a client's passive declare asks the leader."""
    out = _client(COUNTER, _secret("rabbitmq_openstack"), str(_cloud().nodes[0].ip), QUEUE,
                  str(timeout_s), str(wanted), timeout=timeout_s + 30).strip()
    return int(out) if out.isdigit() else None


# Ra (2.2.0, in RabbitMQ 3.10.8) records which directory holds a queue member's log in a DETS
# table that it writes to disk lazily: a queue declared seconds before every node loses power
# comes back with no such record, and RabbitMQ then starts a new, empty member beside the old
# directory that still holds every message (seen on this lab: each node with two directories
# for the queue, the new one a bare `config`, Raft term 0). The test declares its queue first
# and lets Ra write it down, so that what it measures is the messages' durability.
RA_DIRECTORY_SETTLE_S = 5


def _queue_directories() -> dict[str, dict[str, list[str]]]:
    """Per controller, the queue's member directories and the files in each."""
    found: dict[str, dict[str, list[str]]] = {}
    prefix = "2F_" + QUEUE[:3].upper()       # Ra's directory name: vhost, name, random
    for node in _cloud().nodes:
        if "controller" not in node.roles:
            continue
        mnesia = state_dir(CLOUD) / "nodes" / node.name / "rabbitmq" / "mnesia"
        found[node.name] = {
            path.name: sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
            for path in sorted(mnesia.glob(f"*/quorum/*/{prefix}*")) if path.is_dir()}
    return found


def _recreated_empty(directories: dict[str, dict[str, list[str]]]) -> bool:
    """Every member has a second directory for the queue with nothing but its config."""
    return all(len(d) == 2 and ["config"] in d.values() for d in directories.values())


def test_power_loss_recovers_every_service_without_losing_a_write(cloud_file: Path) -> None:
    acked = write_rows("before-power-loss", 200)
    publish(0)                               # declared
    time.sleep(RA_DIRECTORY_SETTLE_S)
    publish(500)
    cut = power_cut()
    report = recover(_cloud(), str(cloud_file))
    to_green = time.monotonic() - cut
    print(f"\npower loss: recover all-green {report.recovery_s} s (from the cut {to_green:.1f} s);"
          f" galera {report.galera.action if report.galera else None} from "
          f"{report.galera.chosen if report.galera else None}")
    print("\n".join(report.explanation))
    _print_steps(report.steps)
    assert report.healthy, report.status and report.status.anomalies
    assert report.galera is not None and report.galera.action is Action.BOOTSTRAP
    assert to_green <= RECOVERY_TARGET_S
    assert acked - stored_rows() == set(), "acknowledged rows lost"
    assert (Path(report.record_dir) / "decision.json").exists()
    assert (Path(report.record_dir) / f"{report.galera.chosen}-grastate.dat").exists()
    messages = _messages_settled(500)
    if messages != 500:
        directories = _queue_directories()
        print(f"\nthe queue's member directories: {directories}")
        if _recreated_empty(directories):
            pytest.xfail(f"known upstream (Ra 2.2.0): the quorum queue holds {messages} of 500 "
                         "confirmed messages; each member was recreated empty beside the "
                         "directory that holds them")
        pytest.fail(f"the quorum queue holds {messages} of 500 confirmed messages after a "
                    f"whole-cluster power cut: {directories}")


def test_stale_node_trap_never_bootstraps_the_stale_member(cloud_file: Path) -> None:
    before = write_rows("before-stale", 20)
    result = lab.run_in(CLOUD, "ctl3", ["supervisorctl", "stop", "mariadb"])
    assert result.returncode == 0, result.stdout + result.stderr
    grastate = state_dir(CLOUD) / "nodes" / "ctl3" / "mysql" / "grastate.dat"
    stale = parse_grastate(grastate.read_text())
    print(f"\nMariaDB 10.11 wrote on a clean stop of one member: seqno {stale.seqno}, "
          f"safe_to_bootstrap {int(stale.safe_to_bootstrap)}")
    assert stale.seqno >= 0
    after = write_rows("after-stale", 100)
    power_cut()
    # Make the stale member look bootstrappable, as it would after being the last to leave
    # an earlier cluster: positions must still decide.
    grastate.write_text(re.sub(r"safe_to_bootstrap:\s*\d", "safe_to_bootstrap: 1",
                               grastate.read_text()))
    report = recover(_cloud(), str(cloud_file))
    print(f"stale-node trap: recover all-green {report.recovery_s} s")
    print("\n".join(report.explanation))
    assert report.galera is not None and report.galera.action is Action.BOOTSTRAP
    assert report.galera.chosen != "ctl3"
    assert report.galera.position is not None and report.galera.position.seqno > stale.seqno
    assert report.healthy, report.status and report.status.anomalies
    assert (before | after) - stored_rows() == set(), "acknowledged rows lost"


def test_lost_machine_is_refused_then_up_brings_the_lab_back(cloud_file: Path) -> None:
    acked = write_rows("before-cycle", 20)
    cut = power_cut()
    with pytest.raises(RecoveryRefused) as refused:
        recover(_cloud(), str(cloud_file), dry_run=True, without=["ctl3"])
    print(f"\nrefused: {refused.value}")
    assert "might be the most advanced" in str(refused.value)
    summary = lab.up(_cloud(), str(cloud_file))
    print(f"hastack up after a power cycle: healthy after {time.monotonic() - cut:.1f} s "
          f"from the cut ({summary.total_s:.1f} s for up)")
    assert summary.healthy, summary.status.anomalies
    assert acked - stored_rows() == set(), "acknowledged rows lost"


def test_two_of_three_forced_then_the_third_rejoins(cloud_file: Path) -> None:
    """ctl3's machine is gone: --force bootstraps from the reachable members (loudly) and
    force_boots RabbitMQ; when ctl3 is back, `up` makes it rejoin."""
    acked = write_rows("before-two-of-three", 20)
    power_cut()
    report = recover(_cloud(), str(cloud_file), force=True, without=["ctl3"])
    print(f"\n2 of 3, forced: all-green (ctl3 left out) {report.recovery_s} s")
    print("\n".join(report.explanation))
    assert report.galera is not None and report.galera.forced
    assert report.galera.warnings and "ctl3" in report.galera.warnings[0]
    assert report.rabbitmq is not None and report.rabbitmq.force_boot in ("ctl1", "ctl2")
    assert report.healthy, report.status and report.status.anomalies
    assert report.status.galera.size == 2
    assert acked - stored_rows() == set(), "acknowledged rows lost"
    summary = lab.up(_cloud(), str(cloud_file))
    assert summary.healthy, summary.status.anomalies
    assert summary.status.galera.size == 3
