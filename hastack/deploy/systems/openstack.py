"""The OpenStack services behind Keystone — Placement, Glance, Neutron's server, Nova, Heat,
Ceilometer — as data, and one bring-up for all of them.

Stage 5 (deploy), written only against `NodeExec`. Each service is a row of `SERVICES`:

- its user, catalog entries and endpoints in Keystone (`keystone.register_service`, once, on
  the VIPs), with the password its rendered files carry (and, for Heat, the domain of its
  stack users);
- its one-time schema commands (`placement-manage db sync`, `nova-manage api_db sync`, the
  cell mappings, ...) run once per deployment on the first node, against one Primary Galera
  member directly (`galera.direct_database`: a cold bring-up's state transfers take the donor
  out of HAProxy and would cut a migration half-way);
- its programs started on every node the plan places them, the APIs until they listen.

Nova's compute nodes are mapped to the cell once their nova-compute has registered
(`nova-manage cell_v2 discover_hosts`), so the first server can be scheduled at once; the
scheduler keeps discovering new ones (`discover_hosts_in_cells_interval`, rendered).
Ceilometer's central agents are up once each is a live member of their tooz group in Redis:
from then on they share the polling among themselves.
"""

from __future__ import annotations

import configparser
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hastack.deploy.base import NodeExec, wait_until
from hastack.deploy.files import read_secrets
from hastack.deploy.site import Site, running
from hastack.deploy.systems import (
    caches,
    galera,
    keystone,
    parallel,
    python_package_installed,
    wait_listening,
)
from hastack.errors import LabError
from hastack.render import wsgi
from hastack.render.openstack import (
    HEAT_DOMAIN_ADMIN,
    HEAT_DOMAIN_ADMIN_SECRET,
    HEAT_STACK_DOMAIN,
    REGION,
    ceilometer_partitioned,
)

START_TIMEOUT_S = 120
MANAGE_TIMEOUT_S = 300
MANAGE_ATTEMPTS = 3
DISCOVER_TIMEOUT_S = 120
MANAGE_OVERRIDE = "/run/hastack/{service}-manage.conf"

# A command's arguments may name values of the rendered file: {section.option}, or
# {section.option@database} for that connection URL with another database name.
Args = tuple[str, ...]


@dataclass(frozen=True)
class Endpoint:
    """One entry of Keystone's catalog and the API behind it."""

    name: str             # the catalog service's name
    type: str
    description: str
    process: str          # the API's catalog process: its frontend's port
    port_name: str
    path: str = ""


@dataclass(frozen=True)
class OpenStackService:
    name: str                          # Keystone user, config directory, Python package
    package: str                       # the Python package it runs from
    conf: str                          # its main rendered file
    manage: str                        # its schema tool
    schema: tuple[Args, ...]           # one-time commands, in order
    endpoints: tuple[Endpoint, ...]
    # Catalog processes on the controllers, in start order; `late` ones start after the
    # others answer (nova-compute needs the conductors).
    processes: tuple[str, ...]
    late: tuple[str, ...] = ()
    # A table the schema commands make ("database.table"): a tool that exits 0 having made
    # nothing is caught here, not by the first API request.
    made: str = ""
    # Roles the service expects Keystone to have, and a domain of its own with an admin
    # (name of the domain, of its admin, and the secret that is the admin's password).
    roles: tuple[str, ...] = ()
    domain: tuple[str, str, str] | None = None

    def installed(self) -> bool:
        return python_package_installed(self.package)


