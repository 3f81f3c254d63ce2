"""RabbitMQ renderer: behaviour of the rendered files, and a real rabbitmq-server booted on
them (cuttlefish translation, definitions import, no guest, the password hash, net_ticktime)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hastack.model.cloud import Sizing
from hastack.render import RenderContext, RenderedFile, render_cloud, secret_specs
from hastack.render import rabbitmq as rabbit_render
from hastack.render.budget import make_budget
from hastack.render.secrets import complete
from tests.conftest import EXAMPLE_NAMES, example_plan, require_program, write_rendered

RABBIT_EXAMPLES = [n for n in EXAMPLE_NAMES if example_plan(n).runs("rabbitmq")]


def rendered(name: str, sizing: Sizing = Sizing.production
             ) -> tuple[list[RenderedFile], dict[str, str]]:
    plan = example_plan(name)
    secrets = complete({}, secret_specs(plan))
    files = [f for f in render_cloud(plan, secrets, sizing) if f.system == "rabbitmq"]
    return files, secrets


def file_of(files: list[RenderedFile], node: str, path: str) -> RenderedFile:
    for f in files:
        if f.node == node and f.path == path:
            return f
    raise AssertionError(f"{node}:{path} was not rendered")


@pytest.mark.parametrize("name", RABBIT_EXAMPLES)
def test_every_member_is_listed_and_bound_to_its_address(name: str) -> None:
    plan = example_plan(name)
    files, _ = rendered(name)
    members = plan.nodes_running("rabbitmq")
    budget = make_budget(plan.cloud)
    for node in members:
        conf = str(file_of(files, node, rabbit_render.CONF).content)
        assert f"listeners.tcp.default = {plan.cloud.node(node).ip}:5672" in conf
        for i, peer in enumerate(members, start=1):
            assert f"cluster_formation.classic_config.nodes.{i} = rabbit@{peer}" in conf
        assert "cluster_formation.peer_discovery_backend = classic_config" in conf
        assert f"cluster_partition_handling = " \
               f"{plan.cloud.settings.rabbitmq.partition_handling}" in conf
        assert f"net_ticktime = {budget.rabbit_net_ticktime_s}\n" in conf
        env = str(file_of(files, node, rabbit_render.ENV_CONF).content)
        assert f"NODENAME=rabbit@{node}\n" in env
        # Production sizing: Erlang's own scheduler defaults on a dedicated host.
        assert "SERVER_ADDITIONAL_ERL_ARGS" not in env


@pytest.mark.parametrize("name", RABBIT_EXAMPLES)
def test_lab_sizing_stops_schedulers_busy_waiting(name: str) -> None:
    plan = example_plan(name)
    files = render_cloud(plan, complete({}, secret_specs(plan)), Sizing.lab)
    for node in plan.nodes_running("rabbitmq"):
        env = str(file_of(files, node, rabbit_render.ENV_CONF).content)
        assert 'SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none"' in env


@pytest.mark.parametrize("name", RABBIT_EXAMPLES)
def test_cookie_is_private_to_rabbitmq_and_shared(name: str) -> None:
    files, secrets = rendered(name)
    cookies = [f for f in files if f.path == rabbit_render.COOKIE]
    assert cookies
    for cookie in cookies:
        assert cookie.mode == 0o400 and cookie.owner == "rabbitmq"
        assert cookie.content == secrets[rabbit_render.COOKIE_SECRET]
    spec = {s.name: s for s in rabbit_render.secrets_needed(example_plan(name))}
    assert spec[rabbit_render.COOKIE_SECRET].kind == "cookie"


@pytest.mark.parametrize("name", RABBIT_EXAMPLES)
def test_definitions_have_no_guest_and_the_hash_verifies(name: str) -> None:
    files, secrets = rendered(name)
    definitions = json.loads(str(files[0].content if files[0].path == rabbit_render.DEFINITIONS
                                 else file_of(files, files[0].node,
                                              rabbit_render.DEFINITIONS).content))
    users = {u["name"]: u for u in definitions["users"]}
    assert list(users) == ["openstack"]
    user = users["openstack"]
    assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert rabbit_render.verify_password(secrets["rabbitmq_openstack"], user["password_hash"])
    assert not rabbit_render.verify_password("guest", user["password_hash"])
    assert definitions["permissions"][0]["user"] == "openstack"


def test_queue_mode_policies() -> None:
    plan = example_plan("demo")
    secrets = complete({}, secret_specs(plan))
    for mode in ("quorum", "mirrored"):
        settings = plan.cloud.settings.model_copy(
            update={"rabbitmq": plan.cloud.settings.rabbitmq.model_copy(
                update={"queues": mode})})
        cloud = plan.cloud.model_copy(update={"settings": settings})
        from hastack.plan import make_plan
        ctx = RenderContext(make_plan(cloud), make_budget(cloud), secrets)
        definitions = json.loads(str(next(f.content for f in rabbit_render.render(ctx)
                                          if f.path == rabbit_render.DEFINITIONS)))
        vhost = definitions["vhosts"][0]
        if mode == "quorum":
            assert vhost["metadata"]["default_queue_type"] == "quorum"
            assert definitions["policies"] == []
        else:
            assert "default_queue_type" not in vhost["metadata"]
            policy = definitions["policies"][0]["definition"]
            assert policy == {"ha-mode": "all", "ha-sync-mode": "automatic"}


def test_rerendering_is_byte_identical() -> None:
    plan = example_plan("demo")
    secrets = complete({}, secret_specs(plan))
    ctx = RenderContext(plan, make_budget(plan.cloud), secrets)
    assert rabbit_render.render(ctx) == rabbit_render.render(ctx)


def test_hash_matches_rabbitmq_scheme() -> None:
    import base64
    import hashlib
    encoded = rabbit_render.password_hash("secret", salt_key="k")
    raw = base64.b64decode(encoded)
    assert len(raw) == 4 + 32
    assert raw[4:] == hashlib.sha256(raw[:4] + b"secret").digest()
    assert encoded == rabbit_render.password_hash("secret", salt_key="k")


# A real node booted from the rendered files in private PID + network + mount namespaces: the
# node's address on lo, a private /etc/hosts, the rendered /etc/rabbitmq and /var/lib/rabbitmq
# (cookie) bind-mounted, logs in the test's directory. Its peers do not exist (unreachable),
# so it boots alone, which is what classic_config does when no peer answers.
_NODE_SCRIPT = textwrap.dedent("""
    import json, os, subprocess, sys, time
    node, node_ip, etc, lib, logdir, hosts, out, password = sys.argv[1:9]
    def sh(*args, **kw):
        return subprocess.run(list(args), check=True, capture_output=True, text=True, **kw)
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "addr", "add", node_ip + "/32", "dev", "lo")
    sh("mount", "--bind", hosts, "/etc/hosts")
    sh("mount", "--bind", etc, "/etc/rabbitmq")
    sh("mount", "--bind", lib, "/var/lib/rabbitmq")
    sh("mount", "--bind", logdir, "/var/log/rabbitmq")
    env = dict(os.environ, HOME="/var/lib/rabbitmq")
    server = subprocess.Popen(["/usr/lib/rabbitmq/bin/rabbitmq-server"], env=env,
                              stdout=open(logdir + "/stdout.log", "w"),
                              stderr=subprocess.STDOUT)
    ctl = ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", "rabbit@" + node]
    result = {}
    deadline = time.time() + 60
    while True:
        r = subprocess.run(ctl + ["await_startup", "--timeout", "5"], env=env,
                           capture_output=True, text=True)
        if r.returncode == 0:
            break
        if server.poll() is not None or time.time() > deadline:
            result["boot_failed"] = r.stderr[-1500:]
            json.dump(result, open(out, "w"))
            raise SystemExit(0)
        time.sleep(0.5)
    def ctl_out(*args):
        return subprocess.run(ctl + ["-q"] + list(args), env=env, capture_output=True,
                              text=True).stdout
    result["users"] = ctl_out("list_users")
    r = subprocess.run(ctl + ["authenticate_user", "openstack", password], env=env,
                       capture_output=True, text=True)
    result["auth_ok"] = r.returncode == 0
    r = subprocess.run(ctl + ["authenticate_user", "openstack", "wrong"], env=env,
                       capture_output=True, text=True)
    result["auth_wrong"] = r.returncode == 0
    result["vhosts"] = ctl_out("list_vhosts", "name", "default_queue_type")
    result["permissions"] = ctl_out("list_permissions", "-p", "/")
    result["policies"] = ctl_out("list_policies", "-p", "/")
    result["ticktime"] = ctl_out("eval", "net_kernel:get_net_ticktime().").strip()
    result["partition"] = ctl_out(
        "eval", "application:get_env(rabbit, cluster_partition_handling).").strip()
    result["listeners"] = ctl_out("eval", "application:get_env(rabbit, tcp_listeners).").strip()
    result["bind_type"] = ctl_out("eval", "erlang:system_info(scheduler_bind_type).").strip()
    result["cmdline"] = ""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\\0", b" ")
            except OSError:
                continue
            if b"beam" in cmd:
                result["cmdline"] = cmd.decode(errors="replace")
    json.dump(result, open(out, "w"))
