"""Acceptance on the real lab: Keystone behind the VIP on every controller.

Scenarios:
- a client gets a token through the VIP (HAProxy, GET /v3 health check, every controller);
- a token issued by ctl1 validates on ctl3 (one Fernet key repository, copied), also after a
  key rotation;
- `openstack --os-cloud hastack-lab token issue` works from the client node (clouds.yaml:
  https on the public VIP, trusting the cloud's CA); plain http on the public VIP serves
  nothing, and Keystone's links there say https (X-Forwarded-Proto honoured).

Needs root and `pip install -e .[test]` with Keystone; without Keystone the lab does not run
it and these tests are skipped with that reason. The lab is the demo cloud, shared with the
chaos and demo modules (tests.labs.shared_demo_lab).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hastack.deploy import lab
from hastack.deploy.deployer import Summary
from hastack.deploy.files import read_secrets
from hastack.deploy.lab.state import state_dir
from hastack.model import load_cloud
from tests.labs import shared_demo_lab

CLOUD_NAME = "demo"

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (namespaces, links, mounts)"),
    pytest.mark.skipif(importlib.util.find_spec("keystone") is None,
                       reason="Keystone is not installed (pip install -e .[test])"),
]

# Issue a token at one URL, validate it at another: run inside the client node.
_ISSUE_VALIDATE = """
import json, sys, urllib.request
issue_url, check_url, password = sys.argv[1], sys.argv[2], sys.stdin.read().strip()
body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
    "name": "admin", "domain": {"name": "Default"}, "password": password}}},
    "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}).encode()
req = urllib.request.Request(issue_url + "/auth/tokens", data=body, method="POST",
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=60) as r:
    token = r.headers["X-Subject-Token"]
    issued = r.status
req = urllib.request.Request(check_url + "/auth/tokens", method="GET",
                             headers={"X-Auth-Token": token, "X-Subject-Token": token})
with urllib.request.urlopen(req, timeout=60) as r:
    doc = json.load(r)
print(json.dumps({"issued": issued, "validated": r.status,
                  "user": doc["token"]["user"]["name"]}))
"""


@pytest.fixture(scope="module")
def kslab() -> Iterator[tuple[Summary, Path]]:
    with shared_demo_lab() as shared:
        assert shared.summary is not None
        yield shared.summary, Path(shared.cloud_file)


def _url(address: str) -> str:
    return f"http://{address}:5000/v3"


def _issue_validate(issue_at: str, check_at: str) -> dict[str, object]:
    password = read_secrets(state_dir(CLOUD_NAME))["keystone_admin"]
    result = lab.run_in(CLOUD_NAME, "client", [sys.executable, "-c", _ISSUE_VALIDATE,
                                              _url(issue_at), _url(check_at)],
                        input=password, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_keystone_healthy_on_every_controller(kslab: tuple[Summary, Path]) -> None:
    summary, _ = kslab
    assert summary.healthy, summary.status.anomalies
    status = summary.status.to_json()
    keystone = status["keystone"]
    assert set(keystone["nodes"]) == {"ctl1", "ctl2", "ctl3"}
    assert all(n["healthy"] for n in keystone["nodes"].values()), keystone
    assert keystone["vip"]["healthy"]
    servers = status["haproxy"]["backends"]["keystone"]
    assert all(str(s["status"]).startswith("UP") for s in servers.values()), servers
    clouds = Path(status["clouds_yaml"])
    assert clouds.exists() and (clouds.stat().st_mode & 0o777) == 0o600


def test_token_issue_through_the_vip(kslab: tuple[Summary, Path]) -> None:
    vip = load_cloud(kslab[1]).vips.internal
    result = _issue_validate(str(vip), str(vip))
    assert result == {"issued": 201, "validated": 200, "user": "admin"}


def test_token_issued_on_ctl1_validates_on_ctl3_also_after_rotation(
        kslab: tuple[Summary, Path]) -> None:
    from hastack.deploy.lab.lab import Lab
    from hastack.deploy.systems.keystone import rotate_keys

    cloud = load_cloud(kslab[1])
    ctl1, ctl3 = (str(cloud.node(n).ip) for n in ("ctl1", "ctl3"))
    assert _issue_validate(ctl1, ctl3)["validated"] == 200
    handle = Lab(cloud, str(kslab[1]))
    handle.render(write=False)
    handle.attach_running()
    rotated = rotate_keys(handle.site())
    assert rotated["primary"] == 2 and rotated["keys"] == [0, 1, 2]
    assert _issue_validate(ctl1, ctl3)["validated"] == 200
    assert _issue_validate(ctl3, ctl1)["validated"] == 200


def test_openstack_cli_token_issue_from_the_client_node(kslab: tuple[Summary, Path]) -> None:
    result = lab.run_in(CLOUD_NAME, "client", [
        str(Path(sys.executable).parent / "openstack"), "--os-cloud", "hastack-lab",
        "token", "issue", "-f", "json"], timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    token = json.loads(result.stdout)
    assert token["id"] and token["project_id"]


# From the client: the public VIP over https with the CA, without it, and over plain http.
_PUBLIC_VIP = """
import json, ssl, sys, urllib.request
vip, cafile = sys.argv[1], sys.argv[2]
def get(url, context=None):
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as r:
            return {"status": r.status, "href": json.load(r)["version"]["links"][0]["href"]}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}
print(json.dumps({
    "with_ca": get(f"https://{vip}:5000/v3", ssl.create_default_context(cafile=cafile)),
    "without_ca": get(f"https://{vip}:5000/v3", ssl.create_default_context()),
    "plain_http": get(f"http://{vip}:5000/v3"),
}))
"""


def test_public_vip_serves_keystone_over_https_only(kslab: tuple[Summary, Path]) -> None:
    from hastack.deploy.systems.keystone import CLIENT_CA, CLIENT_CLOUDS_YAML

    vip = str(load_cloud(kslab[1]).vips.public)
    result = lab.run_in(CLOUD_NAME, "client", [sys.executable, "-c", _PUBLIC_VIP, vip,
                                              CLIENT_CA], timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["with_ca"] == {"status": 200, "href": f"https://{vip}:5000/v3/"}, seen
    assert "CERTIFICATE_VERIFY_FAILED" in seen["without_ca"].get("error", ""), seen
    assert "status" not in seen["plain_http"], seen            # no API over plain http
    clouds = lab.run_in(CLOUD_NAME, "client", ["cat", CLIENT_CLOUDS_YAML], timeout=30).stdout
    assert f'"auth_url": "https://{vip}:5000/v3"' in clouds
    assert f'"cacert": "{CLIENT_CA}"' in clouds
