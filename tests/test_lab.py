"""Acceptance on the real lab: namespaces, the Debian daemons, the rendered files.

Every test needs root (namespaces, links, mounts) and the packages of scripts/setup.sh; without
root they are skipped with that reason. The demo lab is the one the chaos and Keystone modules
share (tests.labs.shared_demo_lab); this module's down test takes it down and checks that
nothing is left, and it is torn down at the end of the session whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hastack.deploy import lab
from hastack.deploy.deployer import Summary
from hastack.deploy.files import read_secrets
from hastack.deploy.lab.names import LabNames
from hastack.deploy.lab.nodes import marked_processes
from hastack.deploy.lab.power import LabControl
from hastack.deploy.lab.state import RecordStore, state_dir
from hastack.model import load_cloud
from tests.labs import down_shared_demo, private_lab, shared_demo_lab

EXAMPLES = Path(__file__).resolve().parent.parent / "hastack" / "examples"

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (namespaces, links, mounts)"),
]


def _print_steps(summary: Summary) -> None:
    print(f"\nlab {summary.cloud} up in {summary.total_s:.1f} s")
    for step in summary.steps:
        print(f"  {step.started_at + step.seconds:6.1f}  {step.node:<7} {step.component:<15}"
              f"{step.action:<42} {step.seconds:5.1f} s")


@pytest.fixture(scope="module")
def demo() -> Iterator[Summary]:
    """The shared demo lab (tests.labs): the chaos and Keystone modules may have run on it
    first; every one of their scenarios heals it."""
    with shared_demo_lab() as shared:
        assert shared.summary is not None
        _print_steps(shared.summary)
        yield shared.summary


def test_demo_comes_up_healthy(demo: Summary) -> None:
    status = demo.status.to_json()
    assert demo.healthy, status["anomalies"]
    assert status["healthy"] is True
    galera = status["galera"]
    assert galera["size"] == 3 and galera["primary"]
    assert all(m["state"] == "Synced" for m in galera["members"].values())
    assert galera["writer"] in ("ctl1", "ctl2", "ctl3")
    assert sorted(status["rabbitmq"]["running"]) == ["ctl1", "ctl2", "ctl3"]
    # each controller's Ceilometer central agent is a live member of their tooz group
    assert len(status["redis"]["tooz_groups"]["central-global"]) == 3
    for vip, holders in status["vip_holders"].items():
        assert len(holders) == 1, f"VIP {vip} held by {holders}"


def test_sql_write_through_vip_from_client(demo: Summary) -> None:
    password = read_secrets(state_dir("demo"))["db_keystone"]
    sql = ("CREATE TABLE IF NOT EXISTS lab_check (id INT AUTO_INCREMENT PRIMARY KEY, "
           "v VARCHAR(32)); INSERT INTO lab_check (v) VALUES ('through-the-vip'); "
           "SELECT v FROM lab_check WHERE v = 'through-the-vip' LIMIT 1;")
    result = lab.run_in("demo", "client", [
        "mariadb", "-h", demo.status.vips["internal"], "-u", "keystone",
        f"-p{password}", "-N", "-B", "keystone", "-e", sql])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "through-the-vip"


AMQP_CHECK = """
import sys, pika
cred = pika.PlainCredentials("openstack", sys.argv[1])
def connect(host):
    return pika.BlockingConnection(pika.ConnectionParameters(
        host, 5672, "/", cred, connection_attempts=5, retry_delay=1))
producer = connect(sys.argv[2])
channel = producer.channel()
channel.confirm_delivery()
channel.queue_declare("hastack-lab-check", durable=True, arguments={"x-queue-type": "quorum"})
channel.basic_publish("", "hastack-lab-check", b"ping",
                      pika.BasicProperties(delivery_mode=2), mandatory=True)
consumer = connect(sys.argv[3])
body = None
for _ in range(50):
    method, _, body = consumer.channel().basic_get("hastack-lab-check", auto_ack=True)
    if method:
        break
