"""cloud.yaml: the minimum contract loads, and every bad input gets one line with file:line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hastack.errors import CloudFileError
from hastack.model import parse_cloud
from hastack.model.cloud import Architecture, Role

CONTRACT = """\
name: demo
architecture: keepalived            # keepalived | pacemaker
nodes:
  - {name: ctl1, address: 198.18.0.11, roles: [controller]}
  - {name: ctl2, address: 198.18.0.12, roles: [controller]}
  - {name: ctl3, address: 198.18.0.13, roles: [controller]}
vips:
  internal: 198.18.0.100
  public: 198.18.0.101               # optional
services: [keystone, glance, nova, neutron, cinder, horizon, heat, ceilometer, swift]
settings:                            # every knob has a safe default
  neutron: {dhcp_agents_per_network: 2, l3_ha: true, max_l3_agents_per_router: 3,
            min_l3_agents_per_router: 2, allow_automatic_l3agent_failover: true}
  cinder: {backend: ceph}            # lvm | ceph | nfs | ...
  galera: {writers: 1, arbitrator: null}   # arbitrator: a node name running garbd
  rabbitmq: {queues: quorum}         # quorum | mirrored
  nova: {hypervisor: kvm}            # kvm | vmware
  pacemaker: {fencing: none}         # none | ipmi | lab  (none is flagged wherever A/P runs)
"""

MINIMAL = """\
name: tiny
nodes:
  - {name: a, address: 198.18.0.1, roles: [controller]}
