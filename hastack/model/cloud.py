"""The typed, immutable cloud model: what `cloud.yaml` says, validated, with safe defaults.

First stage of the flow (model -> plan -> ...). No I/O here: `hastack.model.load` reads the
file and turns pydantic's errors into line-accurate problems.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Role(StrEnum):
    """Server roles of the seeds; a controller collapses every role but compute."""

    controller = "controller"
    loadbalancer = "loadbalancer"
    database = "database"
    messaging = "messaging"
    network = "network"
    storage = "storage"
    compute = "compute"


class Sizing(StrEnum):
    """How big the rendered buffers and how polite the schedulers: `production` for real
    hosts; `lab` for many nodes sharing one small machine (see hastack.render.sizing)."""

    production = "production"
    lab = "lab"


class Architecture(StrEnum):
    keepalived = "keepalived"
    pacemaker = "pacemaker"


Service = Literal[
    "keystone", "glance", "nova", "neutron", "cinder", "horizon",
    "heat", "ceilometer", "swift", "sahara", "trove",
]
SERVICES: tuple[str, ...] = Service.__args__  # type: ignore[attr-defined]

NODE_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
# Regions, cells, racks, zones, PDUs: OpenStack spells regions like "RegionOne" or "phx".
PLACE_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,30}$"
HOME_REGION = "RegionOne"   # OpenStack's default region name
VRID = Field(ge=1, le=255)
CLOUD_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,15}$"
DEFAULT_PREFIX = 24


class Node(Frozen):
    name: str = Field(pattern=NODE_NAME_PATTERN)
    # "198.18.0.11" or "198.18.0.11/24"; the prefix (default /24) defines the node's subnet.
    address: ipaddress.IPv4Interface
    roles: tuple[Role, ...] = Field(min_length=1)
    # The interface that address is on: VRRP speaks there and VIPs are added to it.
    interface: str = Field(default="eth0", pattern=r"^[A-Za-z0-9_.-]{1,15}$")
    # Where the node sits: its region (None: the cloud's own, `region`), Nova cell, rack and
    # availability zone (None: its rack's zone), for the scale and failure-domain rules.
    region: str | None = Field(default=None, pattern=PLACE_NAME_PATTERN)
    cell: str | None = Field(default=None, pattern=PLACE_NAME_PATTERN)
    rack: str | None = Field(default=None, pattern=PLACE_NAME_PATTERN)
    zone: str | None = Field(default=None, pattern=PLACE_NAME_PATTERN)

    @field_validator("address", mode="before")
    @classmethod
    def _default_prefix(cls, value: object) -> object:
        if isinstance(value, str) and "/" not in value:
            return f"{value}/{DEFAULT_PREFIX}"
        return value

    @property
    def ip(self) -> ipaddress.IPv4Address:
        return self.address.ip

    def has_role(self, role: Role) -> bool:
        return role in self.roles


class Vips(Frozen):
    internal: ipaddress.IPv4Address
    public: ipaddress.IPv4Address | None = None

    def items(self) -> list[tuple[str, ipaddress.IPv4Address]]:
        pairs = [("internal", self.internal)]
        if self.public is not None:
            pairs.append(("public", self.public))
        return pairs


class NeutronSettings(Frozen):
    dhcp_agents_per_network: int = Field(default=2, ge=1)
    l3_ha: bool = True
    max_l3_agents_per_router: int = Field(default=3, ge=0)
    min_l3_agents_per_router: int = Field(default=2, ge=0)
    allow_automatic_l3agent_failover: bool = True
    lbaas: bool = False  # the deprecated neutron-lbaas agent; off unless asked for


class CinderSettings(Frozen):
    backend: Literal["lvm", "ceph", "nfs", "netapp", "pure"] = "ceph"


class GaleraSettings(Frozen):
    writers: int = Field(default=1, ge=1)
    arbitrator: str | None = None
    sst_method: Literal["mariabackup", "rsync"] = "mariabackup"


class RabbitmqSettings(Frozen):
    queues: Literal["quorum", "mirrored"] = "quorum"
    # autoheal acts when a partition ends, pause_minority only when one starts: a node that
    # was frozen (VM paused, host stalled) past net_ticktime never saw itself in a minority,
    # so under pause_minority the cluster stays partitioned until someone restarts it.
    partition_handling: Literal["pause_minority", "autoheal", "ignore"] = "autoheal"


class NovaSettings(Frozen):
    hypervisor: Literal["kvm", "qemu", "xen", "vmware"] = "kvm"


class PacemakerSettings(Frozen):
    fencing: Literal["none", "ipmi", "lab"] = "none"


class KeepalivedSettings(Frozen):
    # unicast peers by default: no dependence on multicast, fewer dual-master cases.
    mode: Literal["unicast", "multicast"] = "unicast"
    # VRIDs an existing deployment already uses, by VIP name (e.g. Kolla-Ansible's
    # keepalived_virtual_router_id, 51 by default); unpinned VIPs get a derived one.
    virtual_router_ids: dict[str, Annotated[int, VRID]] = {}


class CeilometerSettings(Frozen):
    coordination: Literal["redis", "none"] = "redis"


class MonitoringSettings(Frozen):
    enabled: bool = False


class RecoverySettings(Frozen):
    # True when something restarts quorum clusters after a full outage without an operator
    # (e.g. the Galera and RabbitMQ Pacemaker resource agents); the seeds' default is manual.
    automatic: bool = False


class FailoverSettings(Frozen):
    # The one target every HA timing (VRRP, HAProxy checks, Galera eviction...) is derived from.
    target_seconds: float = Field(default=2.0, gt=0, le=60)
    # "budget": derive every timing from target_seconds. "kolla-ansible": the timings
    # Kolla-Ansible ships by default, to measure the difference (bench/failover.py).
    profile: Literal["budget", "kolla-ansible"] = "budget"


_DNS_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_PATTERN = rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$"


class TlsSettings(Frozen):
    """TLS on the public VIP, terminated by HAProxy. Without `certificate`/`key`, hastack
    generates a CA and a server certificate per cloud (kept with its other secrets)."""

    public: bool = True
    # PEM files the user supplies, relative to cloud.yaml: the server certificate (then any
    # intermediates) and its private key. Both or neither.
    certificate: Path | None = None
    key: Path | None = None
    # The public VIP's DNS name, in the certificate's names beside its address; default
    # `<cloud>-public`.
    hostname: str | None = Field(default=None, max_length=253, pattern=HOSTNAME_PATTERN)

    @model_validator(mode="after")
    def _both_or_neither(self) -> TlsSettings:
        if (self.certificate is None) != (self.key is None):
            missing = "key" if self.key is None else "certificate"
            raise ValueError(f"a user certificate needs both certificate and key; {missing} "
                             "is missing")
        return self


class Settings(Frozen):
    neutron: NeutronSettings = NeutronSettings()
    cinder: CinderSettings = CinderSettings()
    galera: GaleraSettings = GaleraSettings()
    rabbitmq: RabbitmqSettings = RabbitmqSettings()
    nova: NovaSettings = NovaSettings()
    pacemaker: PacemakerSettings = PacemakerSettings()
    keepalived: KeepalivedSettings = KeepalivedSettings()
    ceilometer: CeilometerSettings = CeilometerSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    recovery: RecoverySettings = RecoverySettings()
    failover: FailoverSettings = FailoverSettings()
    tls: TlsSettings = TlsSettings()
    # None: the tool's own default, production for `hastack render`, lab for `hastack up`.
    sizing: Sizing | None = None


SharedService = Literal["keystone", "glance"]


class Region(Frozen):
    """Another region of the cloud: its own control plane (nodes with `region: NAME`), its own
    VIPs and endpoints. It may use the home region's Keystone (and Glance) instead of its own."""

    name: str = Field(pattern=PLACE_NAME_PATTERN)
    vips: Vips
    shares: tuple[SharedService, ...] = ()   # used from the home region, not run here
    # How this region reaches the home region: separate data centres are a WAN.
    link: Literal["lan", "wan"] = "wan"
    # Keystone federation (tokens of one region accepted by another) instead of one Keystone
    # stretched over the link, or a written reason for accepting the stretched one.
    keystone_federation: bool = False
    trade_off: str | None = None
    virtual_router_ids: dict[str, Annotated[int, VRID]] = {}


