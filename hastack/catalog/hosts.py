"""What a real host runs for each planned process: Ansible roles, Debian packages, systemd units.

Catalog data (`hosts.yaml`), read by the systemd renderer (stage 4), the inventory and the
Ansible deployer (stage 5). This module only loads and validates it; which node gets which
role is the deployer's mapping of the plan (`hastack.deploy.ansible.roles`).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML

from hastack.errors import CatalogError


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HostProcess(_Data):
    packages: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    # Files a wheel ships under its venv's etc/ that the service reads from /etc (a Debian
    # package would install them there): path under the venv -> path on the host.
    wheel_files: dict[str, str] = Field(default_factory=dict)


class RoleFiles(_Data):
    """The rendered files a role places: every file of these renderers' systems, and files
    of other systems under these path prefixes."""

    systems: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


class HostRole(_Data):
    role: str
    processes: dict[str, HostProcess] = Field(default_factory=dict)
    files: RoleFiles = RoleFiles()
    restarts: dict[str, tuple[str, ...]] = Field(default_factory=dict)   # path -> units
    # Directories its services need that no package makes (state of the PyPI services).
    directories: tuple[str, ...] = ()


class UnitSpec(_Data):
    description: str
    service: str | None = None      # hastack's name of the service, when not the unit's
    type: Literal["simple", "notify", "forking", "exec"] = "simple"
    notify_access: Literal["main", "all"] | None = None
    user: str | None = None
    group: str | None = None
    after: tuple[str, ...] = ()
    wants: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    environment: dict[str, str] = Field(default_factory=dict)
    environment_file: str | None = None
    working_directory: str | None = None
    runtime_directory: str | None = None
    runtime_directory_preserve: bool = False
    exec_start_pre: tuple[str, ...] = ()
    exec_start: str
    exec_reload: tuple[str, ...] = ()
    exec_stop: str | None = None
    kill_mode: Literal["control-group", "mixed", "process"] | None = None
    restart: Literal["no", "on-failure", "always"] = "on-failure"
    timeout_start_s: int | None = None
    timeout_stop_s: int | None = None
    limit_nofile: int | None = None


class HostCatalog(_Data):
    venv: str
    agents: str
    roles: tuple[HostRole, ...]
    units: dict[str, UnitSpec]

    def role(self, name: str) -> HostRole:
        for role in self.roles:
            if role.role == name:
                return role
        raise CatalogError(f"hosts.yaml: no role {name!r}")

    def role_of_unit(self, unit: str) -> HostRole | None:
        for role in self.roles:
            if any(unit in p.units for p in role.processes.values()):
                return role
        return None

    def unit_of_service(self) -> dict[str, str]:
        """hastack's service name -> the systemd unit that runs it."""
        return {spec.service or unit: unit for unit, spec in self.units.items()}

    def role_of(self, process: str) -> HostRole | None:
        for role in self.roles:
            if process in role.processes:
                return role
        return None

    def host_process(self, process: str) -> HostProcess | None:
        role = self.role_of(process)
        return role.processes[process] if role else None


@cache
def load_host_catalog() -> HostCatalog:
    """The bundled host catalog, validated once per process."""
    text = resources.files(__package__).joinpath("hosts.yaml").read_text(encoding="utf-8")
    try:
        catalog = HostCatalog.model_validate(YAML(typ="safe").load(text))
    except ValidationError as exc:
        raise CatalogError(f"bundled host catalog is invalid: {exc}") from None
    named = {u for r in catalog.roles for p in r.processes.values() for u in p.units}
    if missing := sorted(named - set(catalog.units)):
        raise CatalogError(f"hosts.yaml: roles name units it does not define: {missing}")
    processes = [p for r in catalog.roles for p in r.processes]
    if twice := sorted({p for p in processes if processes.count(p) > 1}):
        raise CatalogError(f"hosts.yaml: processes in two roles: {twice}")
    return catalog
