"""The catalog of control-plane processes: what each reference document says each process is
and how it is kept available. Facts live in `processes.yaml`, the documents they come from in
`references.yaml`; this module only loads and validates them and evaluates their conditions
against a cloud. Read by the planner (stage 2) and the linter (stage 3), which cites the
documents by title (`cite`), never by their internal id.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field
from ruamel.yaml import YAML

from hastack.errors import CatalogError
from hastack.model.cloud import CapacityLimits, Cloud, Role

Mode = Literal["A/A", "A/P"]
Strategy = Literal[
    "haproxy-vip", "app-cluster", "keepalived", "rpc", "client-list", "dhcp-agents",
    "l3-ha", "tooz", "pacemaker", "per-node", "none",
]


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Port(_Data):
    port: int
    name: str
    protocol: Literal["tcp", "udp", "vrrp"] = "tcp"


class HealthCheck(_Data):
    kind: Literal["http", "tcp", "command", "rpc-heartbeat"]
    port: int | None = None
    path: str | None = None
    command: str | None = None
    note: str | None = None


class FrontendSpec(_Data):
    name: str
    port: int
    mode: Literal["http", "tcp"] = "http"
    balance: Literal["roundrobin", "single-writer"] = "roundrobin"
    vips: tuple[str, ...] = ("internal", "public")
    check: HealthCheck


class Reference(_Data):
    """A reference document: cited by `title` (with a section), `short` in narrow columns."""

    title: str
    short: str
    about: str


class SeedNote(_Data):
    """What one reference document says about a process (`seed` is the document's id)."""

    seed: str
    mode: str | None = None
    strategy: str | None = None
    note: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reference(self) -> str:
        return reference(self.seed).title


class Condition(_Data):
    architecture: str | None = None
    services_any: tuple[str, ...] | None = None
    settings: dict[str, Any] | None = None
    pacemaker_cluster: bool | None = None


class Change(_Data):
    mode: Mode | None = None
    strategy: Strategy | None = None
    roles: tuple[Role, ...] | None = None


class Override(_Data):
    when: Condition
    set: Change


class ProcessSpec(_Data):
    service: str
    process: str
    mode: Mode
    strategy: Strategy
    roles: tuple[Role, ...]
    enabled_when: Condition | None = None   # None: planned when its service is enabled
    overrides: tuple[Override, ...] = ()
    place_on_all_roles: bool = False
    placed_on_setting: str | None = None    # a dotted setting naming the one node to run on
    also_with_strategy: Strategy | None = None  # also on every node of processes so guarded
    ports: tuple[Port, ...] = ()
    health: HealthCheck
    frontends: tuple[FrontendSpec, ...] = ()
    cluster: str | None = None
    client_list: str | None = None
    seeds: tuple[SeedNote, ...] = ()
    # Removed upstream since the reference documents were written: when, and what replaced
    # it. Still planned and rendered (the documents' architecture), never run.
    retired: str | None = None

    def needs_pacemaker_cluster(self) -> bool:
        return bool(self.enabled_when and self.enabled_when.pacemaker_cluster)


class CinderBackend(_Data):
    active_active: bool


class RoleFacts(_Data):
    controller_collapses: tuple[Role, ...]


class Catalog(_Data):
    strategies: dict[Strategy, str]
    roles: RoleFacts
    cinder_backends: dict[str, CinderBackend]
    processes: tuple[ProcessSpec, ...] = Field(min_length=1)

    def process(self, name: str) -> ProcessSpec:
        for spec in self.processes:
            if spec.process == name:
                return spec
        raise KeyError(name)


@cache
def load_references() -> dict[str, Reference]:
    """The bundled reference documents by id, validated once per process."""
    text = resources.files(__package__).joinpath("references.yaml").read_text(encoding="utf-8")
    data = YAML(typ="safe").load(text)
    try:
        return {str(key): Reference.model_validate(value) for key, value in data.items()}
    except (AttributeError, ValidationError) as exc:
        raise CatalogError(f"bundled references are invalid: {exc}") from None


def reference(ref_id: str) -> Reference:
    try:
        return load_references()[ref_id]
    except KeyError:
        raise CatalogError(f"unknown reference document {ref_id!r}") from None


def cite(*parts: tuple[str, str | None]) -> str:
    """Sources as people read them: cite(("002", "odd node counts >= 3"), ("001", None)) ->
    'OpenStack HA Guide (odd node counts >= 3); OpenStack for Architects'."""
    cited = []
    for ref_id, section in parts:
        title = reference(ref_id).title
        cited.append(f"{title} ({section})" if section else title)
    return "; ".join(cited)


@cache
def load_catalog() -> Catalog:
    """The bundled catalog, validated once per process."""
    text = resources.files(__package__).joinpath("processes.yaml").read_text(encoding="utf-8")
    data = YAML(typ="safe").load(text)
    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(f"bundled catalog is invalid: {exc}") from None
    names = [p.process for p in catalog.processes]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise CatalogError(f"bundled catalog lists processes twice: {sorted(duplicates)}")
    unknown = {n.seed for p in catalog.processes for n in p.seeds} - set(load_references())
    if unknown:
        raise CatalogError(f"bundled catalog cites unknown references: {sorted(unknown)}")
    return catalog


def setting_value(cloud: Cloud, dotted: str) -> Any:
    """The value of `settings.<dotted>` in a cloud, e.g. 'cinder.backend' -> 'ceph'."""
    value: Any = cloud.settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def condition_holds(condition: Condition, cloud: Cloud, pacemaker_cluster: bool) -> bool:
    """Whether every key of a catalog condition holds for this cloud."""
    if condition.architecture is not None and cloud.architecture.value != condition.architecture:
        return False
    if condition.services_any is not None and not any(
        cloud.has_service(s) for s in condition.services_any
    ):
        return False
    if condition.pacemaker_cluster is not None and condition.pacemaker_cluster != pacemaker_cluster:
        return False
    for dotted, wanted in (condition.settings or {}).items():
        actual = setting_value(cloud, dotted)
        if wanted == "set":
            if actual is None:
                return False
        elif isinstance(wanted, list):
            if actual not in wanted:
                return False
        elif actual != wanted:
            return False
    return True


# --- capacity ---------------------------------------------------------------------------------

class Limit(_Data):
    """One capacity limit with where it comes from and what to do past it."""

    short: str        # a column's worth: "RabbitMQ msg/s"
    value: float
    unit: str
    what: str
    source: str
    past: str


class Workload(_Data):
    ha_routers_per_project: int
    workers_per_process: int
    database_pool_per_worker: int
    nova_report_interval_s: float
    neutron_report_interval_s: float


class Report(_Data):
    """A periodic report one node's process sends: on which bus, how often, how heavy."""

    process: str
    bus: Literal["cell", "region"]
    interval: float | str     # seconds, or the name of a Workload interval
    messages: float
    writes: float
    why: str


class Capacity(_Data):
    warn_at: float = Field(gt=0, le=1)
    limits: dict[str, Limit]
    workload: Workload
    reports: tuple[Report, ...]
    database_clients: tuple[str, ...]


@cache
def load_capacity() -> Capacity:
    """The bundled capacity limits and load model, validated once per process: every limit
    and workload key must be one a cloud file can override (`capacity:`) and back."""
    text = resources.files(__package__).joinpath("capacity.yaml").read_text(encoding="utf-8")
    try:
        capacity = Capacity.model_validate(YAML(typ="safe").load(text))
    except ValidationError as exc:
        raise CatalogError(f"bundled capacity data is invalid: {exc}") from None
    overridable = set(CapacityLimits.model_fields) - {"warn_at"}
    bundled = set(capacity.limits) | set(Workload.model_fields)
    if overridable != bundled:
        raise CatalogError(f"capacity.yaml and the cloud file's capacity: keys differ: "
                           f"{sorted(overridable ^ bundled)}")
    processes = {p.process for p in load_catalog().processes}
    unknown = {r.process for r in capacity.reports} | set(capacity.database_clients)
    if unknown - processes:
        raise CatalogError(f"capacity.yaml names unknown processes: {sorted(unknown - processes)}")
    for report in capacity.reports:
        if isinstance(report.interval, str) and report.interval not in Workload.model_fields:
            raise CatalogError(f"capacity.yaml: unknown interval {report.interval!r}")
    return capacity
