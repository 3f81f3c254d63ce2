"""Importing a cloud that already exists: its files in, a cloud model and placed findings out.

Beside render in the flow: importers read model, catalog and checks, and nothing in deploy,
chaos or report imports them. One module per source (`kolla`: a Kolla-Ansible inventory and
globals.yml; `configs`: the files collected from each host), one for the grammars
(`parsers`), one for the rules only files can reveal (`rules`). Each source fills in
`CloudFacts`, every fact with the file and line it was read from; `finish` turns them into a
`Cloud`, runs the linter on it and points every finding at the line its fact came from.
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML

from hastack.catalog import Catalog
from hastack.checks import SEVERITY_ORDER, Finding, run_checks
from hastack.errors import ImportFileError, Problem
from hastack.importers.parsers import Origin
from hastack.model.cloud import Cloud
from hastack.model.load import semantic_problems
from hastack.plan import make_plan

__all__ = ["CloudFacts", "Imported", "ImportFinding", "Origin", "finish", "upstream_default"]


@dataclass(frozen=True)
class ImportFinding:
    """A linter finding placed at the file and line of the fact it is about."""

    origin: Origin
    finding: Finding

    def __str__(self) -> str:
        f = self.finding
        return f"{self.origin}: {f.severity} {f.rule} {f.subject}: {f.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.origin.file, "line": self.origin.line, **self.finding.as_dict()}


@dataclass(frozen=True)
class NodeFact:
    name: str
    address: ipaddress.IPv4Interface
    roles: tuple[str, ...]
    interface: str
    origin: Origin


@dataclass(frozen=True)
class Backend:
    """An HAProxy listen/backend section as far as HA goes: how it checks its servers."""

    name: str
    origin: Origin
    check: str                                 # httpchk | mysql-check | tcp | none | ...
    check_origin: Origin
    servers: tuple[Server, ...]
    galera: bool


@dataclass(frozen=True)
class Server:
    name: str
    address: str
    port: int | None
    backup: bool
    checked: bool
    inter_ms: float
    fall: int
    rise: int
    origin: Origin
    timing_from_default: str = ""              # "" when the line (or default-server) sets it


@dataclass(frozen=True)
class VrrpInstance:
    name: str
    node: str
    interface: str
    vrid: int
    state: str
    nopreempt: bool
    vips: tuple[ipaddress.IPv4Interface, ...]
    origin: Origin
    vrid_origin: Origin
    default_vrid_of: str = ""                  # "Kolla-Ansible" when the VRID is its default


@dataclass(frozen=True)
class ServerList:
    """A client-side list of servers (transport_url, memcache_servers, ...) in one file."""

    option: str
    servers: tuple[str, ...]                   # host or host:port, as written
    origin: Origin


@dataclass(frozen=True)
class Setting:
    """A timing a client reads, as set in a file or assumed from its project's default."""

    option: str
    value: float
    origin: Origin
    default_of: str = ""                       # the project whose default it is, when unset


@dataclass
class CloudFacts:
    """What an importer read, each fact with its origin; `finish` makes the Cloud."""

    name: str
    source: Origin                             # the directory or main file imported
    nodes: list[NodeFact] = field(default_factory=list)
    vips: dict[str, tuple[ipaddress.IPv4Address, Origin]] = field(default_factory=dict)
    services: dict[str, Origin] = field(default_factory=dict)
    settings: dict[str, tuple[Any, Origin]] = field(default_factory=dict)
    # Where the members of a cluster were read ("cluster.galera"), a node was first seen
    # ("node.ctl1"), ... : the places findings on the model are pointed at.
    origins: dict[str, Origin] = field(default_factory=dict)
    # What only the files show (the model has no words for it): checked by importers.rules.
    backends: list[Backend] = field(default_factory=list)
    vrrp: list[VrrpInstance] = field(default_factory=list)
    transport_urls: list[ServerList] = field(default_factory=list)
    rabbitmq_nodes: dict[str, Origin] = field(default_factory=dict)
    memcached_lists: list[ServerList] = field(default_factory=list)
    memcached_instances: dict[str, Origin] = field(default_factory=dict)
    cache_timeouts: list[tuple[Setting, Setting | None]] = field(default_factory=list)
    failover_target_s: float = 2.0
    # Linter rules that do not apply to what was imported (e.g. L3 agents under OVN).
    not_applicable: set[str] = field(default_factory=set)
    # The fix in the imported files' own terms, by linter rule (the linter says it in
    # cloud.yaml's terms).
    fixes: dict[str, str] = field(default_factory=dict)
    notes: list[tuple[Origin, str]] = field(default_factory=list)

    def set(self, dotted: str, value: Any, origin: Origin) -> None:
        self.settings[dotted] = (value, origin)

    def note(self, origin: Origin, message: str) -> None:
        self.notes.append((origin, message))


