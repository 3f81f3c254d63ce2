"""The plan mapped onto Ansible roles: which node is in which role, installs which packages,
runs which units and gets which rendered files from which role.

Stage 5 (deploy), pure: a `Plan` (and its rendered files) in, `HostAssignment`s out. The
inventory's groups, the staged variables of each host and the "not deployed" report all come
from here, so a process the host catalog does not know is reported, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hastack.catalog.hosts import HostCatalog, HostRole, load_host_catalog
from hastack.plan import Plan
from hastack.render import RenderedFile, systemd

COMMON = "common"      # the role every host gets: /etc/hosts, sysctls, hastack's venv


@dataclass(frozen=True)
class HostAssignment:
    """Everything one host gets, in the playbook's (protocol) order."""

    node: str
    roles: tuple[str, ...]
    processes: tuple[str, ...]
    packages: tuple[str, ...]
    pip: tuple[str, ...]
    units: tuple[str, ...]
    files: dict[str, tuple[RenderedFile, ...]]     # role -> files it places


@dataclass(frozen=True)
class NotDeployed:
    process: str
    nodes: tuple[str, ...]
    reason: str


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def role_of_file(catalog: HostCatalog, f: RenderedFile) -> HostRole | None:
    if f.system == systemd.SYSTEM:
        return catalog.role_of_unit(Path(f.path).stem)
    for role in catalog.roles:
        if f.system in role.files.systems:
            return role
    for role in catalog.roles:
        if any(f.path.startswith(prefix) for prefix in role.files.paths):
            return role
    return None


def assign_hosts(plan: Plan, files: Iterable[RenderedFile] = (),
                 catalog: HostCatalog | None = None) -> dict[str, HostAssignment]:
    """Every node of the cloud with its roles (in playbook order), packages and units."""
    catalog = catalog or load_host_catalog()
    files_by_node: dict[str, list[RenderedFile]] = {}
    for f in files:
        files_by_node.setdefault(f.node, []).append(f)
    assignments = {}
    for node in plan.cloud.nodes:
        planned = {p.process for p in plan.nodes_of(node.name)}
        roles = [r for r in catalog.roles
                 if r.role == COMMON or planned & set(r.processes)]
        processes = [p for r in roles for p in r.processes if p in planned]
        specs = [catalog.host_process(p) for p in processes]
        role_names = {r.role for r in roles}
        placed: dict[str, list[RenderedFile]] = {r.role: [] for r in roles}
        for f in files_by_node.get(node.name, []):
            owner = role_of_file(catalog, f)
            if owner is not None and owner.role in role_names:
                placed[owner.role].append(f)
        assignments[node.name] = HostAssignment(
            node=node.name,
            roles=tuple(r.role for r in roles),
            processes=tuple(processes),
            packages=_unique(pkg for s in specs if s for pkg in s.packages),
            pip=_unique(pkg for s in specs if s for pkg in s.pip),
            units=systemd.units_on(plan, node.name, catalog),
            files={role: tuple(fs) for role, fs in placed.items()},
        )
    return assignments


def restarts(catalog: HostCatalog, assignment: HostAssignment,
             f: RenderedFile) -> tuple[str, ...]:
    """The services a change of `f` restarts on its host: a unit file its own unit, a file the
    role lists its units there, any other file of the role every unit of the role there."""
    if f.system == systemd.SYSTEM:
        return (Path(f.path).stem,)
    role = role_of_file(catalog, f)
    if role is None:
        return ()
    if f.path in role.restarts:
        return role.restarts[f.path]
    own = {u for p in role.processes.values() for u in p.units}
    return tuple(u for u in assignment.units if u in own)


def role_groups(plan: Plan, catalog: HostCatalog | None = None) -> dict[str, tuple[str, ...]]:
    """role -> its hosts, in the cloud's node order (the first bootstraps a cluster)."""
    catalog = catalog or load_host_catalog()
    groups: dict[str, list[str]] = {r.role: [] for r in catalog.roles}
    for node, assignment in assign_hosts(plan, catalog=catalog).items():
        for role in assignment.roles:
            groups[role].append(node)
    return {role: tuple(nodes) for role, nodes in groups.items() if nodes}


def not_deployed(plan: Plan, catalog: HostCatalog | None = None) -> list[NotDeployed]:
    """Planned processes no role runs, with why: the deploy summary lists them."""
    catalog = catalog or load_host_catalog()
    return [NotDeployed(p.process, p.nodes, "no host role runs it yet")
            for p in plan.processes if catalog.role_of(p.process) is None]


def unplaced_files(plan: Plan, files: Iterable[RenderedFile],
                   catalog: HostCatalog | None = None) -> list[RenderedFile]:
    """Rendered files that no role of their node places (configs of processes not deployed)."""
    catalog = catalog or load_host_catalog()
    files = list(files)
    assignments = assign_hosts(plan, files, catalog)
    placed = {(f.node, f.path) for a in assignments.values() for fs in a.files.values()
              for f in fs}
    return [f for f in files if (f.node, f.path) not in placed]
