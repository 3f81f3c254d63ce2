"""OpenStack services in the lab: Keystone behind the VIP on every controller, and hastack's
active/active RPC service over RabbitMQ.

Stage 5 (deploy). Two bring-up chains that `components.bring_up` runs next to the others:

- `keystone`: the Fernet and credential key repositories (made once in the state dir, copied
  whole to every Keystone node), `clouds.yaml` (state dir and the client node's
  /etc/openstack), then — once the Galera init SQL has created Keystone's database and
  account — gunicorn on every node not running it, and, once per lab, `keystone-manage
  db_sync` and `bootstrap` (admin password: the `keystone_admin` secret; endpoints on the
  VIPs) on the first node, through the rendered keystone.conf (database on the VIP).
- `rpc_service`: the RPC service on its nodes once the RabbitMQ cluster is complete, so its
  quorum queues get every member.

`keystone_health` is what `status` reports: GET /v3 on every node and on the VIP, from the
client node (the host never speaks on the lab's bridge).
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hastack.deploy import fernet
from hastack.deploy.files import read_secrets
from hastack.deploy.lab import components
from hastack.deploy.lab.lab import Lab, LabNode, listening_ports, wait_until
from hastack.deploy.lab.names import CLIENT
from hastack.deploy.lab.nodes import install_file, node_path
from hastack.deploy.lab.programs import RPC_SERVICE, python_available
from hastack.deploy.lab.report import Steps
from hastack.deploy.lab.run import nsenter, run, tail
from hastack.errors import LabError
from hastack.render.openstack import KEYSTONE_ADMIN_SECRET
from hastack.render.rpcservice import service_nodes

KEYSTONE = "keystone"
CLOUD_NAME = "hastack-lab"
CLOUDS_YAML = "clouds.yaml"                    # in the state dir, 0600
CLIENT_CLOUDS_YAML = "/etc/openstack/clouds.yaml"  # where openstacksdk looks, in the client
REGION = "RegionOne"
DB_SYNC_DONE = "keystone-db-sync.done"
BOOTSTRAP_DONE = "keystone-bootstrap.done"
MANAGE_OVERRIDE = "/run/hastack/keystone-manage.conf"
DATABASE_TIMEOUT_S = 120
KEYSTONE_START_TIMEOUT_S = 90
MANAGE_ATTEMPTS = 3


def _members(lab: Lab, process: str) -> list[LabNode]:
    return [lab.nodes[n] for n in lab.plan.nodes_running(process) if n in lab.nodes]


def _running(node: LabNode, program: str) -> bool:
    return node.supervisor.states().get(program) == "RUNNING"


def _parallel(func: Callable[[LabNode], list[str]], nodes: list[LabNode]) -> list[str]:
    if not nodes:
        return []
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        return [a for result in pool.map(func, nodes) for a in result]


def _identity_port(lab: Lab) -> int:
    for port in lab.plan.catalog.process(KEYSTONE).ports:
        if port.name == "identity":
            return port.port
    raise LabError("catalog: keystone has no port 'identity'")


def keystone_url(lab: Lab, vip: str = "internal", node: str | None = None) -> str:
    """http://<VIP or node address>:5000/v3."""
    vips = dict(lab.cloud.vips.items())
    host = lab.cloud.node(node).ip if node else vips.get(vip, lab.cloud.vips.internal)
    return f"http://{host}:{_identity_port(lab)}/v3"


# --- keys --------------------------------------------------------------------------------


def sync_keys(lab: Lab, node: LabNode) -> bool:
    """Make the node's key repositories exact copies of the state dir's; True if changed."""
    changed = False
    for name, path in fernet.REPOSITORIES.items():
        keys = fernet.read_keys(fernet.keys_dir(lab.state) / name)
        for index, data in keys.items():
            changed |= install_file(node.pid, f"{path}{index}", data, 0o600, "root")
        target = node_path(node.pid, path)
        target.chmod(0o700)
        for stale in target.iterdir():
            if stale.name.isdigit() and int(stale.name) not in keys:
                stale.unlink()
                changed = True
    return changed