@dataclass(frozen=True)
class Imported:
    cloud: Cloud
    facts: CloudFacts
    findings: tuple[ImportFinding, ...]
    # Linter findings about facts no file states (e.g. monitoring from raw configs).
    unplaced: tuple[Finding, ...] = ()

    def has_errors(self) -> bool:
        return any(f.finding.severity == "error" for f in self.findings)


@cache
def _upstream_defaults() -> dict[str, Any]:
    text = resources.files("hastack.catalog").joinpath("upstream_defaults.yaml").read_text(
        encoding="utf-8")
    data: dict[str, Any] = YAML(typ="safe").load(text)
    return data


def upstream_default(project: str, option: str) -> Any:
    """The default a project ships for an option (hastack/catalog/upstream_defaults.yaml)."""
    return _upstream_defaults()[project]["values"][option]


def upstream_source(project: str) -> str:
    return str(_upstream_defaults()[project]["source"])


# The fact each linter rule is about, by rule id: a finding is placed at that fact's origin
# ("{subject}" is the finding's subject). Rules not listed fall back to the service's origin.
RULE_FACTS: dict[str, tuple[str, ...]] = {
    "quorum-too-small": ("cluster.{subject}",),
    "quorum-even": ("cluster.{subject}",),
    "full-restart-recovery": ("cluster.{subject}",),
    "swift-replicas": ("cluster.{subject}", "service.swift"),
    "single-node-role": ("node.{subject}",),
    "cinder-volume-lvm": ("settings.cinder.backend", "service.cinder"),
    "lbaas-no-failover": ("settings.neutron.lbaas", "service.neutron"),
    "dhcp-agents-per-network": ("settings.neutron.dhcp_agents_per_network",),
    "l3-ha": ("settings.neutron.l3_ha",),
    "galera-multiple-writers": ("settings.galera.writers",),
    "galera-arbitrator-on-member": ("settings.galera.arbitrator",),
    "active-passive-without-fencing": ("settings.pacemaker.fencing",),
    "vrrp-split-brain": ("settings.keepalived.mode", "cluster.keepalived"),
    "ceilometer-central-uncoordinated": ("settings.ceilometer.coordination",),
    "vmware-nova-compute": ("settings.nova.hypervisor",),
    "monitoring-required": ("settings.monitoring.enabled",),
    "rabbitmq-mirrored-queues": ("settings.rabbitmq.queues",),
}


def finish(facts: CloudFacts) -> Imported:
    """The Cloud the facts describe, linted; every finding placed at its fact's origin."""
    from hastack.importers import rules

    cloud = build_cloud(facts)
    plan = make_plan(cloud)
    placed: list[ImportFinding] = []
    unplaced: list[Finding] = []
    for finding in run_checks(plan):
        if finding.rule in facts.not_applicable:
            continue
        if finding.rule in facts.fixes:
            finding = replace(finding, fix=facts.fixes[finding.rule])
        origin = _origin_of(finding, facts, plan.catalog)
        if origin is None:
            unplaced.append(finding)
        else:
            placed.append(ImportFinding(origin, finding))
    placed.extend(rules.check_files(facts))
    placed.sort(key=lambda f: (SEVERITY_ORDER[f.finding.severity], f.origin.file,
                               f.origin.line or 0, f.finding.rule))
    return Imported(cloud, facts, tuple(placed), tuple(unplaced))