SERVICES: tuple[OpenStackService, ...] = (
    OpenStackService(
        "placement", "placement", "/etc/placement/placement.conf", "placement-manage",
        (("db", "sync"),),
        (Endpoint("placement", "placement", "Placement API", "placement-api", "placement"),),
        ("placement-api",), made="placement.resource_providers"),
    OpenStackService(
        "glance", "glance", "/etc/glance/glance-api.conf", "glance-manage",
        (("db_sync",),), (Endpoint("glance", "image", "Image service", "glance-api", "image"),),
        ("glance-api",), made="glance.images"),
    OpenStackService(
        "neutron", "neutron", "/etc/neutron/neutron.conf", "neutron-db-manage",
        (("upgrade", "heads"),),
        (Endpoint("neutron", "network", "Networking service", "neutron-server", "network"),),
        ("neutron-server",), made="neutron.ml2_vxlan_allocations"),
    OpenStackService(
        "nova", "nova", "/etc/nova/nova.conf", "nova-manage",
        (("api_db", "sync"),
         # cell0 and cell1 record the URLs the services use (the VIP), not the override's.
         ("cell_v2", "map_cell0", "--database_connection",
          "{database.connection@nova_cell0}"),
         ("cell_v2", "create_cell", "--name", "cell1", "--verbose",
          "--database_connection", "{database.connection}",
          "--transport-url", "{DEFAULT.transport_url}"),
         ("db", "sync")),
        (Endpoint("nova", "compute", "Compute service", "nova-api", "compute", "/v2.1"),),
        ("nova-api", "nova-conductor", "nova-scheduler"), late=("nova-compute",),
        made="nova.instances"),
    OpenStackService(
        "heat", "heat", "/etc/heat/heat.conf", "heat-manage", (("db_sync",),),
        (Endpoint("heat", "orchestration", "Orchestration service", "heat-api",
                  "orchestration", "/v1/%(project_id)s"),
         Endpoint("heat-cfn", "cloudformation", "Orchestration service (CloudFormation API)",
                  "heat-api-cfn", "cloudformation", "/v1")),
        ("heat-api", "heat-api-cfn", "heat-engine"), made="heat.stack",
        # Heat gives the users it makes for a stack's servers this role, in its own domain.
        roles=("heat_stack_user",),
        domain=(HEAT_STACK_DOMAIN, HEAT_DOMAIN_ADMIN, HEAT_DOMAIN_ADMIN_SECRET)),
    # No API of its own any more (ceilometer-api is retired), no database: a user to poll
    # the other services with, and its agents.
    OpenStackService(
        "ceilometer", "ceilometer", "/etc/ceilometer/ceilometer.conf", "", (), (),
        ("ceilometer-notification", "ceilometer-central")),
)
BY_NAME = {s.name: s for s in SERVICES}


# Catalog processes that are several programs on a node, in start order (an API serving two
# applications; Neutron's API and its RPC workers).
PROGRAMS = {"nova-api": ("nova-api", "nova-metadata-api"),
            "neutron-server": ("neutron-api", "neutron-rpc-server")}


def programs_of(process: str) -> tuple[str, ...]:
    """The node programs of a catalog process."""
    return PROGRAMS.get(process, (process,))


def services_of(service: OpenStackService) -> tuple[str, ...]:
    return tuple(p for process in (*service.processes, *service.late)
                 for p in programs_of(process))


# --- the rendered file ---------------------------------------------------------------------


def _ini(site: Site, node: str, path: str) -> configparser.ConfigParser:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(site.rendered(node, path) or "")
    return ini


def expand(args: Args, ini: configparser.ConfigParser) -> list[str]:
    """A command's arguments with {section.option} (and {…@database}) filled in."""
    out = []
    for arg in args:
        if arg.startswith("{") and arg.endswith("}"):
            ref, _, database = arg[1:-1].partition("@")
            section, _, option = ref.partition(".")
            value = ini.get(section, option, fallback=None)
            if value is None:
                raise LabError(f"[{section}] {option} is not in the rendered file")
            if database:
                base, _, query = value.partition("?")
                value = base.rsplit("/", 1)[0] + f"/{database}" + (f"?{query}" if query else "")
            arg = value
        out.append(arg)
    return out


def db_sections(ini: configparser.ConfigParser) -> list[str]:
    return [s for s in ini.sections() if "connection" in ini[s] and s.endswith("database")]


# --- one-time schema work --------------------------------------------------------------------

# Neutron hands alembic its migration directories joined by spaces, so under a venv whose
# path has a space it finds no migration and says OK. Tools then run through a link to the
# venv (in the node's own /run) whose path has none.
VENV_LINK = "/run/hastack/venv"