print(body.decode() if body else "nothing")
"""


def test_rabbitmq_publish_on_one_member_consume_on_another(demo: Summary) -> None:
    password = read_secrets(state_dir("demo"))["rabbitmq_openstack"]
    cloud = load_cloud(EXAMPLES / "demo.yaml")
    members = [n for n in cloud.nodes if "controller" in n.roles]     # cmp1 runs no RabbitMQ
    first, last = str(members[0].ip), str(members[-1].ip)
    result = subprocess.run(
        ["nsenter", "-t", str(_init_pid("demo", "client")), "-p", "-n", "-m", "-u", "-i",
         "--", _venv_python(), "-c", AMQP_CHECK, password, first, last],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ping"


def _openstack(*args: str, timeout: float = 180) -> str:
    """The openstack CLI on the client node, as the lab's admin, through the VIPs (its
    clouds.yaml); stdout, or the failure with its stderr."""
    result = lab.run_in("demo", "client", [
        str(Path(_venv_python()).parent / "openstack"), "--os-cloud", "hastack-lab", *args],
        timeout=timeout)
    assert result.returncode == 0, f"openstack {' '.join(args)}: {result.stderr[-2000:]}"
    return result.stdout


def test_nova_services_report_and_the_apis_are_up_behind_haproxy(demo: Summary) -> None:
    status = demo.status.to_json()
    services = {(s["binary"], s["host"]): s["up"] for s in status["services"]["nova"]}
    assert services == {**{(b, n): True for b in ("nova-conductor", "nova-scheduler")
                           for n in ("ctl1", "ctl2", "ctl3")},
                        ("nova-compute", "cmp1"): True}
    listed = json.loads(_openstack("compute", "service", "list", "-f", "json"))
    assert {(s["Binary"], s["Host"], s["State"]) for s in listed} >= {
        ("nova-compute", "cmp1", "up"), ("nova-conductor", "ctl2", "up")}
    catalog = json.loads(_openstack("catalog", "list", "-f", "json"))
    assert {c["Type"] for c in catalog} >= {"identity", "placement", "image", "network",
                                            "compute", "orchestration", "cloudformation"}


def test_an_image_uploaded_through_the_vip_downloads_whole_from_every_glance(
        demo: Summary) -> None:
    """Uploaded once (one Glance node takes it), downloaded three times: HAProxy sends the
    downloads round the Glance nodes, which share the image store."""
    made = lab.run_in("demo", "client", ["sh", "-c", "head -c 3145728 /dev/urandom > "
                                         "/tmp/lab-image && sha256sum /tmp/lab-image"])
    assert made.returncode == 0, made.stderr
    digest = made.stdout.split()[0]
    image = json.loads(_openstack("image", "create", "--disk-format", "raw",
                                  "--container-format", "bare", "--file", "/tmp/lab-image",
                                  "lab-image", "-f", "json"))
    try:
        assert image["status"] == "active"
        for i in range(3):
            _openstack("image", "save", "--file", f"/tmp/lab-image.{i}", image["id"])
            back = lab.run_in("demo", "client", ["sha256sum", f"/tmp/lab-image.{i}"])
            assert back.stdout.split()[0] == digest, f"download {i} differs"
    finally:
        _openstack("image", "delete", image["id"])


def test_a_server_boots_to_active_through_the_vip(demo: Summary) -> None:
    """API -> conductor -> scheduler -> Placement -> nova-compute (Nova's fake driver: the
    lab has no hypervisor) over RabbitMQ, every call through the VIP."""
    lab.run_in("demo", "client", ["sh", "-c", "head -c 1048576 /dev/zero > /tmp/lab-boot"])
    image = json.loads(_openstack("image", "create", "--disk-format", "raw",
                                  "--container-format", "bare", "--file", "/tmp/lab-boot",
                                  "lab-boot", "-f", "json"))
    flavor = json.loads(_openstack("flavor", "create", "--ram", "64", "--disk", "1",
                                   "--vcpus", "1", "lab-boot", "-f", "json"))
    try:
        server = json.loads(_openstack("server", "create", "--image", image["id"],
                                       "--flavor", flavor["id"], "--nic", "none", "--wait",
                                       "lab-boot", "-f", "json", timeout=300))
        assert server["status"] == "ACTIVE", server.get("fault")
        assert server["OS-EXT-SRV-ATTR:host"] == "cmp1"
        hypervisors = json.loads(_openstack("hypervisor", "list", "-f", "json"))
        assert [h["Hypervisor Hostname"] for h in hypervisors] == ["cmp1"]
        _openstack("server", "delete", "--wait", server["id"], timeout=300)
    finally:
        _openstack("flavor", "delete", flavor["id"])
        _openstack("image", "delete", image["id"])


_STACK_TEMPLATE = """heat_template_version: 2018-08-31
resources:
  word:
    type: OS::Heat::RandomString
    properties: {length: 24}
outputs:
  word: {value: {get_attr: [word, value]}}