class Cell(Frozen):
    """A Nova cells v2 cell: its compute nodes, its own database and message bus (the nodes
    with `cell: NAME`), its conductors. cell0 and the super-conductor are always planned."""

    name: str = Field(pattern=PLACE_NAME_PATTERN)
    region: str | None = Field(default=None, pattern=PLACE_NAME_PATTERN)


class Rack(Frozen):
    """A failure domain below the zone: a top-of-rack switch, fed by a PDU."""

    name: str = Field(pattern=PLACE_NAME_PATTERN)
    pdu: str | None = Field(default=None, pattern=PLACE_NAME_PATTERN)
    zone: str | None = Field(default=None, pattern=PLACE_NAME_PATTERN)


class Zone(Frozen):
    """An availability zone: a set of racks (a failure zone) or a hardware class."""

    name: str = Field(pattern=PLACE_NAME_PATTERN)
    kind: Literal["failure", "hardware"] = "failure"


class VrrpNeighbour(Frozen):
    """Another cloud's (or appliance's) VRRP on one of this cloud's segments."""

    name: str
    # Kolla-Ansible's keepalived_virtual_router_id defaults to 51.
    virtual_router_ids: tuple[Annotated[int, VRID], ...] = (51,)


class Segment(Frozen):
    """An L2 segment the cloud's load balancers share with other VRRP speakers."""

    subnet: ipaddress.IPv4Network
    neighbours: tuple[VrrpNeighbour, ...] = Field(min_length=1)


