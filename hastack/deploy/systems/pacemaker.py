"""Corosync and Pacemaker: the cluster started on its members, the CIB loaded once, and what
`crm_mon` says about nodes, quorum, fencing and where each resource runs.

Stage 5 (deploy), one system, written only against `NodeExec` and a `Site`. Corosync starts on
every member first (membership and quorum), then pacemakerd; the rendered CIB is loaded once
per deployment (`cibadmin --replace --scope configuration`), after which Pacemaker alone starts
and moves the resources it owns (the VIPs, the HAProxy clone, the A/P services).

The deployer may adapt the CIB's resource classes to its nodes (`Site.pacemaker_cib`): real
hosts load the rendered file unchanged; the lab swaps `systemd:` for its own agent.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from hastack.deploy.base import NodeExec, wait_until
from hastack.deploy.site import Site, running, start
from hastack.deploy.systems import parallel
from hastack.errors import LabError

COROSYNC, PACEMAKER = "corosync", "pacemaker"
CIB_FILE = "etc/pacemaker/cib.xml"
CIB_LOADED = "pacemaker-cib-loaded"
QUORUM_TIMEOUT_S = 60
RESOURCES_TIMEOUT_S = 60


@dataclass(frozen=True)
class ResourceState:
    id: str
    agent: str             # ocf:heartbeat:IPaddr2, stonith:fence_hastack, ...
    role: str              # Started, Stopped, ...
    nodes: tuple[str, ...]
    failed: bool
    clone: str | None = None   # the clone this is an instance of


@dataclass(frozen=True)
class ClusterView:
    """One member's `crm_mon --output-as=xml` read as data."""

    reporter: str                      # the member that answered
    quorate: bool
    online: tuple[str, ...]
    offline: tuple[str, ...]
    resources: tuple[ResourceState, ...]
    failed_actions: tuple[str, ...]
    fenced: tuple[str, ...]            # fencing history: "<target> by <origin>: <status>"

    def running_on(self, resource: str) -> tuple[str, ...]:
        return tuple(n for r in self.resources if _base_id(r.id) == resource
                     and r.role == "Started" for n in r.nodes)

    def primitives_not_started(self) -> list[ResourceState]:
        """Resources (not fence devices) that failed or do not run. A clone's instance for an
        offline node is listed Stopped by crm_mon: that one does not count, as long as the
        clone runs on every online member."""
        found = []
        for r in self.resources:
            if r.agent.startswith("stonith:"):
                continue
            short = r.clone is None or len(self.running_on(_base_id(r.id))) < len(self.online)
            if r.failed or (r.role != "Started" and short):
                found.append(r)
        return found

    def to_json(self) -> dict[str, object]:
        return {"reporter": self.reporter, "quorate": self.quorate,
                "online": list(self.online), "offline": list(self.offline),
                "resources": [{"id": r.id, "agent": r.agent, "role": r.role,
                               "nodes": list(r.nodes), "failed": r.failed}
                              for r in self.resources],
                "failed_actions": list(self.failed_actions), "fenced": list(self.fenced)}


def _base_id(rsc_id: str) -> str:
    return rsc_id.split(":", 1)[0]      # haproxy:0 (a clone instance) -> haproxy


