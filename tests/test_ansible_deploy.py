"""`hastack deploy`: the driver against a fake ansible-playbook, and the shipped playbook
checked by ansible-playbook --syntax-check and ansible-lint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from hastack.cli import cli
from hastack.deploy.ansible.driver import (
    PLAYBOOK,
    AnsibleDeploy,
    DeployError,
    parse_output,
    stage,
)
from hastack.deploy.ansible.inventory import InventoryError, inventory_yaml
from tests.conftest import EXAMPLES, example_plan
from tests.fakes import FakePlaybook

VENV_BIN = Path(sys.executable).parent


def _deploy(tmp_path: Path, playbook: FakePlaybook, example: str = "demo",
            **options: object) -> AnsibleDeploy:
    plan = example_plan(example)
    inventory = tmp_path / "inventory.yaml"
    if not inventory.exists():
        inventory.write_text(inventory_yaml(plan))
    return AnsibleDeploy(plan.cloud, plan, inventory, tmp_path / "state", runner=playbook,
                         **options)  # type: ignore[arg-type]


def _staged_inventory(state: Path) -> dict:
    return YAML(typ="safe").load((state / "stage" / "hastack-hosts.yaml").read_text())


# --- the driver ------------------------------------------------------------------------------

def test_deploy_runs_the_shipped_playbook_with_both_inventories(tmp_path: Path) -> None:
    playbook = FakePlaybook(changed={"ctl1": 40, "ctl2": 35, "ctl3": 35})
    summary = _deploy(tmp_path, playbook, check=True, diff=True, limit="ctl2").run()
    argv = playbook.calls[0]
    assert argv[argv.index(str(PLAYBOOK)) - 2:argv.index(str(PLAYBOOK))][0] == "-e"
    assert argv[1:5] == ["-i", str(tmp_path / "inventory.yaml"), "-i",
                         str(tmp_path / "state" / "stage" / "hastack-hosts.yaml")]
    assert argv[-4:] == ["--check", "--diff", "--limit", "ctl2"]
    assert playbook.envs[0]["ANSIBLE_ROLES_PATH"] == str(PLAYBOOK.parent / "roles")
    assert summary.ok
    assert summary.changed_hosts == ["ctl1", "ctl2", "ctl3"]


def test_second_deploy_of_an_unchanged_cloud_stages_nothing_new(tmp_path: Path) -> None:
    plan = example_plan("demo")
    state = tmp_path / "state"
    stage(plan, state)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in state.rglob("*") if p.is_file()}
    stage(plan, state)
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in state.rglob("*") if p.is_file()}
    assert after == before
    assert (state / "secrets.yaml").stat().st_mode & 0o777 == 0o600
    assert (state / "stage" / "secret-vars.yaml").stat().st_mode & 0o777 == 0o600


def test_staged_inventory_carries_each_hosts_files_packages_and_protocol_roles(
        tmp_path: Path) -> None:
    stage(example_plan("split-roles"), tmp_path / "state")
    inventory = _staged_inventory(tmp_path / "state")["all"]
    assert inventory["vars"]["hastack_galera_bootstrap"] == "db1"
    assert inventory["vars"]["hastack_rabbitmq_first"] == "mq1"
    assert inventory["vars"]["hastack_rabbitmq_nodenames"]["mq2"] == "rabbit@mq2"
    assert set(inventory["children"]["galera_members"]["hosts"]) == {"db1", "db2", "db3"}
    assert inventory["children"]["pacemaker"]["hosts"] == {}      # every play has a group
    db1 = inventory["hosts"]["db1"]
    assert "mariadb-server" in db1["hastack_packages"]
    assert "haproxy" not in db1["hastack_packages"]
    cnf = next(f for f in db1["hastack_files"]["galera"] if f["path"] == "etc/mysql/my.cnf")
    assert cnf == {"path": "etc/mysql/my.cnf", "mode": "0640", "owner": "mysql",
                   "group": "mysql", "secret": True, "restarts": ["mariadb", "galera-health"]}
    lb1 = inventory["hosts"]["lb1"]
    assert lb1["hastack_reloadable"] == ["haproxy", "keepalived"]
    staged = tmp_path / "state" / "stage" / "files" / "db1" / "etc" / "mysql" / "my.cnf"
    assert staged.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "state" / "stage" / "agents" / "hastack" / "agents" /
            "galera_health.py").exists()


def test_public_vip_certificate_is_placed_by_haproxy_as_a_secret(tmp_path: Path) -> None:
    stage(example_plan("demo"), tmp_path / "state")
    ctl1 = _staged_inventory(tmp_path / "state")["all"]["hosts"]["ctl1"]
    pem = next(f for f in ctl1["hastack_files"]["haproxy"] if f["path"].endswith(".pem"))
    assert pem["secret"] and pem["mode"] == "0600" and pem["restarts"] == ["haproxy"]


def test_openstack_services_are_registered_and_migrated_once_by_their_first_host(
        tmp_path: Path) -> None:
    plan = example_plan("demo")
    state = tmp_path / "state"
    stage(plan, state)
    inventory = _staged_inventory(state)["all"]
    nova = inventory["vars"]["hastack_openstack"]["nova"]
    assert nova["first"] == "ctl1"
    vip = plan.cloud.vips.internal
    assert [s["urls"]["internal"] for s in nova["register"]["services"]] == [
        f"http://{vip}:8774/v2.1"]
    # Heat: two catalog entries, and the domain of its stack users with its admin.
    heat = inventory["vars"]["hastack_openstack"]["heat"]["register"]
    assert [(s["type"], s["urls"]["internal"]) for s in heat["services"]] == [
        ("orchestration", f"http://{vip}:8004/v1/%(project_id)s"),
        ("cloudformation", f"http://{vip}:8000/v1")]
    assert heat["domain"]["name"] == "heat" and heat["roles"] == ["heat_stack_user"]
    assert inventory["vars"]["hastack_nova_compute_hosts"] == ["cmp1"]
    secret_vars = YAML(typ="safe").load((state / "stage" / "secret-vars.yaml").read_text())
    schema = secret_vars["hastack_openstack_secrets"]["nova"]["schema"]
    assert [argv[3:5] for argv in schema] == [["api_db", "sync"], ["cell_v2", "map_cell0"],
                                               ["cell_v2", "create_cell"], ["db", "sync"]]
    assert schema[0][:3] == ["/opt/hastack/venv/bin/nova-manage", "--config-file",
                             "/etc/nova/nova.conf"]
    # cell0's URL is nova's with its own database; the passwords stay in the secret file.
    secrets = YAML(typ="safe").load((state / "secrets.yaml").read_text())
    assert any(secrets["db_nova"] in arg and "/nova_cell0?" in arg for arg in schema[1])
    assert secret_vars["hastack_openstack_secrets"]["heat"]["register"] == {
        "password": secrets["service_heat"], "domain_password": secrets["heat_domain_admin"]}
    assert secrets["heat_domain_admin"] not in (state / "stage" / "hastack-hosts.yaml").read_text()
    hosts_text = (state / "stage" / "hastack-hosts.yaml").read_text()
    assert not [name for name, value in secrets.items()
                if isinstance(value, str) and len(value) >= 16 and value in hosts_text]


def test_each_openstack_host_starts_its_own_units_and_waits_for_its_apis(
        tmp_path: Path) -> None:
    stage(example_plan("demo"), tmp_path / "state")
    hosts = _staged_inventory(tmp_path / "state")["all"]["hosts"]
    ctl1, cmp1 = hosts["ctl1"], hosts["cmp1"]
    assert ctl1["hastack_role_units"]["nova"] == ["nova-api", "nova-metadata-api",
                                                   "nova-conductor", "nova-scheduler"]
    assert {"unit": "nova-api", "port": 8774} in ctl1["hastack_listen"]
    assert ctl1["hastack_wheel_files"]["nova"] == [
        {"src": "/opt/hastack/venv/etc/nova/api-paste.ini", "dest": "/etc/nova/api-paste.ini"}]
    assert "/var/lib/nova/instances" in ctl1["hastack_dirs"]["nova"]
    assert cmp1["hastack_role_units"]["nova"] == ["nova-compute"]
    assert cmp1["hastack_listen"] == [] and cmp1["hastack_wheel_files"]["nova"] == []
    assert "nova==34.0.0" in cmp1["hastack_pip"]


def test_host_pins_are_the_releases_the_lab_runs() -> None:
    """One release of each service: what `hastack deploy` installs is what the lab proved."""
    import tomllib

    from hastack.catalog.hosts import load_host_catalog

    root = Path(__file__).resolve().parent.parent
    lab = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["lab"]
    lab_pins = dict(p.split("==") for p in lab if "==" in p)
    host_pins = {pin.split("==")[0]: pin.split("==")[1]
                 for role in load_host_catalog().roles for spec in role.processes.values()
                 for pin in spec.pip if "==" in pin}
    assert host_pins == {k: v for k, v in lab_pins.items() if k in host_pins}
    assert set(host_pins) == {"keystone", "openstack-placement", "glance", "neutron", "nova",
                              "openstack-heat", "ceilometer"}


def test_files_of_processes_that_are_not_deployed_are_not_staged(tmp_path: Path) -> None:
    stage(example_plan("demo"), tmp_path / "state")
    files = tmp_path / "state" / "stage" / "files" / "ctl1"
    assert (files / "etc" / "keystone" / "keystone.conf").exists()
    assert (files / "etc" / "nova" / "nova.conf").exists()
    assert not (files / "etc" / "cinder" / "cinder.conf").exists()
    assert not (files / "etc" / "neutron" / "dhcp_agent.ini").exists()


def test_unreachable_host_is_one_line_and_the_summary_says_who_changed(tmp_path: Path) -> None:
    playbook = FakePlaybook(
        changed={"ctl1": 12, "ctl3": 0, "cmp1": 0},
        unreachable={"ctl2": "Failed to connect to the host via ssh: ssh: connect to host "
                              "198.18.0.12 port 22: No route to host"})
    summary = _deploy(tmp_path, playbook).run()
    assert not summary.ok
    assert summary.changed_hosts == ["ctl1"]
    assert summary.unchanged_hosts == ["cmp1", "ctl3"]
    with pytest.raises(DeployError) as error:
        summary.raise_for_failures()
    assert error.value.lines() == [
        "ctl2: unreachable over SSH: Failed to connect to the host via ssh: ssh: connect to "
        f"host 198.18.0.12 port 22: No route to host (check its ansible_host / ansible_user "
        f"in {tmp_path / 'inventory.yaml'})",
        "deploy of demo incomplete: changed ctl1; failed ctl2",
    ]


def test_missing_sudo_right_is_named_as_such(tmp_path: Path) -> None:
    playbook = FakePlaybook(changed={"ctl1": 0, "ctl2": 0},
                            failed={"ctl3": ("common : Check that this host can be reached "
                                             "and sudo works", "Missing sudo password")})
    summary = _deploy(tmp_path, playbook).run()
    assert summary.error_lines()[0] == (
        "ctl3: no sudo right: Missing sudo password (give the user passwordless sudo, or set "
        "ansible_become_password)")
    assert summary.unchanged_hosts == ["ctl1", "ctl2"]


def test_a_failed_task_names_the_task_and_the_hosts_not_reached(tmp_path: Path) -> None:
    playbook = FakePlaybook(changed={"ctl1": 20},
                            failed={"ctl1": ("galera : Wait until this member is Synced in a "
                                             "Primary component", "non-zero return code")})
    summary = _deploy(tmp_path, playbook).run()
    lines = summary.error_lines()
    assert lines[0] == ("ctl1: galera : Wait until this member is Synced in a Primary "
                        "component failed: non-zero return code")
    assert lines[-1] == ("deploy of demo incomplete: changed none; failed ctl1; not reached "
                         "ctl2, ctl3, cmp1")


def test_inventory_of_another_cloud_is_refused_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "inventory.yaml").write_text(inventory_yaml(example_plan("split-roles")))
    playbook = FakePlaybook()
    with pytest.raises(InventoryError, match="host 'lb1' is not a node of cloud demo"):
        _deploy(tmp_path, playbook).run()
    assert playbook.calls == []
    assert not (tmp_path / "state").exists()


def test_cloud_with_check_errors_is_refused_unless_forced(tmp_path: Path) -> None:
    plan = example_plan("broken")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(inventory_yaml(plan))
    playbook = FakePlaybook()
    run = AnsibleDeploy(plan.cloud, plan, inventory, tmp_path / "state", runner=playbook)
    with pytest.raises(Exception, match="check error"):
        run.run()
    assert playbook.calls == []


def test_parse_output_reads_a_real_recap_and_item_failures() -> None:
    output = (
        "TASK [common : Place the secret files of galera] ****\n"
        'failed: [ctl2] (item=(censored due to no_log)) => {"censored": "the output has been '
        'hidden due to the fact that \'no_log: true\' was specified for this result"}\n'
        "PLAY RECAP *********\n"
        "ctl1                       : ok=74   changed=22   unreachable=0    failed=0    "
        "skipped=31   rescued=0    ignored=0   \n"
        "ctl2                       : ok=3    changed=0    unreachable=0    failed=1    "
        "skipped=0    rescued=0    ignored=0   \n")
    recaps, failures = parse_output(output)
    assert recaps["ctl1"].changed == 22 and recaps["ctl1"].skipped == 31
    assert recaps["ctl2"].failed == 1
    assert [(f.host, f.kind, f.task) for f in failures] == [
        ("ctl2", "failed", "common : Place the secret files of galera")]


def test_deploy_command_prints_the_summary_and_exits_2_on_failure(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(inventory_yaml(example_plan("demo")).replace("ctl3:", "ctl9:"))
    result = CliRunner().invoke(cli, ["deploy", str(EXAMPLES / "demo.yaml"), "-i",
                                      str(inventory), "--state", str(tmp_path / "state")])
    assert result.exit_code == 2
    assert "host 'ctl9' is not a node of cloud demo" in result.output


# --- the shipped playbook, checked by Ansible's own tools --------------------------------------

def _tool(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} is not installed: run scripts/setup.sh (the ansible extra)")
        return found
    return str(path)


@pytest.fixture(scope="module")
def staged_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("ansible")
    plan = example_plan("demo")
    inventory = root / "inventory.yaml"
    inventory.write_text(inventory_yaml(plan))
    staged = stage(plan, root / "state")
    return inventory, staged.hosts_inventory, staged.secret_vars


@pytest.mark.validator
def test_shipped_playbook_passes_syntax_check(staged_demo: tuple[Path, Path, Path]) -> None:
    inventory, hosts, secret_vars = staged_demo
    result = subprocess.run(
        [_tool("ansible-playbook"), "--syntax-check", "-i", str(inventory), "-i", str(hosts),
         "-e", f"@{secret_vars}", str(PLAYBOOK)],
        capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1",
             "ANSIBLE_ROLES_PATH": str(PLAYBOOK.parent / "roles"),
             "HOME": str(inventory.parent)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Could not match supplied host pattern" not in result.stderr


@pytest.fixture(scope="module")
def ansible_lint(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """ansible-lint once per test module (half a minute to two here): every test reads it."""
    home = tmp_path_factory.mktemp("lint-home")
    return subprocess.run(
        [_tool("ansible-lint"), "--offline", "--nocolor", str(PLAYBOOK),
         str(PLAYBOOK.parent / "roles")],
        capture_output=True, text=True, timeout=900, check=False, cwd=PLAYBOOK.parent,
        env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(home),
             "ANSIBLE_ROLES_PATH": str(PLAYBOOK.parent / "roles"), "NO_COLOR": "1"})


@pytest.mark.validator
def test_shipped_playbook_passes_ansible_lint(
        ansible_lint: subprocess.CompletedProcess[str]) -> None:
    assert ansible_lint.returncode == 0, ansible_lint.stdout + ansible_lint.stderr




def test_hosts_outside_limit_are_not_reported_as_not_reached(tmp_path: Path) -> None:
    playbook = FakePlaybook(failed={"ctl2": ("haproxy : Start haproxy", "Job failed")})
    summary = _deploy(tmp_path, playbook, limit="ctl2").run()
    assert summary.not_reached == []
    assert summary.error_lines() == ["ctl2: haproxy : Start haproxy failed: Job failed",
                                     "deploy of demo incomplete: changed none; failed ctl2"]


def test_playbook_plays_follow_the_host_catalogs_protocol_order() -> None:
    from hastack.catalog.hosts import load_host_catalog

    plays = YAML(typ="safe").load(PLAYBOOK.read_text())
    order: list[str] = []
    for play in plays:
        names = list(play.get("roles", []))
        names += [t["ansible.builtin.include_role"]["name"] for t in play.get("tasks", [])
                  if "ansible.builtin.include_role" in t]
        order += [n for n in names if n not in order]
        if play["hosts"] != "all":
            assert play.get("serial") == 1 or "roles" not in play, play["name"]
    assert order == [r.role for r in load_host_catalog().roles]
    keepalived = next(i for i, p in enumerate(plays) if p.get("roles") == ["keepalived"])
    # The VIPs after every tier behind them, then what goes through them: Keystone's admin,
    # then the services behind Keystone.
    assert "keystone" in str(plays[keepalived + 1])
    assert [p.get("roles") for p in plays[keepalived + 2:]][:4] == [
        ["placement"], ["glance"], ["neutron"], ["nova"]]


def test_every_role_has_tasks_and_handlers_for_its_restart_notice() -> None:
    from hastack.catalog.hosts import load_host_catalog

    roles = PLAYBOOK.parent / "roles"
    for role in load_host_catalog().roles:
        assert (roles / role.role / "tasks" / "main.yml").exists(), role.role
        handlers = YAML(typ="safe").load((roles / role.role / "handlers" / "main.yml")
                                         .read_text())
        listens = {h.get("listen") for h in handlers}
        assert f"Restart {role.role}" in listens, role.role


def test_real_ansible_unreachable_output_is_read(tmp_path: Path) -> None:
    # As ansible-core 2.19 prints it for a host whose SSH port refuses.
    output = ('fatal: [ctl2]: UNREACHABLE! => {"changed": false, "msg": "Task failed: Failed '
              'to connect to the host via ssh: ssh: connect to host 127.0.0.1 port 1: '
              'Connection refused", "unreachable": true}\n')
    _, failures = parse_output(output)
    assert failures[0].line(Path("inv.yaml")) == (
        "ctl2: unreachable over SSH: Failed to connect to the host via ssh: ssh: connect to "
        "host 127.0.0.1 port 1: Connection refused (check its ansible_host / ansible_user in "
        "inv.yaml)")