class CapacityLimits(Frozen):
    """Overrides of the bundled capacity limits (hastack/catalog/capacity.yaml); None keeps
    the bundled value. Loads are derived from the cloud's size and these intervals."""

    computes_per_cell: int | None = Field(default=None, gt=0)
    rabbitmq_messages_per_second: float | None = Field(default=None, gt=0)
    galera_writes_per_second: float | None = Field(default=None, gt=0)
    haproxy_frontend_connections: int | None = Field(default=None, gt=0)
    vrrp_instances_per_segment: int | None = Field(default=None, gt=0, le=255)
    ha_routers_per_ha_network: int | None = Field(default=None, gt=0, le=255)
    # The workload side: how many HA routers the busiest project creates.
    ha_routers_per_project: int | None = Field(default=None, ge=0)
    # nova.conf report_interval and neutron's [agent] report_interval, in seconds.
    nova_report_interval_s: float | None = Field(default=None, gt=0)
    neutron_report_interval_s: float | None = Field(default=None, gt=0)
    # API and conductor workers per process (each holds its own database pool).
    workers_per_process: int | None = Field(default=None, gt=0)
    database_pool_per_worker: int | None = Field(default=None, gt=0)
    # The share of a limit past which the linter warns.
    warn_at: float | None = Field(default=None, gt=0, le=1)


class Cloud(Frozen):
    name: str = Field(pattern=CLOUD_NAME_PATTERN)
    # The name of the region the top-level nodes and VIPs form; `regions` adds others.
    region: str = Field(default=HOME_REGION, pattern=PLACE_NAME_PATTERN)
    architecture: Architecture = Architecture.keepalived
    nodes: tuple[Node, ...] = Field(min_length=1)
    vips: Vips
    services: tuple[Service, ...] = ("keystone",)
    settings: Settings = Settings()
    regions: tuple[Region, ...] = ()
    cells: tuple[Cell, ...] = ()
    racks: tuple[Rack, ...] = ()
    zones: tuple[Zone, ...] = ()
    segments: tuple[Segment, ...] = ()
    capacity: CapacityLimits = CapacityLimits()

    @property
    def partitioned(self) -> bool:
        """More than one control plane or message bus: other regions or Nova cells."""
        return bool(self.regions or self.cells)

    def region_of(self, node: Node) -> str:
        return node.region or self.region

    @cached_property
    def _nodes_by_name(self) -> dict[str, Node]:
        return {node.name: node for node in self.nodes}

    def node(self, name: str) -> Node:
        return self._nodes_by_name[name]

    def has_service(self, service: str) -> bool:
        return service in self.services

    def nodes_with_role(self, role: Role) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.has_role(role))

    @property
    def public_tls(self) -> bool:
        """Whether HAProxy terminates TLS on a public VIP."""
        return self.vips.public is not None and self.settings.tls.public

    @property
    def public_hostname(self) -> str:
        return self.settings.tls.hostname or f"{self.name}-public"