""")


@pytest.mark.validator
@pytest.mark.parametrize("name", RABBIT_EXAMPLES)
def test_real_rabbitmq_boots_on_the_rendered_files(name: str, tmp_path: Path) -> None:
    require_program("rabbitmq-server")
    require_program("unshare")
    plan = example_plan(name)
    files, secrets = rendered(name, Sizing.lab)     # what the lab boots
    root = write_rendered(files, tmp_path / "nodes")
    node = plan.nodes_running("rabbitmq")[0]
    base = root / node
    logdir = tmp_path / "log"
    logdir.mkdir()
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(
        f"{n.ip} {n.name}\n" for n in plan.cloud.nodes))
    out = tmp_path / "result.json"
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--mount",
         "--propagation", "private", sys.executable, "-c", _NODE_SCRIPT,
         node, str(plan.cloud.node(node).ip), str(base / "etc/rabbitmq"),
         str(base / "var/lib/rabbitmq"), str(logdir), str(hosts), str(out),
         secrets["rabbitmq_openstack"]],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)     # the namespace's init dies: all of it
            proc.wait(timeout=10)
    logs = "".join(p.read_text(errors="replace")[-3000:] for p in logdir.glob("*.log"))
    assert out.exists(), f"{output[-3000:]}\n{logs}"
    result = json.loads(out.read_text())
    assert "boot_failed" not in result, f"{result}\n{logs}"
    budget = make_budget(plan.cloud)
    users = result["users"].split()
    assert "openstack" in users and "guest" not in users
    assert result["auth_ok"] is True and result["auth_wrong"] is False
    assert result["ticktime"] == str(budget.rabbit_net_ticktime_s)
    assert plan.cloud.settings.rabbitmq.partition_handling in result["partition"]
    assert str(plan.cloud.node(node).ip).replace(".", ",") in result["listeners"] \
        or str(plan.cloud.node(node).ip) in result["listeners"]
    # erl passes "+sbwt" to beam as "-sbwt"; 3.10.8's defaults add one set, ours the second.
    assert result["cmdline"].count("-sbwt none -sbwtdcpu none -sbwtdio none") == 2, \
        result["cmdline"]
    if plan.cloud.settings.rabbitmq.queues == "quorum":
        assert "quorum" in result["vhosts"]
    assert "openstack" in result["permissions"]


@pytest.mark.validator
def test_real_rabbitmq_rejects_an_unknown_key(tmp_path: Path) -> None:
    """Proof that booting is a check: one unknown key and the node refuses to start."""
    require_program("rabbitmq-server")
    files, secrets = rendered("demo")
    root = write_rendered(files, tmp_path / "nodes")
    conf = root / "ctl1" / rabbit_render.CONF
    conf.write_text(conf.read_text() + "cluster_formation.bogus_key = 1\n")
    logdir = tmp_path / "log"
    logdir.mkdir()
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n198.18.0.11 ctl1\n")
    out = tmp_path / "result.json"
    base = root / "ctl1"
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--mount",
         "--propagation", "private", sys.executable, "-c", _NODE_SCRIPT,
         "ctl1", "198.18.0.11", str(base / "etc/rabbitmq"), str(base / "var/lib/rabbitmq"),
         str(logdir), str(hosts), str(out), secrets["rabbitmq_openstack"]],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    result = json.loads(out.read_text())
    assert "boot_failed" in result
    logs = "".join(p.read_text(errors="replace") for p in logdir.glob("*.log"))
    assert "bogus_key" in logs