def tool_argv(node: NodeExec, tool: str) -> list[str]:
    """The command line of one of the venv's console scripts on `node`."""
    venv = Path(sys.executable).parent.parent
    if not any(c.isspace() for c in str(venv)):
        return [str(venv / "bin" / tool)]
    node.run(["mkdir", "-p", str(Path(VENV_LINK).parent)])
    node.run(["ln", "-sfn", str(venv), VENV_LINK])
    # The script is a sh/Python polyglot (pip's form for paths with spaces): Python runs it.
    return [f"{VENV_LINK}/bin/python", f"{VENV_LINK}/bin/{tool}"]


def manage_argv(service: OpenStackService, tool: list[str], args: Args,
                ini: configparser.ConfigParser, *overrides: str) -> list[str]:
    """One schema command: the manage tool reading the rendered file (then `overrides`)."""
    files = [a for f in (service.conf, *overrides) for a in ("--config-file", f)]
    return [*tool, *files, *expand(args, ini)]


def schema_commands(site: Site, service: OpenStackService, node: str,
                    tool: str) -> list[list[str]]:
    """The service's schema commands as `node` runs them (`tool`: its manage program), through
    the connection URLs of its rendered file (real hosts: the VIP, once every member is
    Synced)."""
    ini = _ini(site, node, service.conf)
    return [manage_argv(service, [tool], args, ini) for args in service.schema]


def _manage(site: Site, service: OpenStackService, node: NodeExec, args: Args,
            override: str) -> None:
    argv = manage_argv(service, tool_argv(node, service.manage), args,
                       _ini(site, node.name, service.conf), override)
    last = ""
    for _ in range(MANAGE_ATTEMPTS):
        try:
            result = node.run(argv, timeout=MANAGE_TIMEOUT_S, check=False)
        except LabError as exc:        # did not finish in time
            last = str(exc)
            continue
        if result.returncode == 0:
            return
        last = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        time.sleep(2)
    raise LabError(f"{node.name}: {service.manage} {' '.join(args[:2])} failed: {last}")


def _schema(site: Site, service: OpenStackService, node: NodeExec) -> list[str]:
    todo = [(i, args) for i, args in enumerate(service.schema)
            if not site.done(f"{service.name}-schema-{i}.done")]
    if not todo:
        return []
    ini = _ini(site, node.name, service.conf)
    override = MANAGE_OVERRIDE.format(service=service.name)
    member = galera.direct_database(site, node, override, ini, db_sections(ini))
    actions = []
    with galera.schema_change(site):
        for i, args in todo:
            what = f"{service.manage} {' '.join(args[:2])}"
            with site.steps.timed(node.name, service.name, f"{what} (on {member.name})"):
                _manage(site, service, node, args, override)
            if i == len(service.schema) - 1:
                _check_made(service, member)
            site.mark_done(f"{service.name}-schema-{i}.done", f"{what} ran once")
            actions.append(f"{node.name}: {what}")
    return actions


def _check_made(service: OpenStackService, member: NodeExec) -> None:
    if not service.made:
        return
    database, table = service.made.split(".")
    rows = galera.mysql(member, "SELECT COUNT(*) FROM information_schema.tables WHERE "
                                f"table_schema = '{database}' AND table_name = '{table}'")
    if rows != [["1"]]:
        raise LabError(f"{member.name}: {service.manage} {' '.join(service.schema[-1][:2])} "
                       f"exited 0 but made no table {service.made}")


# --- Keystone --------------------------------------------------------------------------------


def secret_of(service: OpenStackService) -> str:
    """The secret that is the service user's password (its rendered files carry it)."""
    return f"service_{service.name}"


def endpoint_urls(site: Site, endpoint: Endpoint) -> dict[str, str]:
    """One catalog entry's Keystone endpoints: interface -> URL on the VIPs."""
    return {iface: keystone.api_url(site, endpoint.process, endpoint.port_name,
                                    endpoint.path, vip)
            for iface, vip in (("internal", "internal"), ("admin", "internal"),
                               ("public", "public"))}