def rotate_keys(lab: Lab) -> dict[str, Any]:
    """Rotate the Fernet token keys in the state dir and copy them to every Keystone node.

    Safe while Keystone serves: the new primary was the staged key every node already had."""
    repo = fernet.keys_dir(lab.state) / "fernet-keys"
    if not fernet.read_keys(repo):
        raise LabError(f"no Fernet keys in {repo}: bring the lab up first")
    primary = fernet.rotate(repo)
    members = _members(lab, KEYSTONE)
    synced = [n.name for n in members if sync_keys(lab, n)]
    return {"primary": primary, "keys": sorted(fernet.read_keys(repo)), "synced": synced,
            "nodes": [n.name for n in members]}


# --- clouds.yaml -------------------------------------------------------------------------


def clouds_yaml_text(lab: Lab, password: str) -> str:
    """openstacksdk's clouds.yaml for the admin user, through the internal VIP (JSON is YAML,
    and json.dumps quotes any password safely)."""
    auth = {"auth_url": keystone_url(lab), "username": "admin", "password": password,
            "project_name": "admin", "user_domain_name": "Default",
            "project_domain_name": "Default"}
    cloud = {"auth": auth, "region_name": REGION, "identity_api_version": 3,
             "interface": "internal"}
    return ("# Written by hastack's lab: the admin of cloud "
            f"{lab.cloud.name}, through the internal VIP. Keep private.\n"
            + json.dumps({"clouds": {CLOUD_NAME: cloud}}, indent=2) + "\n")


def clouds_yaml_path(lab: Lab) -> Path:
    return lab.state / CLOUDS_YAML


def _write_clouds_yaml(lab: Lab) -> bool:
    password = read_secrets(lab.state).get(KEYSTONE_ADMIN_SECRET)
    if password is None:
        raise LabError(f"no '{KEYSTONE_ADMIN_SECRET}' secret in {lab.state}: render first")
    text = clouds_yaml_text(lab, password).encode()
    path = clouds_yaml_path(lab)
    changed = not path.exists() or path.read_bytes() != text
    if changed:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text)
    path.chmod(0o600)
    client = lab.nodes.get(CLIENT)
    if client is not None:
        changed |= install_file(client.pid, CLIENT_CLOUDS_YAML, text, 0o600, "root")
    return changed


# --- keystone-manage ---------------------------------------------------------------------


def _direct_database(lab: Lab, node: LabNode) -> LabNode:
    """Write a keystone-manage override into `node` that reaches one Primary Galera member
    directly, and return that member.

    During a cold bring-up the joiners' state transfers run while Keystone's schema is made;
    HAProxy's Galera check takes the donor out of rotation and cuts its sessions, which
    leaves the one-revision initial migration half done (tables exist, no version: every
    rerun fails). A member keeps serving its own connections while it donates, so the
    one-time migration and bootstrap talk to it directly; the services keep the VIP."""
    members = [lab.nodes[n] for n in lab.plan.nodes_running("mariadb-galera")
               if n in lab.nodes]
    for member in members:
        status = components.wsrep_status(member)
        if (status.get("wsrep_cluster_status") == "Primary" and status.get(
                "wsrep_local_state_comment") in ("Synced", "Donor/Desynced")):
            break
    else:
        raise LabError("Keystone: no Primary Galera member to create the schema on")
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(lab.rendered(node.name, "etc/keystone/keystone.conf") or "")
    parts = urlsplit(ini["database"]["connection"])
    netloc = parts.netloc.replace(f"@{parts.hostname}:", f"@{member.address.interface.ip}:")
    url = urlunsplit(parts._replace(netloc=netloc))
    install_file(node.pid, MANAGE_OVERRIDE,
                 f"# hastack lab: one-time schema work on {member.name} directly\n"
                 f"[database]\nconnection = {url}\n".encode(), 0o600, "root")
    return member


def _reset_database(member: LabNode) -> None:
    """A fresh Keystone database again, after a migration that stopped half-way (only
    before the first successful db_sync: nothing else is in it)."""
    components.mysql(member, "DROP DATABASE IF EXISTS keystone; CREATE DATABASE keystone "
                  "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")