def _origin_of(finding: Finding, facts: CloudFacts, catalog: Catalog) -> Origin | None:
    known = {**facts.origins, **{key: origin for key, (_, origin) in facts.settings.items()},
             **{f"service.{name}": origin for name, origin in facts.services.items()}}
    keys = [k.format(subject=finding.subject) for k in RULE_FACTS.get(finding.rule, ())]
    with contextlib.suppress(KeyError):
        keys.append(f"service.{catalog.process(finding.subject).service}")
    return next((known[key] for key in keys if key in known), None)


def cloud_data(facts: CloudFacts) -> dict[str, Any]:
    """The cloud file's content (plain data), as `hastack import -o` writes it."""
    settings: dict[str, Any] = {}
    for dotted, (value, _) in sorted(facts.settings.items()):
        parts = dotted.removeprefix("settings.").split(".")
        target = settings
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    data: dict[str, Any] = {
        "name": facts.name,
        "architecture": "keepalived",
        "nodes": [{"name": n.name, "address": str(n.address), "roles": list(n.roles),
                   "interface": n.interface} for n in facts.nodes],
        "vips": {name: str(address) for name, (address, _) in facts.vips.items()},
        "services": list(facts.services),
    }
    if settings:
        data["settings"] = settings
    return data


def build_cloud(facts: CloudFacts) -> Cloud:
    """Validate the facts as a cloud; a problem names the file and line the value came from."""
    data = cloud_data(facts)
    try:
        cloud = Cloud.model_validate(data)
    except ValidationError as exc:
        raise ImportFileError([_problem(facts, tuple(e["loc"]), e["msg"])
                               for e in exc.errors()]) from None
    problems = [_problem(facts, loc, message) for loc, message in semantic_problems(cloud)]
    if problems:
        raise ImportFileError(problems)
    return cloud


def _problem(facts: CloudFacts, loc: tuple[Any, ...], message: str) -> Problem:
    origin = facts.source
    key = ".".join(str(p) for p in loc)
    if loc[:1] == ("nodes",) and len(loc) > 1 and isinstance(loc[1], int) \
            and loc[1] < len(facts.nodes):
        origin = facts.nodes[loc[1]].origin
        key = f"{facts.nodes[loc[1]].name}.{'.'.join(str(p) for p in loc[2:])}".rstrip(".")
    elif loc[:1] == ("vips",) and len(loc) > 1 and loc[1] in facts.vips:
        origin = facts.vips[str(loc[1])][1]
    elif loc[:1] == ("settings",):
        dotted = ".".join(str(p) for p in loc)
        origin = facts.settings.get(dotted, (None, origin))[1]
    return Problem(origin.file, origin.line, key, message)


def cloud_yaml(imported: Imported) -> str:
    """The imported cloud as a cloud file `hastack check` reads, each value's origin in a
    comment beside it."""
    import io

    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    facts = imported.facts
    data = cloud_data(facts)
    doc = CommentedMap()
    doc.yaml_set_start_comment(
        f"Imported by hastack from {facts.source.file}; the comment beside a value says "
        "where it was read.\nRe-run `hastack import` after changing the files, or edit this "
        "file to plan a change.")
    doc["name"] = data["name"]
    doc["architecture"] = data["architecture"]
    nodes = CommentedSeq()
    for index, (node, fact) in enumerate(zip(data["nodes"], facts.nodes, strict=True)):
        entry = CommentedMap(node)
        entry.fa.set_flow_style()
        nodes.append(entry)
        nodes.yaml_add_eol_comment(f"from {fact.origin}", index)
    doc["nodes"] = nodes
    vips = CommentedMap(data["vips"])
    for name, (_, origin) in facts.vips.items():
        vips.yaml_add_eol_comment(f"from {origin}", name)
    doc["vips"] = vips
    services = CommentedSeq(data["services"])
    for index, origin in enumerate(facts.services.values()):
        services.yaml_add_eol_comment(f"from {origin}", index)
    doc["services"] = services
    if "settings" in data:
        settings = CommentedMap()
        for group, values in data["settings"].items():
            block = CommentedMap(values)
            for key in values:
                origin = facts.settings[f"settings.{group}.{key}"][1]
                block.yaml_add_eol_comment(f"from {origin}", key)
            settings[group] = block
        doc["settings"] = settings
    stream = io.StringIO()
    yaml = YAML(typ="rt")
    yaml.width = 4096
    yaml.dump(doc, stream)
    return stream.getvalue()