def registration(site: Site, service: OpenStackService) -> dict[str, Any]:
    """What `hastack.agents.keystone_register` makes Keystone hold for the service, but its
    passwords (`password`, `domain_password`: secrets the caller adds)."""
    request: dict[str, Any] = {
        "user": service.name, "region": REGION, "roles": list(service.roles),
        "services": [{"name": e.name, "type": e.type, "description": e.description,
                      "urls": endpoint_urls(site, e)} for e in service.endpoints]}
    if service.domain is not None:
        name, admin, _ = service.domain
        request["domain"] = {"name": name, "admin": admin,
                             "description": f"Users {service.name} makes for its resources"}
    return request


def registration_secrets(service: OpenStackService,
                         secrets: Mapping[str, object]) -> dict[str, str]:
    """The passwords of the service's registration, from the cloud's secrets."""
    out = {"password": str(secrets.get(secret_of(service), ""))}
    if service.domain is not None:
        out["domain_password"] = str(secrets.get(service.domain[2], ""))
    return out


def _register(site: Site, service: OpenStackService) -> list[str]:
    marker = f"{service.name}-keystone.done"
    if site.done(marker):
        return []
    secrets = read_secrets(site.state)
    passwords = registration_secrets(service, secrets)
    missing = [key for key, value in passwords.items() if not value]
    if missing:
        raise LabError(f"{service.name}: no secret for its {' and '.join(missing)} in "
                       f"{site.state}: render first")
    request = registration(site, service) | passwords
    with site.steps.timed("-", service.name, "Keystone user, services, endpoints"):
        keystone.register_service(site, request)
    site.mark_done(marker, f"{service.name} registered in Keystone")
    return [f"registered {service.name} ({e.type}) in Keystone: "
            f"{endpoint_urls(site, e)['internal']}" for e in service.endpoints]


# --- bring-up --------------------------------------------------------------------------------


def _start(site: Site, process: str) -> Callable[[NodeExec], list[str]]:
    def start(node: NodeExec) -> list[str]:
        actions = []
        for program in programs_of(process):
            if running(node, program):
                continue
            with site.steps.timed(node.name, program, "start"):
                node.services.start(program)
            app = wsgi.BY_PROGRAM.get(program)
            if app is not None:
                port = site.plan.port(app.process, app.port_name)
                with site.steps.timed(node.name, program, f"listening on :{port}"):
                    wait_listening(node, program, port, START_TIMEOUT_S,
                                   str(node.address.ip))
            actions.append(f"{node.name}: started {program}")
        return actions
    return start


def bring_up(site: Site, name: str) -> list[str]:
    """One service: Keystone registration, schema once, then its programs everywhere."""
    service = BY_NAME[name]
    controllers = [n for p in service.processes for n in site.members(p)]
    if not controllers or not service.installed():
        return []
    actions = _register(site, service)
    actions += _schema(site, service, controllers[0])
    # One process at a time on every node: the lab's two cores are the limit, and starting
    # all of Nova at once made each import slower, not the whole sooner (measured).
    for process in service.processes:
        actions += parallel(_start(site, process), site.members(process))
    for process in service.late:
        stopped = [n for n in site.members(process)
                   if not all(running(n, p) for p in programs_of(process))]
        if not stopped:
            continue
        if process == "nova-compute":
            # A nova-compute that asks before a conductor consumes waits out an RPC timeout.
            _await_reports(site, controllers[0], "nova-conductor")
        started = parallel(_start(site, process), stopped)
        actions += started
        if started and process == "nova-compute":
            actions += _discover_hosts(site, service, controllers[0], site.members(process))
    _await_groups(site, service)
    return actions


# The tooz group Ceilometer's central agents partition their work in: their namespace
# ("central") and the group of the discoveries they use ("global": every agent anywhere sees
# the same resources), as ceilometer.polling.manager.AgentManager.construct_group_id names
# it. Each agent polls the resources its hash ring gives it among the live members.
CENTRAL_AGENT = "ceilometer-central"
CENTRAL_GROUP = "central-global"


def tooz_groups(site: Site) -> dict[str, str]:
    """The tooz groups the deployment's agents keep in Redis: group -> the catalog process
    whose every running instance is a member."""
    plan = site.plan
    if plan.runs(CENTRAL_AGENT) and ceilometer_partitioned(plan):
        return {CENTRAL_GROUP: CENTRAL_AGENT}
    return {}


