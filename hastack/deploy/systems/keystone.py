"""Keystone behind the VIP on every controller: keys, clouds.yaml, gunicorn, db_sync and
bootstrap once, and the health probe `status` reports.

Stage 5 (deploy), one system, written only against `NodeExec`:

- the Fernet and credential key repositories are made once in the state dir and copied whole
  to every Keystone node (`sync_keys`; `rotate_keys` for `hastack keys rotate`);
- `clouds.yaml` (state dir, 0600, and the client's /etc/openstack): through the public VIP
  over https, trusting the cloud's CA (written beside it), when the cloud has TLS there;
- once Galera has a Primary component with Keystone's database (the `galera-primary`
  milestone): gunicorn on every node not running it, and, once per deployment,
  `keystone-manage db_sync` and `bootstrap` (admin password: the `keystone_admin` secret;
  endpoints on the VIPs) on the first node.

`health` is GET /v3 on every node and on the VIP, from the client (the machine hastack runs on
never speaks on the cloud's network itself).
"""

from __future__ import annotations

import configparser
import json
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hastack.deploy import fernet
from hastack.deploy.base import NodeExec
from hastack.deploy.files import read_secrets
from hastack.deploy.site import Site, running
from hastack.deploy.systems import galera, parallel, python_package_installed, wait_listening
from hastack.errors import LabError
from hastack.render.openstack import KEYSTONE_ADMIN_SECRET, REGION
from hastack.render.tls import ca_certificate

PROCESS = SERVICE = "keystone"
CLOUD_NAME = "hastack-lab"
CLOUDS_YAML = "clouds.yaml"                        # in the state dir, 0600
CLIENT_CLOUDS_YAML = "/etc/openstack/clouds.yaml"  # where openstacksdk looks, on the client
CLIENT_CA = "/etc/openstack/hastack-ca.pem"        # the cloud's CA, on the client
CA_FILE = "ca.pem"                                 # the same, in the state dir
KEYSTONE_CONF = "/etc/keystone/keystone.conf"
DB_SYNC_DONE = "keystone-db-sync.done"
BOOTSTRAP_DONE = "keystone-bootstrap.done"
MANAGE_OVERRIDE = "/run/hastack/keystone-manage.conf"
START_TIMEOUT_S = 90
MANAGE_ATTEMPTS = 3
MANAGE_TIMEOUT_S = 180


PYTHON_PACKAGE = "keystone"      # from PyPI, in the project's venv (the `lab` extra)


def installed() -> bool:
    return python_package_installed(PYTHON_PACKAGE)


def url(site: Site, vip: str = "internal", node: str | None = None) -> str:
    """http(s)://<VIP or node address>:<identity port>/v3: https on the public VIP when
    HAProxy terminates TLS there."""
    vips = dict(site.cloud.vips.items())
    host = site.cloud.node(node).ip if node else vips.get(vip, site.cloud.vips.internal)
    tls = node is None and vip == "public" and vip in vips and site.cloud.public_tls
    return f"{'https' if tls else 'http'}://{host}:{site.plan.port(PROCESS, 'identity')}/v3"


def api_url(site: Site, process: str, port_name: str, path: str = "",
            vip: str = "internal") -> str:
    """http(s)://<VIP>:<the API's port><path>: https on the public VIP when HAProxy
    terminates TLS there; an API with no public frontend answers on the internal VIP only."""
    vips = dict(site.cloud.vips.items())
    public = vip == "public" and "public" in vips and any(
        "public" in f.vips for f in site.plan.frontends if f.process == process)
    host = vips["public"] if public else site.cloud.vips.internal
    tls = public and site.cloud.public_tls
    return f"{'https' if tls else 'http'}://{host}:{site.plan.port(process, port_name)}{path}"


# --- registering the other services -------------------------------------------------------