"""


def test_a_stack_completes_through_the_vip_and_every_heat_engine_reports(
        demo: Summary) -> None:
    """heat-api (through the VIP) -> RabbitMQ -> a heat-engine, which makes the resource,
    keeps the stack in Galera and a trust in Keystone; then deletes it all."""
    engines = json.loads(_openstack("orchestration", "service", "list", "-f", "json"))
    assert {e["Host"] for e in engines if e["Binary"] == "heat-engine"
            and e["Status"] == "up"} == {"ctl1", "ctl2", "ctl3"}
    written = lab.run_in("demo", "client", ["sh", "-c", "cat > /tmp/lab-stack.yaml"],
                         input=_STACK_TEMPLATE)
    assert written.returncode == 0, written.stderr
    created = _openstack("stack", "create", "--wait", "-t", "/tmp/lab-stack.yaml",
                         "lab-stack", "-f", "json", timeout=300)
    # --wait prints the stack's events first, then the stack.
    stack = json.loads(created[created.index("\n{") + 1:] if not created.startswith("{")
                       else created)
    try:
        assert stack["stack_status"] == "CREATE_COMPLETE", stack.get("stack_status_reason")
        word = json.loads(_openstack("stack", "output", "show", "lab-stack", "word",
                                     "-f", "json"))["output_value"]
        assert len(word) == 24 and word.isalnum()
    finally:
        _openstack("stack", "delete", "--yes", "--wait", "lab-stack", timeout=300)
    assert "lab-stack" not in _openstack("stack", "list", "-f", "value", "-c", "Stack Name")
    # The CloudFormation API answers through the VIP too (its version document).
    cfn = next(c for c in json.loads(_openstack("catalog", "show", "cloudformation",
                                                "-f", "json"))["endpoints"]
               if c["interface"] == "internal")
    versions = lab.run_in("demo", "client", [_venv_python(), "-c",
                                             "import sys, urllib.request, urllib.error\n"
                                             "try: urllib.request.urlopen(sys.argv[1])\n"
                                             "except urllib.error.HTTPError as e: "
                                             "print(e.code, e.read().decode())",
                                             cfn["url"].rsplit("/v1", 1)[0] + "/"])
    assert versions.stdout.startswith("300 ") and '"v1.0"' in versions.stdout, versions


_NOVA_RPC = """
import json, sys
from hastack.chaos.workloads.rpc import NovaRpcClient
client = NovaRpcClient(sys.argv[1], timeout_s=30)
servers = {s: client.ping(s, server=s) for s in sys.argv[2:]}
topic = [client.ping(i)["arg"] for i in range(6)]
client.close()
print(json.dumps({"servers": servers, "topic": topic}))
"""


def test_every_nova_conductor_answers_rpc_through_rabbitmq(demo: Summary) -> None:
    """The chaos `rpc` workload's client, from the client node: Nova's base RPC API `ping`,
    to each controller's nova-conductor by name and to the topic (any one of them)."""
    nova_conf = "/run/hastack/state/rendered/ctl1/etc/nova/nova.conf"
    result = lab.run_in("demo", "client", [sys.executable, "-c", _NOVA_RPC, nova_conf,
                                           "ctl1", "ctl2", "ctl3"], timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["servers"] == {n: {"service": "conductor", "arg": n}
                                 for n in ("ctl1", "ctl2", "ctl3")}
    assert answer["topic"] == list(range(6))


def test_second_up_is_a_no_op(demo: Summary) -> None:
    again = lab.up(load_cloud(EXAMPLES / "demo.yaml"), str(EXAMPLES / "demo.yaml"))
    assert again.healthy, again.status.anomalies
    assert again.changed is False, again.actions
    assert again.actions == []


def test_down_leaves_nothing(demo: Summary) -> None:
    cloud = load_cloud(EXAMPLES / "demo.yaml")
    assert LabControl(cloud, str(EXAMPLES / "demo.yaml")).leftovers() == []
    record = RecordStore(state_dir("demo")).load()
    assert record is not None
    refs = record.processes()
    state = state_dir("demo")
    down_shared_demo()
    survivors = [r.pid for r in refs if r.alive() and not _zombie(r.pid)]
    assert survivors == []
    assert marked_processes(state) == []
    names = LabNames("demo")
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=True).stdout
    assert [line for line in links.splitlines()
            if names.owns_link(line.split(":")[1].strip().split("@")[0])] == []
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(state) not in mounts
    assert not state.exists()


def test_split_roles_comes_up_healthy() -> None:
    with private_lab("split-roles", "split", "198.18.64.") as (cloud, _, summary):
        _print_steps(summary)
        assert summary.healthy, summary.status.anomalies
        status = summary.status.to_json()
        assert status["galera"]["size"] == 3
        assert sorted(status["rabbitmq"]["running"]) == ["mq1", "mq2", "mq3"]
        assert [len(h) for h in status["vip_holders"].values()] == [1]
        assert status["vip_holders"]["internal"][0] in ("lb1", "lb2")


def _init_pid(cloud: str, node: str) -> int:
    record = RecordStore(state_dir(cloud)).load()
    assert record is not None and record.nodes[node].init is not None
    return record.nodes[node].init.pid


def _venv_python() -> str:
    import sys
    return sys.executable


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"