def parse_crm_mon(xml: str, reporter: str) -> ClusterView:
    """`crm_mon -1 --output-as=xml --fence-history` -> ClusterView."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise LabError(f"{reporter}: crm_mon printed no XML: {exc}") from None
    quorum = root.find("./summary/current_dc")
    online = tuple(n.get("name", "") for n in root.iterfind("./nodes/node")
                   if n.get("online") == "true")
    offline = tuple(n.get("name", "") for n in root.iterfind("./nodes/node")
                    if n.get("online") != "true")
    def state(r: ET.Element, clone: str | None) -> ResourceState:
        return ResourceState(r.get("id", ""), r.get("resource_agent", ""), r.get("role", ""),
                             tuple(n.get("name", "") for n in r.iterfind("node")),
                             r.get("failed") == "true", clone)
    resources = (*(state(r, None) for r in root.iterfind("./resources/resource")),
                 *(state(r, c.get("id")) for c in root.iterfind("./resources/clone")
                   for r in c.iterfind("resource")))
    failed = tuple(f"{f.get('op_key', '')} on {f.get('node', '')}: "
                   f"{f.get('exitreason') or f.get('status', '')}"
                   for f in root.iterfind("./failures/failure"))
    fenced = tuple(f"{f.get('target', '')} by {f.get('delegate') or f.get('origin', '')}: "
                   f"{f.get('status', '')}"
                   for f in root.iterfind("./fence_history/fence_event"))
    return ClusterView(reporter, quorum is not None and quorum.get("with_quorum") == "true",
                       online, offline, resources, failed, fenced)


def cluster_view(site: Site) -> ClusterView | None:
    """What the first member that answers says, or None when none does."""
    for node in site.members(PACEMAKER):
        if not running(node, PACEMAKER):
            continue
        result = node.run(["crm_mon", "-1", "--output-as=xml", "--fence-history=1"],
                          check=False, timeout=15)
        if result.returncode == 0:
            return parse_crm_mon(result.stdout, node.name)
    return None


def bring_up(site: Site) -> list[str]:
    """Corosync then pacemakerd on the members that do not run them, until every reachable
    member is online in a quorate cluster; the CIB loaded once; then until the resources
    Pacemaker owns run (each VIP on one node, HAProxy on every online member)."""
    members = site.members(COROSYNC)
    if not members:
        return []
    actions = []
    for service in (COROSYNC, PACEMAKER):
        todo = [n for n in site.members(service) if not running(n, service)]
        actions += parallel(lambda n, s=service: [start(n, s, site.steps)], todo)  # type: ignore[misc]
    names = {n.name for n in members}
    with site.steps.timed("-", PACEMAKER, "every member online, quorate"):
        view = wait_until(lambda: _all_online(site, names), QUORUM_TIMEOUT_S, 0.5)
    if view is None:
        raise LabError(f"Pacemaker: members not all online with quorum after "
                       f"{QUORUM_TIMEOUT_S} s: {_describe(cluster_view(site))}")
    if not site.done(CIB_LOADED):
        actions.append(load_cib(site, members[0]))
    with site.steps.timed("-", PACEMAKER, "resources started"):
        ready = wait_until(lambda: _resources_started(site, names), RESOURCES_TIMEOUT_S, 0.5)
    if ready is None:
        raise LabError(f"Pacemaker: resources not started after {RESOURCES_TIMEOUT_S} s: "
                       f"{_describe(cluster_view(site))}")
    return actions


def load_cib(site: Site, node: NodeExec) -> str:
    rendered = site.rendered(node.name, CIB_FILE)
    if rendered is None:
        raise LabError(f"{node.name}: no rendered {CIB_FILE}")
    text = site.pacemaker_cib(rendered)
    path = "/run/hastack/cib-configuration.xml"
    node.write(path, _configuration_only(text).encode(), 0o600)
    with site.steps.timed(node.name, PACEMAKER, "load the CIB"):
        node.run(["cibadmin", "--replace", "--scope", "configuration", "--xml-file", path])
    node.remove(path)
    site.mark_done(CIB_LOADED, "the rendered CIB was loaded into Pacemaker")
    return f"{node.name}: CIB loaded"


def _configuration_only(cib: str) -> str:
    """The <configuration> element of a whole CIB (what --scope configuration replaces)."""
    root = ET.fromstring(cib)
    configuration = root if root.tag == "configuration" else root.find("configuration")
    if configuration is None:
        raise LabError("the rendered CIB has no <configuration>")
    return ET.tostring(configuration, encoding="unicode")


def _all_online(site: Site, names: set[str]) -> ClusterView | None:
    view = cluster_view(site)
    if view is None or not view.quorate or not names <= set(view.online):
        return None
    return view


def _resources_started(site: Site, names: set[str]) -> ClusterView | None:
    view = cluster_view(site)
    if view is None or not view.resources:
        return None
    return None if view.primitives_not_started() else view


def _describe(view: ClusterView | None) -> str:
    if view is None:
        return "no member's crm_mon answered"
    stopped = [r.id for r in view.resources if r.role != "Started"]
    return (f"quorate={view.quorate}, online {', '.join(view.online) or 'none'}, "
            f"offline {', '.join(view.offline) or 'none'}, not started: "
            f"{', '.join(stopped) or 'none'}; failed: {'; '.join(view.failed_actions) or 'none'}")