def _await_groups(site: Site, service: OpenStackService) -> None:
    for group, process in tooz_groups(site).items():
        if process in service.processes:
            _await_group(site, group, process)


def _await_group(site: Site, group: str, process: str) -> None:
    """Until the group's live members are exactly the agents started: every agent joined,
    and no dead one (a node's earlier life) still holds a share."""
    wanted = len(site.members(process))
    seen: list[tuple[str, ...] | None] = [None]

    def settled() -> bool:
        view = caches.redis_view(site, (group,))
        seen[0] = view.groups.get(group) if view is not None else None
        return seen[0] is not None and len(seen[0]) == wanted

    with site.steps.timed("-", process, f"members of tooz group {group}"):
        if wait_until(settled, START_TIMEOUT_S, interval=0.5):
            return
    members = seen[0]
    what = ("no Redis master answered" if members is None else
            f"the group counts {len(members)} live members, {wanted} agents run")
    raise LabError(f"{process}: tooz group {group} not settled within {START_TIMEOUT_S} s: "
                   f"{what} (see their logs)")


def starter(name: str) -> Callable[[Site], list[str]]:
    return lambda site: bring_up(site, name)


def _await_reports(site: Site, node: NodeExec, binary: str) -> None:
    """Until every reachable node that runs `binary` has a fresh row in Nova's services."""
    wanted = {n.name for n in site.members(binary)}
    deadline = time.monotonic() + START_TIMEOUT_S
    with site.steps.timed(node.name, binary, "reporting in Nova's services"):
        while time.monotonic() < deadline:
            reported = {s.host for s in compute_services(site) or () if s.binary == binary
                        and s.up}
            if wanted <= reported:
                return
            time.sleep(0.5)
    raise LabError(f"{binary} on {', '.join(sorted(wanted - reported))} never reported in "
                   f"Nova's services within {START_TIMEOUT_S} s (see its log)")


_COMPUTE_NODES_SQL = "SELECT host FROM nova.compute_nodes WHERE deleted = 0"
_HOST_MAPPINGS_SQL = "SELECT host FROM nova_api.host_mappings"


def _hosts(site: Site, sql: str) -> set[str]:
    """One column of host names, read on the first Galera member that answers."""
    for member in site.members(galera.PROCESS):
        try:
            return {row[0] for row in galera.mysql(member, sql)}
        except LabError:
            continue
    return set()


def _discover_hosts(site: Site, service: OpenStackService, node: NodeExec,
                    computes: list[NodeExec]) -> list[str]:
    """Map the compute nodes to cell1 as soon as each nova-compute has recorded its compute
    node (its first resource report): `nova-manage cell_v2 discover_hosts` maps only those,
    and each run costs an import of Nova, so it runs once they are all there."""
    tool = tool_argv(node, service.manage)
    wanted = {n.name for n in computes}
    deadline = time.monotonic() + DISCOVER_TIMEOUT_S
    with site.steps.timed(node.name, service.name, "map compute nodes to cell1"):
        while time.monotonic() < deadline:
            if wanted <= _hosts(site, _HOST_MAPPINGS_SQL):
                return [f"mapped {', '.join(sorted(wanted))} to cell1"]
            if wanted <= _hosts(site, _COMPUTE_NODES_SQL):
                node.run([*tool, "--config-file", service.conf, "cell_v2", "discover_hosts"],
                         timeout=MANAGE_TIMEOUT_S, check=False)
                continue
            time.sleep(1)
    recorded = _hosts(site, _COMPUTE_NODES_SQL)
    missing = sorted(wanted - _hosts(site, _HOST_MAPPINGS_SQL))
    why = ("discover_hosts did not map them" if set(missing) <= recorded
           else f"no compute node record from {', '.join(sorted(set(missing) - recorded))}")
    raise LabError(f"nova-compute on {', '.join(missing)} not mapped to a cell after "
                   f"{DISCOVER_TIMEOUT_S} s: {why} (see its log)")