def _manage(node: LabNode, args: list[str], env: dict[str, str] | None = None,
            timeout: float = 180, before_retry: Callable[[], None] | None = None) -> None:
    """keystone-manage inside a node: the node's rendered keystone.conf, then the override
    of `_direct_database`."""
    argv = nsenter(node.pid, [str(Path(sys.executable).parent / "keystone-manage"),
                              "--config-file", "/etc/keystone/keystone.conf",
                              "--config-file", MANAGE_OVERRIDE, *args])
    last = ""
    for attempt in range(MANAGE_ATTEMPTS):
        if attempt and before_retry is not None:
            before_retry()
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                    env={**os.environ, **(env or {})}, check=False)
        except subprocess.TimeoutExpired:
            last = f"did not finish within {timeout:g} s"
            continue
        if result.returncode == 0:
            return
        last = tail(result)
    raise LabError(f"{node.name}: keystone-manage {args[0]} failed: {last}")


def _once(lab: Lab, marker: str, node: LabNode, steps: Steps, action: str,
          args: list[str], env: dict[str, str] | None = None,
          before_retry: Callable[[], None] | None = None) -> list[str]:
    done = lab.state / marker
    if done.exists():
        return []
    with steps.timed(node.name, KEYSTONE, action):
        _manage(node, args, env, before_retry=before_retry)
    done.write_text(f"keystone-manage {args[0]} ran once; delete to run it again\n")
    return [f"{node.name}: keystone-manage {args[0]}"]


def _bootstrap_args(lab: Lab) -> list[str]:
    internal = keystone_url(lab, "internal")
    public = keystone_url(lab, "public") if lab.cloud.vips.public else internal
    return ["bootstrap", "--bootstrap-username", "admin",
            "--bootstrap-project-name", "admin", "--bootstrap-role-name", "admin",
            "--bootstrap-service-name", KEYSTONE, "--bootstrap-region-id", REGION,
            "--bootstrap-admin-url", internal, "--bootstrap-internal-url", internal,
            "--bootstrap-public-url", public]


# --- the chains --------------------------------------------------------------------------


def keystone(lab: Lab, steps: Steps, database_ready: Callable[[], bool]) -> list[str]:
    """Keys, clouds.yaml, gunicorn on every node, db_sync and bootstrap once."""
    members = _members(lab, KEYSTONE)
    if not members or not python_available(KEYSTONE):
        return []
    actions: list[str] = []
    made = fernet.ensure_all(lab.state)
    if made:
        actions.append("generated Keystone key repositories " + ", ".join(made))
    with steps.timed("-", KEYSTONE, "key repositories, clouds.yaml"):
        for node in members:
            if sync_keys(lab, node):
                actions.append(f"{node.name}: Keystone keys copied")
        if _write_clouds_yaml(lab):
            actions.append(f"wrote {clouds_yaml_path(lab)} ({CLOUD_NAME})")
    todo = [n for n in members if not _running(n, KEYSTONE)]
    fresh = not (lab.state / BOOTSTRAP_DONE).exists()
    if not todo and not fresh:
        return actions
    with steps.timed("-", KEYSTONE, "wait: Keystone database created"):
        if not wait_until(database_ready, DATABASE_TIMEOUT_S, 0.2):
            raise LabError("Keystone: the Galera init SQL did not run "
                           f"within {DATABASE_TIMEOUT_S} s (no database to sync)")
    port = _identity_port(lab)

    def start(node: LabNode) -> list[str]:
        with steps.timed(node.name, KEYSTONE, "start gunicorn"):
            node.supervisor.start(KEYSTONE)
        with steps.timed(node.name, KEYSTONE, f"listening on :{port}"):
            _wait_listening(node, KEYSTONE, port, KEYSTONE_START_TIMEOUT_S)
        return [f"{node.name}: started keystone"]

    # gunicorn answers /v3 without the database: start it while the schema is made.
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = pool.submit(_parallel, start, todo)
        first = members[0]
        if fresh:
            member = _direct_database(lab, first)
            actions += _once(lab, DB_SYNC_DONE, first, steps, f"db_sync (on {member.name})",
                             ["db_sync"], before_retry=lambda: _reset_database(member))
            password = read_secrets(lab.state)[KEYSTONE_ADMIN_SECRET]
            actions += _once(lab, BOOTSTRAP_DONE, first, steps,
                             "bootstrap (admin, endpoints)", _bootstrap_args(lab),
                             env={"OS_BOOTSTRAP_PASSWORD": password})
        actions += started.result()
    return actions