vips: {internal: 198.18.0.100}
"""


def test_the_issue_contract_loads_exactly() -> None:
    cloud = parse_cloud(CONTRACT)
    assert cloud.name == "demo"
    assert cloud.architecture is Architecture.keepalived
    assert [n.name for n in cloud.nodes] == ["ctl1", "ctl2", "ctl3"]
    assert cloud.nodes[0].roles == (Role.controller,)
    assert str(cloud.vips.internal) == "198.18.0.100"
    assert str(cloud.vips.public) == "198.18.0.101"
    assert "swift" in cloud.services
    assert cloud.settings.neutron.max_l3_agents_per_router == 3
    assert cloud.settings.galera.arbitrator is None
    assert cloud.settings.pacemaker.fencing == "none"


def test_every_setting_has_a_safe_default() -> None:
    cloud = parse_cloud(MINIMAL)
    s = cloud.settings
    assert s.neutron.dhcp_agents_per_network == 2
    assert s.neutron.l3_ha is True
    assert s.galera.writers == 1
    assert s.rabbitmq.queues == "quorum"
    assert s.cinder.backend == "ceph"
    assert s.failover.target_seconds == 2.0
    assert cloud.vips.public is None


def test_address_prefix_defaults_to_24_and_can_be_given() -> None:
    cloud = parse_cloud(MINIMAL.replace("198.18.0.1,", "198.18.0.1/16,"))
    assert str(cloud.nodes[0].address.network) == "198.18.0.0/16"
    assert str(parse_cloud(MINIMAL).nodes[0].address.network) == "198.18.0.0/24"


def test_the_model_is_immutable() -> None:
    cloud = parse_cloud(MINIMAL)
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        cloud.name = "other"  # type: ignore[misc]


def _problems(text: str) -> list[str]:
    with pytest.raises(CloudFileError) as info:
        parse_cloud(text, "cloud.yaml")
    return info.value.lines()


BAD_INPUTS = [
    # (what, text transformation, expected line, expected fragment)
    ("malformed YAML", lambda t: t.replace("vips:\n", "vips: [\n"), None, "malformed YAML"),
    ("unknown top-level key", lambda t: t + "servises: [nova]\n", 19,
     "unknown key 'servises' (did you mean 'services'?)"),
    ("unknown settings key", lambda t: t.replace("  cinder:", "  cindr:"), 14,
     "settings.cindr: unknown key 'cindr' (did you mean 'cinder'?)"),
    ("unknown node key", lambda t: t.replace("roles: [controller]}\n  - {name: ctl2",
                                             "role: [controller]}\n  - {name: ctl2"), 4,
     "unknown key 'role' (did you mean 'roles'?)"),
    ("unknown role", lambda t: t.replace("ctl2, address: 198.18.0.12, roles: [controller]",
                                         "ctl2, address: 198.18.0.12, roles: [controler]"), 5,
     "nodes[1].roles[0]: unknown role 'controler' (did you mean 'controller'?)"),
    ("unknown service", lambda t: t.replace("horizon,", "horizn,"), 10,
     "unknown service 'horizn' (did you mean 'horizon'?)"),
    ("unknown architecture", lambda t: t.replace("architecture: keepalived",
                                                 "architecture: keepalive"), 2,
     "unknown architecture 'keepalive' (did you mean 'keepalived'?)"),
    ("duplicate node name", lambda t: t.replace("name: ctl3", "name: ctl1"), 6,
     "nodes[2].name: duplicate node name 'ctl1'"),
    ("duplicate address", lambda t: t.replace("198.18.0.13", "198.18.0.12"), 6,
     "nodes[2].address: duplicate address 198.18.0.12"),
    ("VIP equal to a node address", lambda t: t.replace("internal: 198.18.0.100",
                                                        "internal: 198.18.0.12"), 8,
     "vips.internal: VIP 198.18.0.12 is the address of node 'ctl2'"),
    ("VIP outside every subnet", lambda t: t.replace("public: 198.18.0.101",
                                                     "public: 198.19.7.101"), 9,
     "vips.public: VIP 198.19.7.101 is outside every node's subnet"),
    ("arbitrator not a node", lambda t: t.replace("arbitrator: null", "arbitrator: ctl4"), 15,
     "settings.galera.arbitrator: arbitrator 'ctl4' is not a node"),
    ("bad address", lambda t: t.replace("198.18.0.11", "198.18.0.300"), 4,
     "nodes[0].address: '198.18.0.300/24' is not an IPv4 address"),
    ("missing key", lambda t: t.replace("vips:\n  internal: 198.18.0.100\n", "vips:\n"), 7,
     "vips.internal: required key is missing"),
    ("wrong type", lambda t: t.replace("writers: 1", "writers: many"), 15,
     "settings.galera.writers:"),
    ("duplicate YAML key", lambda t: t + "name: again\n", None, "malformed YAML"),
]


@pytest.mark.parametrize("what,change,line,fragment", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_names_file_line_and_key(what, change, line, fragment) -> None:
    problems = _problems(change(CONTRACT))
    match = [p for p in problems if fragment in p]
    assert match, f"{what}: {fragment!r} not in {problems}"
    assert match[0].startswith("cloud.yaml:")
    if line is not None:
        assert match[0].startswith(f"cloud.yaml:{line}:"), match[0]


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = CONTRACT.replace("name: ctl3", "name: ctl1").replace("arbitrator: null",
                                                                "arbitrator: nobody")
    problems = _problems(text)
    assert any("duplicate node name" in p for p in problems)
    assert any("arbitrator 'nobody'" in p for p in problems)


def test_a_failed_item_does_not_also_blame_its_list() -> None:
    problems = _problems(CONTRACT.replace("roles: [controller]}\n  - {name: ctl3",
                                          "roles: [nope]}\n  - {name: ctl3"))
    assert len([p for p in problems if "nodes[1].roles" in p]) == 1


def test_cli_reports_bad_input_in_one_line_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "cloud.yaml"
    bad.write_text(CONTRACT.replace("[controller]}\n  - {name: ctl3",
                                    "[controler]}\n  - {name: ctl3"))
    result = subprocess.run([sys.executable, "-m", "hastack.cli", "check", str(bad)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert f"{bad}:5: nodes[1].roles[0]: unknown role 'controler'" in lines[0]


def test_cli_reports_a_missing_file_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "hastack.cli", "plan",
                             str(tmp_path / "nope.yaml")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "cannot read" in result.stderr


@pytest.mark.parametrize("example", ["demo", "pacemaker", "split-roles", "broken"])
def test_fast_and_line_tracking_parsers_agree(example: str) -> None:
    from hastack.model.cloud import Cloud
    from hastack.model.load import _fast_parse, _parse_yaml, _plain
    from tests.conftest import EXAMPLES

    text = (EXAMPLES / f"{example}.yaml").read_text()
    fast = _fast_parse(text)
    assert fast is not None
    assert Cloud.model_validate(fast) == Cloud.model_validate(_plain(_parse_yaml(text, "x")))


def test_yaml_1_1_booleans_are_not_guessed() -> None:
    # 'no' is a string in YAML 1.2 (and a valid node name), not False.
    cloud = parse_cloud(MINIMAL.replace("name: a,", "name: no,"))
    assert cloud.nodes[0].name == "no"