# The registration itself is an agent (`hastack.agents.keystone_register`): the lab runs it on
# its client with the admin's clouds.yaml, the Ansible roles on a host of the service.
REGISTER_AGENT = "hastack.agents.keystone_register"


def register_service(site: Site, request: dict[str, Any]) -> None:
    """A service's Keystone user (admin in project `service`), its catalog entries and their
    endpoints (`request`: `hastack.agents.keystone_register`'s, passwords included), through
    the VIP as the admin, from the client."""
    if site.client is None:
        raise LabError(f"registering {request['user']} in Keystone needs the client node")
    body = json.dumps({"cloud": CLOUD_NAME, **request})
    last = ""
    for _ in range(MANAGE_ATTEMPTS):
        result = site.client.run([sys.executable, "-m", REGISTER_AGENT], input=body,
                                 timeout=MANAGE_TIMEOUT_S, check=False)
        if result.returncode == 0:
            return
        last = " | ".join((result.stderr or result.stdout).strip().splitlines()[-2:])
    raise LabError(f"registering {request['user']} in Keystone failed: {last}")


# --- keys --------------------------------------------------------------------------------


def sync_keys(site: Site, node: NodeExec) -> bool:
    """Make the node's key repositories exact copies of the state dir's; True if changed."""
    changed = False
    for name, path in fernet.REPOSITORIES.items():
        keys = fernet.read_keys(fernet.keys_dir(site.state) / name)
        for index, data in keys.items():
            changed |= node.write(f"{path}{index}", data, 0o600, "root")
        node.chmod(path, 0o700)
        for stale in node.listdir(path):
            if stale.isdigit() and int(stale) not in keys:
                node.remove(f"{path}{stale}")
                changed = True
    return changed


def rotate_keys(site: Site) -> dict[str, Any]:
    """Rotate the Fernet token keys in the state dir and copy them to every Keystone node.

    Safe while Keystone serves: the new primary was the staged key every node already had."""
    repo = fernet.keys_dir(site.state) / "fernet-keys"
    if not fernet.read_keys(repo):
        raise LabError(f"no Fernet keys in {repo}: bring the lab up first")
    primary = fernet.rotate(repo)
    members = site.members(PROCESS)
    synced = [n.name for n in members if sync_keys(site, n)]
    return {"primary": primary, "keys": sorted(fernet.read_keys(repo)), "synced": synced,
            "nodes": [n.name for n in members]}


# --- clouds.yaml -------------------------------------------------------------------------


def clouds_yaml_text(site: Site, password: str, cacert: str | None = None) -> str:
    """openstacksdk's clouds.yaml for the admin user (JSON is YAML, and json.dumps quotes any
    password safely): through the public VIP over https, trusting `cacert`, when given;
    else through the internal VIP."""
    vip = "public" if cacert else "internal"
    auth = {"auth_url": url(site, vip), "username": "admin", "password": password,
            "project_name": "admin", "user_domain_name": "Default",
            "project_domain_name": "Default"}
    cloud: dict[str, Any] = {"auth": auth, "region_name": REGION, "identity_api_version": 3,
                             "interface": vip}
    if cacert:
        cloud["cacert"] = cacert
    return ("# Written by hastack: the admin of cloud "
            f"{site.cloud.name}, through the {vip} VIP. Keep private.\n"
            + json.dumps({"clouds": {CLOUD_NAME: cloud}}, indent=2) + "\n")


def clouds_yaml_path(site: Site) -> Path:
    return site.state / CLOUDS_YAML


