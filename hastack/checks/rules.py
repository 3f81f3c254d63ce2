"""The HA linter's rules: one function per limitation or rule of the reference documents.

Each rule reads the plan (never the YAML) and yields findings that say what is wrong, why
(its source cites the documents by title and section, `hastack.catalog.cite`, whose ids are
those of `hastack/catalog/references.yaml`), and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterator

from hastack.catalog import cite, reference
from hastack.checks import Finding, Rule, rule
from hastack.model.cloud import Architecture
from hastack.plan import Plan

# Clusters that need a majority of voters to keep working (the references' quorum rule).
QUORUM_CLUSTERS: dict[str, str] = {
    "galera": "Galera",
    "rabbitmq": "RabbitMQ",
    "corosync": "Corosync/Pacemaker",
    "sentinel": "Redis Sentinel",
    "mongodb": "MongoDB",
}

# Strategies whose processes are meant to survive a node: one node running them is a SPOF.
REDUNDANT_STRATEGIES = frozenset({
    "haproxy-vip", "app-cluster", "keepalived", "rpc", "client-list", "dhcp-agents",
    "l3-ha", "tooz", "pacemaker",
})

# Clusters that lose quorum on a simultaneous restart and need a bootstrap (RDO keepalived).
FULL_RESTART_RECOVERY: dict[str, str] = {
    "galera": "Galera: bootstrap from the node with the highest seqno (grastate.dat, or "
              "mariadbd --wsrep-recover), never from a node merely marked safe_to_bootstrap",
    "rabbitmq": "RabbitMQ: start the node that stopped last first, or force_boot when it is gone",
    "mongodb": "MongoDB: re-form the replica set from a majority of members",
}


@rule("quorum-too-small", "error",
      "a quorum cluster has fewer than 3 voting members",
      cite(("002", "odd node counts >= 3"), ("001", "quorum needs at least three nodes")))
def quorum_too_small(plan: Plan, r: Rule) -> Iterator[Finding]:
    for cluster in plan.clusters:
        label = QUORUM_CLUSTERS.get(cluster.name)
        if label is None or cluster.voters >= 3:
            continue
        yield r.finding(
            cluster.name,
            f"{label} has {cluster.voters} voting member(s) "
            f"({', '.join(cluster.members + cluster.arbitrators)}): losing one loses quorum, "
            "so one failure stops the cluster instead of being survived",
            "run it on at least 3 nodes"
            + (", or add a Galera arbitrator (settings.galera.arbitrator: a third node "
               "running garbd)" if cluster.name == "galera" else ""),
        )


@rule("quorum-even", "warning",
      "a quorum cluster has an even number of voting members",
      cite(("002", "many services should use an odd number of nodes >= 3")))
def quorum_even(plan: Plan, r: Rule) -> Iterator[Finding]:
    for cluster in plan.clusters:
        label = QUORUM_CLUSTERS.get(cluster.name)
        if label is None or cluster.voters < 3 or cluster.voters % 2:
            continue
        yield r.finding(
            cluster.name,
            f"{label} has {cluster.voters} voting members: an even split (a partition down the "
            f"middle) leaves no side with a majority, and {cluster.voters} nodes tolerate no "
            f"more failures than {cluster.voters - 1}",
            "use an odd number of members (add or remove one node, or add a Galera arbitrator)",
        )


@rule("single-node-role", "error",
      "processes meant to be redundant run on a single node (single point of failure)",
      cite(("000", "roles spread or collapsed"), ("001", "failure scenarios")))
def single_node_role(plan: Plan, r: Rule) -> Iterator[Finding]:
    alone: dict[str, list[str]] = {}
    for p in plan.processes:
        # An arbitrator (garbd) is one node by design; it is counted by the quorum rules.
        arbitrator = plan.catalog.process(p.process).placed_on_setting is not None
        if len(p.nodes) == 1 and p.strategy in REDUNDANT_STRATEGIES and not arbitrator:
            alone.setdefault(p.nodes[0], []).append(p.process)
    for node, processes in sorted(alone.items()):
        yield r.finding(
            node,
            f"{node} is the only node running {', '.join(processes)}: losing it stops them "
            "(single point of failure)",
            "give the role to at least two more nodes (three for quorum clusters)",
        )


@rule("cinder-volume-lvm", "error",
      "cinder-volume on LVM cannot run active/active",
      cite(("001", "LVM back end is not HA"),
           ("000", "Architecture limitations: cinder-volume as a SPOF")))
def cinder_volume_lvm(plan: Plan, r: Rule) -> Iterator[Finding]:
    if not plan.runs("cinder-volume") or plan.cloud.settings.cinder.backend != "lvm":
        return
    yield r.finding(
        "cinder-volume",
        "the LVM back end serves a disk local to one node over iSCSI, so only one "
        "cinder-volume can serve it: it runs active/passive and its volumes are unreachable "
        "while that node is down",
        "use a back end with several writers (settings.cinder.backend: ceph, nfs, ...); "
        "with LVM, run cinder-volume under Pacemaker with fencing",
    )


@rule("lbaas-no-failover", "warning",
      "neutron-lbaas-agent load balancers are not failed over",
      cite(("000", "Architecture limitations: neutron-lbaas-agent as a SPOF"),
           ("004", "LBaaS agent")))
def lbaas_no_failover(plan: Plan, r: Rule) -> Iterator[Finding]:
    if not plan.runs("neutron-lbaas-agent"):
        return
    yield r.finding(
        "neutron-lbaas-agent",
        "each agent manages its own set of tenant load balancers (HAProxy driver); when its "
        "node fails they stay down until the node returns or they are recreated",
        "prefer Octavia (amphorae in active/standby); keep neutron-lbaas-agent under "
        "Pacemaker with fencing if you must run it",
    )


@rule("dhcp-agents-per-network", "error",
      "fewer than 2 DHCP agents serve each network",
      cite(("004", "DHCP agent: X >= 2 for HA, default 1"), ("001", "typically set to 2")))
def dhcp_agents_per_network(plan: Plan, r: Rule) -> Iterator[Finding]:
    if not plan.runs("neutron-dhcp-agent"):
        return
    wanted = plan.cloud.settings.neutron.dhcp_agents_per_network
    agents = len(plan.nodes_running("neutron-dhcp-agent"))
    if wanted < 2:
        yield r.finding(
            "neutron-dhcp-agent",
            f"dhcp_agents_per_network is {wanted}: each network has one DHCP server, so "
            "instances on it get no lease while that agent is down",
            "set settings.neutron.dhcp_agents_per_network: 2",
        )
    elif wanted > agents:
        yield r.finding(
            "neutron-dhcp-agent",
            f"dhcp_agents_per_network is {wanted} but only {agents} DHCP agent(s) are planned: "
            "networks get fewer agents than asked for",
            f"add network nodes or lower dhcp_agents_per_network to {agents}",
            severity="warning",
        )


@rule("l3-ha", "error",
      "L3 HA is off or cannot place routers on enough agents",
      cite(("004", "L3 agent: l3_ha, max/min_l3_agents_per_router"),
           ("001", "L3 agent SPOF")))
def l3_ha(plan: Plan, r: Rule) -> Iterator[Finding]:
    if not plan.runs("neutron-l3-agent"):
        return
    neutron = plan.cloud.settings.neutron
    agents = len(plan.nodes_running("neutron-l3-agent"))
    if not neutron.l3_ha:
        automatic = neutron.allow_automatic_l3agent_failover
        yield r.finding(
            "neutron-l3-agent",
            "l3_ha is false: each router lives on one L3 agent, and tenant traffic through it "
            "stops when that network node fails"
            + ("" if automatic else "; allow_automatic_l3agent_failover is false too, so "
               "routers of a dead agent are never rescheduled"),
            "set settings.neutron.l3_ha: true (VRRP between router replicas), or at least "
            "allow_automatic_l3agent_failover: true",
        )
        return
    if neutron.min_l3_agents_per_router < 2:
        yield r.finding(
            "neutron-l3-agent",
            f"min_l3_agents_per_router is {neutron.min_l3_agents_per_router}: an HA router may "
            "be created with one replica, which is no HA",
            "set settings.neutron.min_l3_agents_per_router: 2",
        )
    if neutron.min_l3_agents_per_router > agents:
        yield r.finding(
            "neutron-l3-agent",
            f"min_l3_agents_per_router is {neutron.min_l3_agents_per_router} but only {agents} "
            "L3 agent(s) are planned: no HA router can be created",
            f"add network nodes or set min_l3_agents_per_router to at most {agents}",
        )
    if 0 < neutron.max_l3_agents_per_router < 2:
        yield r.finding(
            "neutron-l3-agent",
            f"max_l3_agents_per_router is {neutron.max_l3_agents_per_router}: routers get a "
            "single replica",
            "set settings.neutron.max_l3_agents_per_router to 2 or more (3 survives two "
            "failures)",
        )


@rule("galera-multiple-writers", "error",
      "Galera receives writes on more than one node",
      cite(("001", "direct writes to one replica"),
           ("003", "deadlocks on SELECT ... FOR UPDATE")))
def galera_multiple_writers(plan: Plan, r: Rule) -> Iterator[Finding]:
    writers = plan.cloud.settings.galera.writers
    if not plan.runs("mariadb-galera") or writers <= 1:
        return
    yield r.finding(
        "mariadb-galera",
        f"{writers} writers: certification conflicts between nodes surface as deadlock errors "
        "on SELECT ... FOR UPDATE, which nova and neutron use",
        "set settings.galera.writers: 1 (HAProxy sends every connection to one node, the "
        "others are backups)",
    )


@rule("active-passive-without-fencing", "error",
      "active/passive resources run without fencing",
      cite(("001", "the resource manager first ensures the failed machine is no longer "
                   "running")))
def active_passive_without_fencing(plan: Plan, r: Rule) -> Iterator[Finding]:
    if plan.cloud.settings.pacemaker.fencing != "none":
        return
    guarded = [p.process for p in plan.active_passive]
    if plan.cloud.architecture is Architecture.pacemaker:
        guarded = [*(f"VIP {v.name}" for v in plan.vips), *guarded]
    if not guarded:
        return
    yield r.finding(
        "pacemaker",
        f"Pacemaker fails over {', '.join(guarded)} with fencing: none: a node that is "
        "only unreachable (not dead) keeps running them, and two copies act at once",
        "set settings.pacemaker.fencing: ipmi (real hosts) or lab (the lab's fence device)",
    )


@rule("vrrp-split-brain", "warning",
      "keepalived can hold a VIP on two nodes during a network partition",
      cite(("000", "Architecture limitations: Keepalived and network partitions")))
def vrrp_split_brain(plan: Plan, r: Rule) -> Iterator[Finding]:
    if not plan.runs("keepalived"):
        return
    multicast = plan.cloud.settings.keepalived.mode == "multicast"
    yield r.finding(
        "keepalived",
        "VRRP has no quorum: load balancers that cannot hear each other each claim the VIPs "
        "until the partition heals"
        + (" (multicast adverts also depend on the switch forwarding multicast)"
           if multicast else ""),
        "keep the load balancers on one redundant L2 segment; use unicast peers; measure it "
        "with a partition test; or choose architecture: pacemaker with fencing",
    )


@rule("ceilometer-central-uncoordinated", "error",
      "the ceilometer central agent runs without workload partitioning",
      cite(("000", "tooz + Redis"), ("001", "central agent must be A/P unless partitioned")))
def ceilometer_central_uncoordinated(plan: Plan, r: Rule) -> Iterator[Finding]:
    if not plan.runs("ceilometer-central"):
        return
    if plan.cloud.settings.ceilometer.coordination != "none":
        return
    yield r.finding(
        "ceilometer-central",
        "without tooz coordination several central agents poll the same resources (duplicate "
        "samples), so it must run as a single active/passive instance",
        "set settings.ceilometer.coordination: redis (tooz over Redis Sentinel)",
    )


@rule("vmware-nova-compute", "warning",
      "VMware nova-compute (one per vSphere cluster) must run active/passive",
      cite(("001", "VMware-based deployments")))
def vmware_nova_compute(plan: Plan, r: Rule) -> Iterator[Finding]:
    if plan.cloud.settings.nova.hypervisor != "vmware" or not plan.runs("nova-compute"):
        return
    nodes = plan.nodes_running("nova-compute")
    yield r.finding(
        "nova-compute",
        "with VMware one nova-compute manages a whole vSphere cluster; a second active copy "
        f"would corrupt its state, so it runs A/P under Pacemaker on {', '.join(nodes)}",
        "keep fencing configured (settings.pacemaker.fencing) so failover is safe",
    )


@rule("full-restart-recovery", "warning",
      "quorum clusters need a bootstrap after a full restart (power loss)",
      cite(("000", "Architecture limitations: manual recovery after a full cluster "
                   "restart")))
def full_restart_recovery(plan: Plan, r: Rule) -> Iterator[Finding]:
    if plan.cloud.settings.recovery.automatic:
        return
    for name, procedure in FULL_RESTART_RECOVERY.items():
        if plan.cluster(name) is None:
            continue
        yield r.finding(
            name,
            "if every member stops at once (e.g. a power outage) the cluster loses quorum "
            "and does not restart by itself",
            f"rehearse the recovery: {procedure}; once it is automated, set "
            "settings.recovery.automatic: true",
        )


@rule("monitoring-required", "warning",
      "no external monitoring of service health",
      cite(("000", "Architecture limitations: service monitoring and recovery "
                   "required")))
def monitoring_required(plan: Plan, r: Rule) -> Iterator[Finding]:
    if plan.cloud.settings.monitoring.enabled:
        return
    yield r.finding(
        "monitoring",
        "the architecture restarts nothing and alerts nobody by itself: a failed A/A "
        "instance silently lowers redundancy until the next failure",
        "monitor every process's health check and alert on it, then set "
        "settings.monitoring.enabled: true",
    )


@rule("rabbitmq-mirrored-queues", "warning",
      "RabbitMQ classic mirrored queues",
      cite(("001", "mirrored queues"), ("002", "mirrored two-node cluster")))
def rabbitmq_mirrored_queues(plan: Plan, r: Rule) -> Iterator[Finding]:
    if not plan.runs("rabbitmq") or plan.cloud.settings.rabbitmq.queues != "mirrored":
        return
    yield r.finding(
        "rabbitmq",
        f"classic mirrored queues (what {reference('001').title} and the "
        f"{reference('002').title} describe) are deprecated since RabbitMQ 3.9 and removed in "
        "4.0; they can lose messages on partition and resync slowly",
        "set settings.rabbitmq.queues: quorum (Raft-replicated queues)",
    )


@rule("rabbitmq-partition-never-heals", "warning",
      "RabbitMQ partition handling that leaves a frozen node partitioned",
      cite(("000", "RabbitMQ: app cluster"), ("002", "Highly available RabbitMQ")))
def rabbitmq_partition_never_heals(plan: Plan, r: Rule) -> Iterator[Finding]:
    handling = plan.cloud.settings.rabbitmq.partition_handling
    if not plan.runs("rabbitmq") or handling == "autoheal":
        return
    why = ("pause_minority acts only when a partition starts: a node frozen past net_ticktime "
           "(a paused VM, a stalled host) never sees itself in a minority, and after it thaws "
           "the cluster stays partitioned until a node is restarted (measured in hastack's "
           "lab: controller-freeze)") if handling == "pause_minority" else (
           "ignore leaves both sides of a partition running and diverging until an operator "
           "restarts one")
    yield r.finding(
        "rabbitmq", f"cluster_partition_handling = {handling}: {why}",
        "set settings.rabbitmq.partition_handling: autoheal (quorum queues keep their own "
        "Raft majority; autoheal restarts the losing side when the partition ends)",
    )


@rule("galera-arbitrator-on-member", "warning",
      "the Galera arbitrator runs on a node that is already a Galera member",
      cite(("002", "two nodes plus an arbitrator")))
def galera_arbitrator_on_member(plan: Plan, r: Rule) -> Iterator[Finding]:
    galera = plan.cluster("galera")
    if galera is None:
        return
    for arbitrator in galera.arbitrators:
        if arbitrator in galera.members:
            yield r.finding(
                arbitrator,
                f"garbd on {arbitrator} shares a failure domain with the Galera member there: "
                "losing that node loses two votes at once",
                "put the arbitrator on a node that is not a database node",
            )


@rule("swift-replicas", "warning",
      "fewer storage nodes than Swift's three replicas",
      cite(("000", "Swift services A/A")))
def swift_replicas(plan: Plan, r: Rule) -> Iterator[Finding]:
    ring = plan.cluster("swift-ring")
    if ring is None or len(ring.members) >= 3:
        return
    yield r.finding(
        "swift-ring",
        f"{len(ring.members)} storage node(s) for a 3-replica ring: replicas share nodes, so "
        "losing one node loses several copies of the same objects",
        "run the Swift storage services on at least 3 nodes",
    )


@rule("public-vip-without-tls", "warning",
      "the public VIP serves the APIs over plain HTTP",
      cite(("security-guide", "Secure communication: API endpoints behind TLS")))
def public_vip_without_tls(plan: Plan, r: Rule) -> Iterator[Finding]:
    public = plan.cloud.vips.public
    if public is None or plan.cloud.public_tls:
        return
    yield r.finding(
        "vips.public",
        f"the public VIP {public} carries passwords and tokens in clear text: anyone on the "
        "path between a user and the cloud reads them and can replay a token",
        "remove settings.tls.public: false (HAProxy then terminates TLS with a certificate "
        "hastack generates), or supply one with settings.tls.certificate and key",
    )
