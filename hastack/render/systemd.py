"""Render the systemd units of every daemon a real host runs (`etc/systemd/system/*.service`).

Stage 4 (render); pure. A host runs the units the host catalog (`catalog/hosts.yaml`) names
for the processes the plan places on it; each unit runs the Debian package's daemon in the
foreground reading the rendered files at their real paths, as the lab runs it under
supervisord. The lab ignores these files (its nodes' init is supervisord); the Ansible
deployer places them and `systemd-analyze verify` checks them.
"""

from __future__ import annotations

from hastack.catalog.hosts import HostCatalog, load_host_catalog
from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile
from hastack.render.secrets import SecretSpec
from hastack.render.templating import render_template

SYSTEM = "systemd"
UNIT_DIR = "etc/systemd/system"


def secrets_needed(plan: Plan) -> list[SecretSpec]:
    return []


def unit_path(unit: str) -> str:
    return f"{UNIT_DIR}/{unit}.service"


def units_on(plan: Plan, node: str, catalog: HostCatalog | None = None) -> tuple[str, ...]:
    """The units a node runs, in the host catalog's (protocol) order."""
    catalog = catalog or load_host_catalog()
    planned = {p.process for p in plan.nodes_of(node)}
    units = [unit for role in catalog.roles for process, spec in role.processes.items()
             if process in planned for unit in spec.units]
    return tuple(dict.fromkeys(units))


def render(ctx: RenderContext) -> list[RenderedFile]:
    catalog = load_host_catalog()

    def expand(command: str) -> str:
        return command.format(venv=catalog.venv, agents=catalog.agents)

    files = []
    for node in ctx.plan.cloud.nodes:
        for unit in units_on(ctx.plan, node.name, catalog):
            spec = catalog.units[unit]
            text = render_template(
                SYSTEM, "unit.service.j2", unit=unit, node=node.name,
                cloud=ctx.plan.cloud.name, spec=spec, expand=expand,
                environment=[(k, expand(v)) for k, v in sorted(spec.environment.items())])
            files.append(RenderedFile(node.name, unit_path(unit), text, SYSTEM))
    return files
