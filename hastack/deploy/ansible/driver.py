"""`hastack deploy`: render the cloud, stage it for the shipped playbook, run ansible-playbook.

Stage 5 (deploy). The driver renders (production sizing), keeps the cloud's secrets and
Keystone's key repositories in a state directory (so a second deploy renders byte-identical
files and Ansible reports changed=0), writes a staging directory — the rendered files each
role places, hastack's agents, and an inventory of its own with the role groups and every
host's packages, units and files — and runs `ansible-playbook` with the operator's inventory
and that one. The playbook's output streams to the terminal; its recap and failures become a
`DeploySummary`: which hosts changed, which did not, and one line per host that failed, was
unreachable or lacked sudo.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol

from hastack.catalog.hosts import HostCatalog, load_host_catalog
from hastack.checks import has_errors, run_checks
from hastack.deploy import fernet
from hastack.deploy.ansible.inventory import check_inventory as check_matches
from hastack.deploy.ansible.inventory import cloud_groups, read_inventory
from hastack.deploy.ansible.roles import (
    COMMON,
    HostAssignment,
    NotDeployed,
    assign_hosts,
    not_deployed,
    restarts,
)
from hastack.deploy.files import read_secrets, write_secrets, write_tree
from hastack.deploy.progress import QuietReporter, Steps
from hastack.deploy.site import Site
from hastack.deploy.systems import keystone, openstack, rabbitmq
from hastack.errors import HastackError, RenderError
from hastack.model.cloud import Cloud
from hastack.plan import Plan
from hastack.render import RenderedFile, render_cloud, secret_specs, wsgi
from hastack.render.openstack import KEYSTONE_ADMIN_SECRET
from hastack.render.secrets import complete

PLAYBOOK = Path(str(resources.files(__package__).joinpath("playbook", "site.yml")))
STAGE = "stage"                       # in the state dir: what the playbook reads
HOSTS_INVENTORY = "hastack-hosts.yaml"
SECRET_VARS = "secret-vars.yaml"       # 0600: the variables that are secrets
GALERA_MEMBERS, GALERA_ARBITRATOR = "galera_members", "galera_arbitrator"
# Debian packages the common role needs beside the systems' own.
VENV_PACKAGES = ("python3-venv",)


class DeployError(HastackError):
    """The deployment could not start, or some hosts failed; one line per host."""

    def __init__(self, lines: Sequence[str]):
        super().__init__("\n".join(lines))
        self._lines = list(lines)

    def lines(self) -> list[str]:
        return self._lines


# --- running ansible-playbook --------------------------------------------------------------

@dataclass(frozen=True)
class RunResult:
    returncode: int
    output: str


class PlaybookRunner(Protocol):
    """Runs ansible-playbook; `on_line` sees every line of its output as it comes."""

    def __call__(self, argv: Sequence[str], env: Mapping[str, str],
                 on_line: Callable[[str], None]) -> RunResult: ...


def subprocess_runner(argv: Sequence[str], env: Mapping[str, str],
                      on_line: Callable[[str], None]) -> RunResult:
    lines: list[str] = []
    with subprocess.Popen(list(argv), env=dict(env), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                          bufsize=1) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            on_line(line.rstrip("\n"))
    return RunResult(process.returncode, "".join(lines))


def ansible_playbook() -> str:
    """ansible-playbook of this venv (the `ansible` extra), else of the PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    found = str(beside) if beside.exists() else shutil.which("ansible-playbook")
    if found is None:
        raise DeployError(["`hastack deploy` needs ansible-core: install the ansible extra "
                           "(pip install 'hastack[ansible]', or scripts/setup.sh)"])
    return found


# --- what the playbook said ----------------------------------------------------------------

@dataclass(frozen=True)
class HostRecap:
    host: str
    ok: int
    changed: int
    unreachable: int
    failed: int
    skipped: int = 0


FailureKind = Literal["unreachable", "sudo", "failed"]