def rpc_service(lab: Lab, steps: Steps, rabbitmq: Future[list[str]]) -> list[str]:
    """The RPC service on every node of its renderer, once RabbitMQ is clustered."""
    members = [lab.nodes[n] for n in service_nodes(lab.plan) if n in lab.nodes]
    if not members or not python_available(RPC_SERVICE):
        return []
    todo = [n for n in members if not _running(n, RPC_SERVICE)]
    if not todo:
        return []
    try:
        rabbitmq.result()
    except LabError:
        return []      # reported by the RabbitMQ chain itself

    def start(node: LabNode) -> list[str]:
        with steps.timed(node.name, RPC_SERVICE, "start (oslo.messaging server)"):
            node.supervisor.start(RPC_SERVICE)
        return [f"{node.name}: started {RPC_SERVICE}"]

    return _parallel(start, todo)


def _wait_listening(node: LabNode, program: str, port: int, timeout: float) -> None:
    def ready() -> bool:
        state = node.supervisor.states().get(program)
        if state in ("FATAL", "EXITED", "STOPPED"):
            raise LabError(f"{node.name}: {program} is {state}: "
                           f"{node.supervisor.log_tail(program)}")
        return port in listening_ports(node.pid)
    if not wait_until(ready, timeout, 0.1):
        raise LabError(f"{node.name}: {program} not listening on :{port} after {timeout:g} s: "
                       f"{node.supervisor.log_tail(program)}")


# --- health --------------------------------------------------------------------------------

# Runs in the client node's network namespace: GET every URL at once, one JSON line each.
_PROBE = """
import json, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
def get(url):
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            status, detail = r.status, ""
    except urllib.error.HTTPError as e:
        status, detail = e.code, str(e.reason)
    except Exception as e:
        status, detail = None, f"{type(e).__name__}: {e}"[:80]
    return {"url": url, "status": status, "detail": detail,
            "ms": round((time.monotonic() - t0) * 1000, 1)}
with ThreadPoolExecutor(len(sys.argv) - 1) as pool:
    for r in pool.map(get, sys.argv[1:]):
        print(json.dumps(r))
"""


def keystone_health(lab: Lab) -> dict[str, Any] | None:
    """GET /v3 on every Keystone node and on the internal VIP, from the client node."""
    if not lab.plan.runs(KEYSTONE):
        return None
    nodes = list(lab.plan.nodes_running(KEYSTONE))
    urls = {n: keystone_url(lab, node=n) for n in nodes}
    urls["vip"] = keystone_url(lab)
    client = lab.nodes.get(CLIENT)
    results: dict[str, dict[str, Any]] = {}
    if client is not None and python_available(KEYSTONE):
        out = run(nsenter(client.pid, [sys.executable, "-c", _PROBE, *urls.values()],
                          namespaces=("-n",)), check=False, timeout=10)
        by_url = {}
        for line in out.stdout.splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            by_url[row["url"]] = row
        for name, url in urls.items():
            row = by_url.get(url, {"status": None, "detail": "no probe result", "ms": None})
            status = row["status"]
            results[name] = {"healthy": status is not None and 200 <= status < 400,
                             "status": status, "detail": row["detail"], "ms": row["ms"]}
    else:
        reason = "no client node" if client is None else "keystone is not installed"
        results = {name: {"healthy": False, "status": None, "detail": reason, "ms": None}
                   for name in urls}
    vip = results.pop("vip")
    return {"nodes": results, "vip": vip, "url": urls["vip"]}