# --- health ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceTable:
    """Where an OpenStack service's RPC services report themselves, and its rule for up.

    `sql` yields host, binary, disabled (0/1), seconds since the last report (NULL: never),
    and the age past which the service calls it down; a host's youngest row counts (Heat
    keeps the rows of an engine's earlier lives until it cleans them up)."""

    service: str                  # the OpenStack service (`SERVICES`)
    title: str
    binaries: tuple[str, ...]     # catalog processes that report (APIs write no heartbeat)
    sql: str


# Nova's own rule (its database servicegroup driver): a service is up while its last report
# is younger than service_down_time (nova's default; the lab does not change it).
SERVICE_DOWN_TIME_S = 60
# The RPC services (the APIs' rows are written once at start and never report).
RPC_BINARIES = ("nova-conductor", "nova-scheduler", "nova-compute")
SERVICE_TABLES: tuple[ServiceTable, ...] = (
    ServiceTable(
        "nova", "Nova", RPC_BINARIES,
        "SELECT host, `binary`, disabled, TIMESTAMPDIFF(SECOND, updated_at, UTC_TIMESTAMP()), "
        f"{SERVICE_DOWN_TIME_S} FROM nova.services WHERE deleted = 0 AND `binary` IN ("
        + ", ".join(f"'{b}'" for b in RPC_BINARIES) + ") ORDER BY `binary`, host"),
    # Heat's rule (`heat.common.service_utils.format_service`): up while the last report is
    # at most two report intervals old.
    ServiceTable(
        "heat", "Heat", ("heat-engine",),
        "SELECT host, `binary`, 0, TIMESTAMPDIFF(SECOND, COALESCE(updated_at, created_at), "
        "UTC_TIMESTAMP()), 2 * report_interval FROM heat.service WHERE deleted_at IS NULL "
        "ORDER BY `binary`, host"),
)


@dataclass(frozen=True)
class RpcService:
    """One row of a service list (`openstack compute service list`, `openstack orchestration
    service list`)."""

    service: str                   # the OpenStack service it belongs to
    host: str
    binary: str
    disabled: bool
    age_s: int | None              # since its last report; None: never reported
    down_after_s: int

    @property
    def up(self) -> bool:
        return self.age_s is not None and self.age_s <= self.down_after_s

    def to_json(self) -> dict[str, object]:
        return {"service": self.service, "host": self.host, "binary": self.binary,
                "disabled": self.disabled, "up": self.up, "last_report_s": self.age_s}


def parse_services(service: str, rows: list[list[str]]) -> tuple[RpcService, ...]:
    """A service table's rows, one per host and binary (the youngest)."""
    youngest: dict[tuple[str, str], RpcService] = {}
    for host, binary, disabled, age, down_after in rows:
        row = RpcService(service, host, binary, disabled == "1",
                         int(age) if age not in ("", "NULL") else None, int(down_after))
        kept = youngest.get((binary, host))
        if kept is None or (row.age_s is not None
                            and (kept.age_s is None or row.age_s < kept.age_s)):
            youngest[(binary, host)] = row
    return tuple(youngest.values())


def reporting_tables(site: Site) -> tuple[ServiceTable, ...]:
    """The service tables of the services the lab runs (planned and installed)."""
    return tuple(t for t in SERVICE_TABLES
                 if any(site.plan.runs(b) for b in t.binaries)
                 and BY_NAME[t.service].installed())


def read_table(site: Site, table: ServiceTable) -> tuple[RpcService, ...] | None:
    """One service table, read on the first Synced Galera member that answers (None when
    none does)."""
    for member in site.members(galera.PROCESS):
        try:
            return parse_services(table.service, galera.mysql(member, table.sql))
        except LabError:
            continue
    return None


def rpc_services(site: Site) -> dict[str, tuple[RpcService, ...] | None]:
    """Every reporting OpenStack service's list, as `openstack ... service list` shows it:
    OpenStack service -> its rows (None when no Galera member answers for them)."""
    return {t.service: read_table(site, t) for t in reporting_tables(site)}


def compute_services(site: Site) -> tuple[RpcService, ...] | None:
    """Nova's services (None when Nova does not run or no member answers)."""
    if not site.plan.runs("nova-conductor") or not BY_NAME["nova"].installed():
        return None
    return read_table(site, next(t for t in SERVICE_TABLES if t.service == "nova"))