@dataclass(frozen=True)
class HostFailure:
    host: str
    kind: FailureKind
    message: str
    task: str = ""

    def line(self, inventory: Path) -> str:
        if self.kind == "unreachable":
            return (f"{self.host}: unreachable over SSH: {self.message} (check its "
                    f"ansible_host / ansible_user in {inventory})")
        if self.kind == "sudo":
            return (f"{self.host}: no sudo right: {self.message} (give the user passwordless "
                    "sudo, or set ansible_become_password)")
        return f"{self.host}: {self.task or 'a task'} failed: {self.message}"


_RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
                    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)"
                    r"(?:\s+skipped=(?P<skipped>\d+))?")
_FAILURE = re.compile(r"^(?:fatal|failed): \[(?P<host>[^\]]+)\](?: \(item=.*?\))?"
                      r"(?:: (?P<kind>UNREACHABLE|FAILED)!)? => (?P<body>.*)$")
_TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?P<task>.*)\] \**$")
_SUDO = re.compile(r"sudo|become", re.IGNORECASE)
_SUDO_WHY = re.compile(r"password is required|missing sudo password|not in the sudoers|"
                       r"incorrect sudo password|become gives uid|timeout waiting for "
                       r"privilege escalation", re.IGNORECASE)


def _message(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()
    if not isinstance(data, dict):
        return body.strip()
    message = str(data.get("msg") or data.get("stderr") or data.get("module_stderr") or "")
    # ansible-core 2.19 prefixes every failure so; the line already says it failed.
    message = message.removeprefix("Task failed: ")
    return " ".join(message.split()) or "no message"


def parse_output(output: str) -> tuple[dict[str, HostRecap], list[HostFailure]]:
    """The PLAY RECAP rows and every host's first failure, from the default callback."""
    recaps: dict[str, HostRecap] = {}
    failures: dict[str, HostFailure] = {}
    task = ""
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if (match := _TASK.match(line)) is not None:
            task = match.group("task")
            continue
        if in_recap and (match := _RECAP.match(line)) is not None:
            recaps[match.group("host")] = HostRecap(
                match.group("host"), int(match.group("ok")), int(match.group("changed")),
                int(match.group("unreachable")), int(match.group("failed")),
                int(match.group("skipped") or 0))
            continue
        if (match := _FAILURE.match(line)) is not None:
            host, message = match.group("host"), _message(match.group("body"))
            if '"ignore_errors": true' in line or host in failures:
                continue
            kind: FailureKind = "failed"
            if match.group("kind") == "UNREACHABLE":
                kind = "unreachable"
            elif _SUDO.search(message) and _SUDO_WHY.search(message):
                kind = "sudo"
            failures[host] = HostFailure(host, kind, message, task)
    return recaps, list(failures.values())


@dataclass
class DeploySummary:
    cloud: str
    inventory: Path
    state: Path
    check: bool
    recaps: dict[str, HostRecap]
    failures: list[HostFailure]
    not_deployed: list[NotDeployed]
    returncode: int
    total_s: float = 0.0
    hosts: tuple[str, ...] = ()
    limit: str | None = None

    @property
    def changed_hosts(self) -> list[str]:
        return [h for h, r in self.recaps.items() if r.changed and h not in self.failed_hosts]

    @property
    def unchanged_hosts(self) -> list[str]:
        return [h for h, r in self.recaps.items()
                if not r.changed and h not in self.failed_hosts]

    @property
    def failed_hosts(self) -> list[str]:
        failed = [f.host for f in self.failures]
        failed += [h for h, r in self.recaps.items() if (r.failed or r.unreachable)
                   and h not in failed]
        return failed

    @property
    def not_reached(self) -> list[str]:
        """Hosts of the cloud the playbook never got to (a failure stopped it first); with
        --limit, hosts outside it are not counted."""
        if self.limit:
            return []
        return [h for h in self.hosts if h not in self.recaps and h not in self.failed_hosts]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.failures

    def error_lines(self) -> list[str]:
        lines = [f.line(self.inventory) for f in self.failures]
        if not lines and self.returncode != 0:
            lines.append(f"ansible-playbook exited with status {self.returncode} "
                         "(its output above says why)")
        changed = ", ".join(self.changed_hosts) or "none"
        lines.append(f"deploy of {self.cloud} incomplete: changed {changed}; failed "
                     f"{', '.join(self.failed_hosts) or 'none'}"
                     + (f"; not reached {', '.join(self.not_reached)}" if self.not_reached
                        else ""))
        return lines

    def raise_for_failures(self) -> None:
        if not self.ok:
            raise DeployError(self.error_lines())


# --- staging -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Staged:
    stage: Path
    hosts_inventory: Path
    secret_vars: Path
    files: list[RenderedFile] = field(default_factory=list)


def _octal(mode: int) -> str:
    return f"0{mode:o}"


def _group_of(owner: str) -> str:
    return owner        # Debian gives every system user a group of its name


def _file_vars(catalog: HostCatalog, assignment: HostAssignment,
               f: RenderedFile) -> dict[str, Any]:
    return {"path": f.path, "mode": _octal(f.mode), "owner": f.owner,
            "group": _group_of(f.owner), "secret": not f.mode & 0o004,
            "restarts": list(restarts(catalog, assignment, f))}


def host_vars(plan: Plan, assignment: HostAssignment,
              catalog: HostCatalog) -> dict[str, Any]:
    """One host's variables for the playbook, all derived from the plan."""
    packages = list(assignment.packages)
    if assignment.pip:
        packages += [p for p in VENV_PACKAGES if p not in packages]
    files = {role: [_file_vars(catalog, assignment, f) for f in fs]
             for role, fs in assignment.files.items()}
    dirs = {role: sorted({"/" + str(Path(f.path).parent)
                          for f in assignment.files.get(role, ())}
                         | set(catalog.role(role).directories))
            for role in assignment.roles}
    units: dict[str, list[str]] = {}
    wheel_files: dict[str, list[dict[str, str]]] = {}
    for role in assignment.roles:
        own = catalog.role(role).processes
        units[role] = [u for u in assignment.units
                       if any(u in own[p].units for p in own if p in assignment.processes)]
        wheel_files[role] = [{"src": f"{catalog.venv}/{src}", "dest": f"/{dest}"}
                             for p in own if p in assignment.processes
                             for src, dest in own[p].wheel_files.items()]
    return {
        "hastack_address": str(plan.cloud.node(assignment.node).ip),
        "hastack_packages": packages,
        "hastack_pip": list(assignment.pip),
        "hastack_units": list(assignment.units),
        "hastack_reloadable": [u for u in assignment.units if catalog.units[u].exec_reload],
        "hastack_files": files,
        "hastack_dirs": dirs,
        "hastack_role_units": units,
        "hastack_wheel_files": wheel_files,
        # The APIs of this host that must answer before the next host restarts.
        "hastack_listen": [{"unit": u, "port": plan.port(app.process, app.port_name)}
                           for u in assignment.units if (app := wsgi.BY_PROGRAM.get(u))],
    }


def _first_hosts(plan: Plan) -> list[tuple[openstack.OpenStackService, str]]:
    """Each OpenStack service the plan runs, with the host that registers it in Keystone
    and makes its schema once: the first of its first process."""
    return [(service, nodes[0]) for service in openstack.SERVICES
            if (nodes := plan.nodes_running(service.processes[0]))]


def openstack_vars(site: Site) -> dict[str, Any]:
    """Each OpenStack service the plan runs: its first host and what it registers."""
    return {service.name: {
        "first": first,
        "register": openstack.registration(site, service),
        "schema_steps": len(service.schema),
    } for service, first in _first_hosts(site.plan)}


def openstack_secret_vars(site: Site, secrets: Mapping[str, object],
                          catalog: HostCatalog) -> dict[str, Any]:
    """The service passwords and the schema commands (their connection URLs carry the
    database passwords): secret variables, never in the host inventory."""
    return {service.name: {
        "register": openstack.registration_secrets(service, secrets),
        "schema": openstack.schema_commands(site, service, first,
                                            f"{catalog.venv}/bin/{service.manage}"),
    } for service, first in _first_hosts(site.plan)}


def playbook_inventory(plan: Plan, files: Sequence[RenderedFile], stage: Path, state: Path,
                       catalog: HostCatalog | None = None) -> dict[str, Any]:
    """The staged inventory: the role groups, every host's variables, the shared ones."""
    catalog = catalog or load_host_catalog()
    assignments = assign_hosts(plan, files, catalog)
    site = Site(plan.cloud, plan, nodes={}, files=_by_node(files), state=state,
                steps=Steps(QuietReporter()))
    members = list(plan.nodes_running("mariadb-galera"))
    rabbits = list(plan.nodes_running(rabbitmq.PROCESS))
    shared: dict[str, Any] = {
        "hastack_cloud": plan.cloud.name,
        "hastack_stage": str(stage),
        "hastack_state": str(state),
        "hastack_venv": catalog.venv,
        "hastack_agents": catalog.agents,
        "hastack_galera_members": members,
        "hastack_galera_bootstrap": members[0] if members else "",
        "hastack_rabbitmq_first": rabbits[0] if rabbits else "",
        "hastack_rabbitmq_nodenames": {n: rabbitmq.nodename(site, n) for n in rabbits},
    }
    if plan.runs(keystone.PROCESS):
        shared["hastack_keystone_port"] = plan.port(keystone.PROCESS, "identity")
        shared["hastack_keystone_bootstrap"] = keystone.bootstrap_args(site)
        shared["hastack_keystone_url"] = keystone.url(site, "internal")
    shared["hastack_openstack"] = openstack_vars(site)
    shared["hastack_nova_compute_hosts"] = list(plan.nodes_running("nova-compute"))
    # Every role's group, empty where the plan runs none of it: each play then has a group.
    groups: dict[str, tuple[str, ...]] = {r.role: () for r in catalog.roles if r.role != COMMON}
    groups.update(cloud_groups(plan))
    groups[GALERA_MEMBERS] = tuple(members)
    groups[GALERA_ARBITRATOR] = plan.nodes_running("garbd")
    return {"all": {
        "vars": shared,
        "hosts": {node: host_vars(plan, a, catalog) for node, a in assignments.items()},
        "children": {name: {"hosts": {n: None for n in nodes}} for name, nodes in
                     groups.items()},
    }}


def _by_node(files: Sequence[RenderedFile]) -> dict[str, list[RenderedFile]]:
    by_node: dict[str, list[RenderedFile]] = {}
    for f in files:
        by_node.setdefault(f.node, []).append(f)
    return by_node


def _copy_agents(target: Path) -> None:
    """hastack's agents as a package tree for the hosts' PYTHONPATH (nothing else of
    hastack: the agents import no other stage)."""
    package = Path(str(resources.files("hastack")))
    for source in [package / "__init__.py", *sorted((package / "agents").glob("*.py"))]:
        relative = source.relative_to(package.parent)
        data = source.read_bytes()
        destination = target / relative
        if destination.exists() and destination.read_bytes() == data:
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(data)


def _write_if_changed(path: Path, text: str, mode: int) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        path.chmod(mode)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(mode)


def stage(plan: Plan, state: Path, catalog: HostCatalog | None = None) -> Staged:
    """Render into the state dir's staging area; re-staging an unchanged cloud changes nothing
    there, which is what makes the next playbook run report changed=0."""
    catalog = catalog or load_host_catalog()
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    secrets = complete(read_secrets(state), secret_specs(plan))
    write_secrets(state, secrets)
    fernet.ensure_all(state)
    rendered = render_cloud(plan, secrets)
    assignments = assign_hosts(plan, rendered, catalog)
    placed = [f for a in assignments.values() for fs in a.files.values() for f in fs]
    directory = state / STAGE
    write_tree(directory / "files", placed)
    _copy_agents(directory / "agents")
    dumper = _yaml_dump(playbook_inventory(plan, placed, directory, state, catalog))
    hosts_inventory = directory / HOSTS_INVENTORY
    _write_if_changed(hosts_inventory, dumper, 0o600)
    secret_vars = directory / SECRET_VARS
    site = Site(plan.cloud, plan, nodes={}, files=_by_node(rendered), state=state,
                steps=Steps(QuietReporter()))
    _write_if_changed(secret_vars, _yaml_dump(
        {"hastack_keystone_admin_password": secrets.get(KEYSTONE_ADMIN_SECRET, ""),
         "hastack_openstack_secrets": openstack_secret_vars(site, secrets, catalog)}), 0o600)
    return Staged(directory, hosts_inventory, secret_vars, placed)


def _yaml_dump(data: Any) -> str:
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    out = io.StringIO()
    out.write("# Staged by `hastack deploy` from the cloud file; rewritten on every deploy.\n")
    yaml.dump(data, out)
    return out.getvalue()


# --- the deployer --------------------------------------------------------------------------

@dataclass
class AnsibleDeploy:
    """One `hastack deploy`: a cloud, the operator's inventory, a state dir, a runner."""

    cloud: Cloud
    plan: Plan
    inventory: Path
    state: Path
    runner: PlaybookRunner = subprocess_runner
    check: bool = False
    diff: bool = False
    limit: str | None = None
    force: bool = False
    on_line: Callable[[str], None] = lambda line: None
    playbook: Path = PLAYBOOK
    extra_args: Sequence[str] = ()

    def preflight(self) -> None:
        """Everything that can be refused before a host is touched."""
        findings = run_checks(self.plan)
        if has_errors(findings) and not self.force:
            errors = sorted({f.rule for f in findings if f.severity == "error"})
            raise RenderError(f"{len(errors)} check error(s) ({', '.join(errors)}); run "
                              "`hastack check` to see them, or pass --force to deploy anyway")
        check_matches(read_inventory(self.inventory), self.plan)

    def argv(self, staged: Staged, program: str) -> list[str]:
        argv = [program, "-i", str(self.inventory), "-i", str(staged.hosts_inventory),
                "-e", f"@{staged.secret_vars}", str(self.playbook)]
        if self.check:
            argv.append("--check")
        if self.diff:
            argv.append("--diff")
        if self.limit:
            argv += ["--limit", self.limit]
        return argv + list(self.extra_args)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_STDOUT_CALLBACK": "default",
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
            "ANSIBLE_ROLES_PATH": str(self.playbook.parent / "roles"),
            # Fewer SSH round trips per task; the OpenSSH client keeps one connection per
            # host open between tasks (ControlMaster, Ansible's default ssh_args).
            "ANSIBLE_PIPELINING": "1",
        })
        return env

    def run(self) -> DeploySummary:
        start = time.monotonic()
        self.preflight()
        program = ansible_playbook() if self.runner is subprocess_runner else "ansible-playbook"
        staged = stage(self.plan, self.state)
        result = self.runner(self.argv(staged, program), self.environment(), self.on_line)
        recaps, failures = parse_output(result.output)
        order = {n.name: i for i, n in enumerate(self.cloud.nodes)}
        failures.sort(key=lambda f: order.get(f.host, len(order)))
        return DeploySummary(
            cloud=self.cloud.name, inventory=self.inventory, state=self.state,
            check=self.check, recaps=recaps, failures=failures,
            not_deployed=not_deployed(self.plan), returncode=result.returncode,
            total_s=time.monotonic() - start,
            hosts=tuple(n.name for n in self.cloud.nodes), limit=self.limit)