def _write_clouds_yaml(site: Site) -> bool:
    secrets = read_secrets(site.state)
    password = secrets.get(KEYSTONE_ADMIN_SECRET)
    if password is None:
        raise LabError(f"no '{KEYSTONE_ADMIN_SECRET}' secret in {site.state}: render first")
    ca = ca_certificate(site.plan, secrets)
    changed = False
    if ca is not None:
        changed |= _write_local(site.state / CA_FILE, ca.encode(), 0o644)
    # The state dir's copy names the state dir's CA; the client's, the client's.
    local_ca = str(site.state / CA_FILE) if ca is not None else None
    changed |= _write_local(clouds_yaml_path(site),
                              clouds_yaml_text(site, password, local_ca).encode(), 0o600)
    if site.client is not None:
        if ca is not None:
            changed |= site.client.write(CLIENT_CA, ca.encode(), 0o644, "root")
        client_ca = CLIENT_CA if ca is not None else None
        changed |= site.client.write(CLIENT_CLOUDS_YAML,
                                     clouds_yaml_text(site, password, client_ca).encode(),
                                     0o600, "root")
    return changed


def _write_local(path: Path, data: bytes, mode: int) -> bool:
    """Write a file of this machine's state dir if it differs, created with `mode`."""
    changed = not path.exists() or path.read_bytes() != data
    if changed:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    path.chmod(mode)
    return changed


# --- keystone-manage ---------------------------------------------------------------------


def _direct_database(site: Site, node: NodeExec) -> NodeExec:
    """keystone-manage's override: Keystone's database on one Primary member directly."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(site.rendered(node.name, KEYSTONE_CONF) or "")
    return galera.direct_database(site, node, MANAGE_OVERRIDE, ini, ["database"])


def _reset_database(member: NodeExec) -> None:
    """A fresh Keystone database again, after a migration that stopped half-way (only
    before the first successful db_sync: nothing else is in it)."""
    galera.mysql(member, "DROP DATABASE IF EXISTS keystone; CREATE DATABASE keystone "
                         "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")


def _manage(node: NodeExec, args: list[str], env: dict[str, str] | None = None,
            before_retry: Callable[[], None] | None = None) -> None:
    """keystone-manage on a node: its rendered keystone.conf, then `_direct_database`'s
    override."""
    argv = [str(Path(sys.executable).parent / "keystone-manage"), "--config-file",
            KEYSTONE_CONF, "--config-file", MANAGE_OVERRIDE, *args]
    last = ""
    for attempt in range(MANAGE_ATTEMPTS):
        if attempt and before_retry is not None:
            before_retry()
        try:
            result = node.run(argv, env=env, timeout=MANAGE_TIMEOUT_S, check=False)
        except LabError as exc:      # did not finish in time
            last = str(exc)
            continue
        if result.returncode == 0:
            return
        last = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
    raise LabError(f"{node.name}: keystone-manage {args[0]} failed: {last}")


def _once(site: Site, marker: str, node: NodeExec, action: str, args: list[str],
          env: dict[str, str] | None = None,
          before_retry: Callable[[], None] | None = None) -> list[str]:
    if site.done(marker):
        return []
    with site.steps.timed(node.name, SERVICE, action):
        _manage(node, args, env, before_retry)
    site.mark_done(marker, f"keystone-manage {args[0]} ran once")
    return [f"{node.name}: keystone-manage {args[0]}"]


def bootstrap_args(site: Site) -> list[str]:
    """`keystone-manage bootstrap`'s arguments (admin, region, endpoints on the VIPs); the
    Ansible deployer passes the same ones to its keystone role."""
    return _bootstrap_args(site)


def _bootstrap_args(site: Site) -> list[str]:
    internal = url(site, "internal")
    public = url(site, "public") if site.cloud.vips.public else internal
    return ["bootstrap", "--bootstrap-username", "admin",
            "--bootstrap-project-name", "admin", "--bootstrap-role-name", "admin",
            "--bootstrap-service-name", SERVICE, "--bootstrap-region-id", REGION,
            "--bootstrap-admin-url", internal, "--bootstrap-internal-url", internal,
            "--bootstrap-public-url", public]


# --- bring-up ------------------------------------------------------------------------------


def prepare(site: Site) -> list[str]:
    """Keys and clouds.yaml: needs nothing but the nodes."""
    members = site.members(PROCESS)
    if not members or not installed():
        return []
    actions: list[str] = []
    made = fernet.ensure_all(site.state)
    if made:
        actions.append("generated Keystone key repositories " + ", ".join(made))
    with site.steps.timed("-", SERVICE, "key repositories, clouds.yaml"):
        for node in members:
            if sync_keys(site, node):
                actions.append(f"{node.name}: Keystone keys copied")
        if _write_clouds_yaml(site):
            actions.append(f"wrote {clouds_yaml_path(site)} ({CLOUD_NAME})")
    return actions


def bring_up(site: Site) -> list[str]:
    """gunicorn on every node, db_sync and bootstrap once (Galera has a Primary component
    with Keystone's database: the orchestrator waits for that)."""
    members = site.members(PROCESS)
    if not members or not installed():
        return []
    todo = [n for n in members if not running(n, SERVICE)]
    fresh = not site.done(BOOTSTRAP_DONE)
    if not todo and not fresh:
        return []
    port = site.plan.port(PROCESS, "identity")
    actions: list[str] = []

    def boot(node: NodeExec) -> list[str]:
        with site.steps.timed(node.name, SERVICE, "start gunicorn"):
            node.services.start(SERVICE)
        with site.steps.timed(node.name, SERVICE, f"listening on :{port}"):
            wait_listening(node, SERVICE, port, START_TIMEOUT_S, str(node.address.ip))
        return [f"{node.name}: started keystone"]

    # gunicorn answers /v3 without the database: start it while the schema is made.
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = pool.submit(parallel, boot, todo)
        first = members[0]
        if fresh:
            member = _direct_database(site, first)
            with galera.schema_change(site):
                actions += _once(site, DB_SYNC_DONE, first, f"db_sync (on {member.name})",
                                 ["db_sync"], before_retry=lambda: _reset_database(member))
            password = read_secrets(site.state)[KEYSTONE_ADMIN_SECRET]
            actions += _once(site, BOOTSTRAP_DONE, first, "bootstrap (admin, endpoints)",
                             _bootstrap_args(site), env={"OS_BOOTSTRAP_PASSWORD": password})
        actions += started.result()
    return actions


# --- health --------------------------------------------------------------------------------

# Runs on the client: GET every URL at once, one JSON line each.
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


@dataclass(frozen=True)
class HttpCheck:
    healthy: bool
    status: int | None
    detail: str
    ms: float | None

    def to_json(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "status": self.status, "detail": self.detail,
                "ms": self.ms}


@dataclass(frozen=True)
class KeystoneView:
    nodes: dict[str, HttpCheck]
    vip: HttpCheck
    url: str

    def to_json(self) -> dict[str, Any]:
        return {"nodes": {n: c.to_json() for n, c in self.nodes.items()},
                "vip": self.vip.to_json(), "url": self.url}


def health(site: Site) -> KeystoneView | None:
    """GET /v3 on every Keystone node and on the internal VIP, from the client."""
    if not site.plan.runs(PROCESS):
        return None
    urls = {n: url(site, node=n) for n in site.plan.nodes_running(PROCESS)}
    urls["vip"] = url(site)
    rows: dict[str, dict[str, Any]] = {}
    if site.client is not None and installed():
        out = site.client.run([sys.executable, "-c", _PROBE, *urls.values()], check=False,
                              timeout=10)
        for line in out.stdout.splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            rows[row["url"]] = row
        missing = "no probe result"
    else:
        missing = "no client node" if site.client is None else "keystone is not installed"
    checks = {}
    for name, address in urls.items():
        row = rows.get(address, {"status": None, "detail": missing, "ms": None})
        status = row["status"]
        checks[name] = HttpCheck(status is not None and 200 <= status < 400, status,
                                 row["detail"], row["ms"])
    vip = checks.pop("vip")
    return KeystoneView(checks, vip, urls["vip"])
