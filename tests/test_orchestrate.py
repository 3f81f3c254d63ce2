"""`orchestrate.bring_up` on the demo cloud, driven against the simulated nodes of
`tests.fake_node`: the protocol-critical commands, in the order they were issued.

Every test runs the real components (`deploy.systems.*`); only the nodes are simulated. A
Galera joiner's state transfer and a RabbitMQ boot each last one poll of the product's
wait loops (0.25 s, 0.1 s), so a variant that starts joiners together, or boots a new
RabbitMQ cluster without its seed first, shows in the order of the log.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from hastack.deploy import orchestrate
from hastack.deploy.files import read_secrets, write_secrets
from hastack.deploy.recovery import Position
from hastack.deploy.site import Site
from hastack.deploy.systems import galera, loadbalancing, openstack, rabbitmq
from hastack.errors import LabError
from hastack.render import RenderedFile, render_cloud, secret_specs
from hastack.render.secrets import complete
from tests.conftest import example_plan
from tests.fake_node import World

UUID = "0fc18aae-e6cf-11f1-994e-133badfca964"
NODES = ("ctl1", "ctl2", "ctl3")


@pytest.fixture
def world(tmp_path: Path) -> World:
    """The demo cloud rendered (fixed secrets in the state dir), on three powered-on nodes
    with nothing started."""
    plan = example_plan("demo")
    secrets = complete({}, secret_specs(plan))
    write_secrets(tmp_path, secrets)
    by_node: dict[str, list[RenderedFile]] = {}
    for f in render_cloud(plan, secrets):
        by_node.setdefault(f.node, []).append(f)
    return World(plan, by_node, tmp_path)


def seed_grastate(world: World, node: str, seqno: int = -1, safe: int = 0) -> None:
    """grastate.dat as MariaDB 10.11 leaves it (tests/fixtures/recovery)."""
    world.nodes[node].files[galera.GRASTATE] = (
        "# GALERA saved state\nversion: 2.1\n"
        f"uuid:    {UUID}\nseqno:   {seqno}\nsafe_to_bootstrap: {safe}\n").encode()


def brought_up(world: World) -> Site:
    """A fresh bring-up, then a clean log: the healthy cluster the next step starts from."""
    orchestrate.bring_up(world.site)
    world.log.clear()
    return world.site


def galera_story(world: World) -> list[str]:
    """The Galera protocol steps of the log, in order, one short line each."""
    story = []
    for node, op, *rest in world.log:
        what = rest[0] if rest else ""
        if op == "start" and what == galera.MARIADB:
            story.append(f"{node} start mariadb {rest[1]}".strip())
        elif op == "synced":
            story.append(f"{node} synced")
        elif op == "remove" and what == galera.RECOVER_LOG:
            story.append(f"{node} remove recover-log")
        elif op == "run" and what.startswith("mariadb-install-db "):
            story.append(f"{node} install-db")
        elif op == "run" and what.startswith("mariadbd ") and "--wsrep-recover" in what:
            story.append(f"{node} wsrep-recover")
        elif op == "run" and what.startswith("mariadb ") and len(rest) == 2:
            story.append(f"{node} init SQL")
    return story


def rabbit_story(world: World, node: str | None = None) -> list[str]:
    """RabbitMQ starts and rabbitmqctl verbs (not the cluster_status queries), in order."""
    story = []
    for name, op, *rest in world.log:
        what = rest[0] if rest else ""
        if op == "start" and what == rabbitmq.SERVICE:
            story.append(f"{name} start rabbitmq")
        elif op == "run" and what.startswith("rabbitmqctl "):
            words = shlex.split(what)[1:]
            verb = " ".join(words[:2]) if words[0] == "join_cluster" else words[0]
            if verb != "cluster_status":
                story.append(f"{name} {verb}")
    return [s for s in story if node is None or s.split()[0] == node]


# --- a fresh cluster ---------------------------------------------------------------------


def test_fresh_cluster_bootstraps_ctl1_and_joins_one_at_a_time(world: World) -> None:
    site = world.site
    actions = orchestrate.bring_up(site)

    assert galera_story(world) == [
        "ctl1 install-db",
        "ctl1 start mariadb --wsrep-new-cluster",
        "ctl1 init SQL",
        "ctl2 start mariadb",
        "ctl2 synced",               # ctl3 starts only once ctl2's state transfer is done
        "ctl3 start mariadb",
        "ctl3 synced",
    ]
    sql = site.rendered("ctl1", galera.INIT_SQL)
    assert sql and "CREATE" in sql.upper()
    init = [e for e in world.log if e[1] == "run" and len(e) == 4 and e[0] != "client"
            and e[2].startswith("mariadb")]
    assert init == [("ctl1", "run", "mariadb --defaults-file=/etc/mysql/my.cnf -uroot", sql)]
    assert site.done(galera.INIT_DONE)
    assert world.primary == ["ctl1", "ctl2", "ctl3"]

    # RabbitMQ: the seed boots alone, then the others (together: any order).
    story = rabbit_story(world)
    assert story[:2] == ["ctl1 start rabbitmq", "ctl1 await_startup"]
    assert sorted(story[2:]) == ["ctl2 await_startup", "ctl2 start rabbitmq",
                                 "ctl3 await_startup", "ctl3 start rabbitmq"]
    for node in ("ctl2", "ctl3"):
        assert rabbit_story(world, node) == [f"{node} start rabbitmq", f"{node} await_startup"]
    assert world.running_nodes("rabbit@ctl1") == ["rabbit@ctl1", "rabbit@ctl2", "rabbit@ctl3"]

    assert loadbalancing.vip_holders(site) == {"internal": ["ctl1"], "public": ["ctl1"]}
    assert "ctl1: ran the Galera init SQL" in actions
    for node in NODES:
        assert all(world.running(node, s) for s in world.nodes[node].states), node


def test_second_bring_up_on_a_healthy_world_changes_nothing(world: World) -> None:
    site = brought_up(world)
    before = world.snapshot()

    assert orchestrate.bring_up(site) == []

    assert world.snapshot() == before
    assert [e for e in world.log if e[1] in ("start", "stop", "remove")] == []
    queries = ("SHOW GLOBAL STATUS", "rabbitmqctl cluster_status",   # reads, no change
               "sentinel get-master-addr-by-name", "redis-cli --no-auth-warning --raw")
    commands = [e[2] for e in world.log if e[1] == "run"]
    assert commands and [c for c in commands if not any(q in c for q in queries)] == []


# --- repairs -----------------------------------------------------------------------------


def test_one_stopped_member_recovers_its_position_and_rejoins(world: World) -> None:
    site = brought_up(world)
    world.kill("ctl2", galera.MARIADB)
    seed_grastate(world, "ctl2", seqno=-1)
    world.recovered["ctl2"] = Position(UUID, 42)

    actions = orchestrate.bring_up(site)

    assert galera_story(world) == [
        "ctl2 remove recover-log",
        "ctl2 wsrep-recover",
        f"ctl2 start mariadb --wsrep-start-position={UUID}:42",
        "ctl2 synced",
    ]
    assert world.primary == ["ctl1", "ctl3", "ctl2"]
    assert actions == ["ctl2: started mariadb"]


def test_power_loss_bootstraps_the_most_advanced_member(world: World) -> None:
    site = brought_up(world)
    world.power_off()
    for node, seqno in {"ctl1": 10, "ctl2": 12, "ctl3": 11}.items():
        seed_grastate(world, node, seqno=-1)
        world.recovered[node] = Position(UUID, seqno)

    orchestrate.bring_up(site)

    story = galera_story(world)
    examined, started = story[:6], story[6:]
    for node in NODES:        # every member examined, in parallel; the old log goes first
        assert examined.index(f"{node} remove recover-log") \
            < examined.index(f"{node} wsrep-recover")
    assert started == [
        f"ctl2 start mariadb --wsrep-new-cluster --wsrep-start-position={UUID}:12",
        f"ctl1 start mariadb --wsrep-start-position={UUID}:10",
        "ctl1 synced",
        f"ctl3 start mariadb --wsrep-start-position={UUID}:11",
        "ctl3 synced",
    ]                         # and no "init SQL": its marker is in the state dir
    grastate = (world.nodes["ctl2"].read(galera.GRASTATE) or b"").decode()
    assert re.search(r"^safe_to_bootstrap: 1$", grastate, re.M)
    ctl2 = [e[1:3] for e in world.log if e[0] == "ctl2"]
    assert ctl2.index(("write", galera.GRASTATE)) < ctl2.index(("start", galera.MARIADB))
    assert world.primary == ["ctl2", "ctl1", "ctl3"]
    assert rabbit_story(world, "ctl3") == ["ctl3 start rabbitmq", "ctl3 await_startup"]
    assert world.running_nodes("rabbit@ctl1") == ["rabbit@ctl1", "rabbit@ctl2", "rabbit@ctl3"]


def test_a_stray_rabbitmq_node_is_reset_and_joined_to_the_seed(world: World) -> None:
    world.strays.add("ctl3")

    orchestrate.bring_up(world.site)

    seed = rabbitmq.nodename(world.site, "ctl1")
    assert rabbit_story(world, "ctl3") == [
        "ctl3 start rabbitmq", "ctl3 await_startup",
        "ctl3 stop_app", "ctl3 reset", f"ctl3 join_cluster {seed}", "ctl3 start_app",
    ]
    for node in ("ctl1", "ctl2"):
        assert rabbit_story(world, node) == [f"{node} start rabbitmq", f"{node} await_startup"]
    assert world.running_nodes(seed) == ["rabbit@ctl1", "rabbit@ctl2", "rabbit@ctl3"]


def test_members_of_the_cluster_are_never_reset_when_the_seed_answers_late(world: World) -> None:
    """After a power cut every broker waits for its peers; the seed's cluster_status may
    time out meanwhile. That is no answer, not "nobody is clustered": resetting the members
    would delete their quorum queue replicas, and with them every confirmed message."""
    site = brought_up(world)
    world.rabbit_silent["ctl1"] = 2

    # What `hastack recover` runs once its plan has started every broker.
    assert rabbitmq.bring_up(site) == []

    assert rabbit_story(world) == []
    assert world.running_nodes("rabbit@ctl1") == ["rabbit@ctl1", "rabbit@ctl2", "rabbit@ctl3"]


def test_failed_recovery_never_reads_an_earlier_runs_position(world: World) -> None:
    site = brought_up(world)
    world.power_off()
    for node in NODES:
        seed_grastate(world, node, seqno=-1)
    world.recovered.update(ctl1=Position(UUID, 10), ctl2=Position(UUID, 12))  # ctl3: fails
    stale = f"2024-04-30  0 [Note] WSREP: Recovered position: {UUID}:5\n"
    world.nodes["ctl3"].files[galera.RECOVER_LOG] = stale.encode()

    with pytest.raises(LabError) as failure:
        orchestrate.bring_up(site)

    ctl3 = [s for s in galera_story(world) if s.startswith("ctl3 ")]
    assert ctl3 == ["ctl3 remove recover-log", "ctl3 wsrep-recover"]
    message = str(failure.value)
    assert "Galera recovery refused: ctl3: position unknown" in message
    assert "might be the most advanced" in message
    assert f"{UUID}:5" not in " ".join(" ".join(e[:4]) for e in world.log)
    assert [e for e in world.log if e[1:3] == ("start", galera.MARIADB)] == []
    assert world.primary == []
    assert not any(f"{UUID}:5" in (n.read(galera.START_ARGS) or b"").decode()
                   for n in world.nodes.values())


# --- the graph -----------------------------------------------------------------------------


def test_init_sql_runs_on_whichever_member_bootstraps(world: World) -> None:
    """ctl1 (the member the init SQL is rendered for) is unreachable: ctl2 bootstraps and
    runs the same SQL, once."""
    full = world.site
    site = Site(full.cloud, full.plan, {n: x for n, x in world.nodes.items() if n != "ctl1"},
                full.files, full.state, full.steps, client=full.client)
    orchestrate.bring_up(site)
    story = galera_story(world)
    assert story[:3] == ["ctl2 install-db", "ctl2 start mariadb --wsrep-new-cluster",
                         "ctl2 init SQL"]
    assert story.count("ctl2 init SQL") == 1 and site.done(galera.INIT_DONE)


def test_graceful_stop_order_gives_the_vips_away_first_and_stops_galera_last() -> None:
    running = ["mariadb", "galera-health", "keepalived", "haproxy", "rabbitmq", "memcached",
               "keystone"]
    order = orchestrate.graceful_stop_order(running)
    assert order == ["keepalived", "haproxy", "keystone", "memcached", "rabbitmq",
                     "galera-health", "mariadb"]
    assert orchestrate.graceful_stop_order([*running, "sshd"])[-1] == "sshd"


@pytest.mark.parametrize(("graph", "error"), [
    ((orchestrate.Component("a", lambda site: ["a"], needs=("nowhere",)),),
     "component a needs unknown nowhere"),
    ((orchestrate.Component("a", lambda site: ["a"], needs=("b",)),
      orchestrate.Component("b", lambda site: ["b"], needs=("a",))),
     "components form a cycle"),
])
def test_run_components_refuses_a_broken_graph(world: World,
                                               graph: tuple[orchestrate.Component, ...],
                                               error: str) -> None:
    with pytest.raises(LabError, match=error):
        orchestrate.run_components(world.site, graph)
    assert world.log == []


# --- a planned restart -------------------------------------------------------------------


def test_a_node_leaves_every_load_balancer_and_rabbitmq_before_it_stops(world: World) -> None:
    site = brought_up(world)
    orchestrate.take_out_of_service(site, "ctl1")

    admin = [(lb, cmd) for lb, op, cmd, *_ in world.log if op == "haproxy"
             and not cmd.startswith("show")]
    balancers = {lb for lb, _ in admin}
    assert balancers == set(NODES)                     # every HAProxy, not only the VIP's
    for lb in NODES:
        mine = [cmd for who, cmd in admin if who == lb]
        # The writer's clients are cut at once (their next request finds the new writer);
        # HTTP back ends drain: open requests finish, new ones go elsewhere.
        assert mine[:2] == ["set server galera/ctl1 state maint",
                            "shutdown sessions server galera/ctl1"]
        assert "set server keystone/ctl1 state drain" in mine
        assert not any("ctl2" in c or "ctl3" in c for c in mine)
    upgrade = [cmd for node, op, cmd, *_ in world.log
               if op == "run" and cmd.startswith("rabbitmq-upgrade")]
    assert [c.split()[1] for c in upgrade] == ["await_online_quorum_plus_one", "drain"]
    assert all(node == "ctl1" for node, op, cmd, *_ in world.log
               if op == "run" and cmd.startswith("rabbitmq-upgrade"))

    world.log.clear()
    orchestrate.return_to_service(site, "ctl1")
    readmitted = {(lb, cmd) for lb, op, cmd, *_ in world.log if op == "haproxy"
                  and cmd.startswith("set server")}
    assert ("ctl2", "set server galera/ctl1 state ready") in readmitted
    assert ("ctl3", "set server keystone/ctl1 state ready") in readmitted
    assert any(cmd == "rabbitmq-upgrade revive" for _, op, cmd, *_ in world.log if op == "run")


def test_the_vip_holder_hands_its_vips_over_before_anything_behind_them_moves(
        world: World) -> None:
    site = brought_up(world)
    holder = world.vip_holder()
    assert holder is not None
    world.log.clear()
    actions = orchestrate.take_out_of_service(site, holder)

    first = world.log[0]
    assert first == (holder, "stop", loadbalancing.KEEPALIVED), world.log[:3]
    new_holder = world.vip_holder()
    assert new_holder not in (None, holder)
    assert f"{holder}: VIP internal handed over to {new_holder}" in actions
    # HAProxy kept running on the old holder: the requests sent to it before the clients'
    # ARP caches followed are answered, not reset.
    assert world.running(holder, loadbalancing.HAPROXY)


def test_a_node_without_a_vip_keeps_its_keepalived_through_the_drain(world: World) -> None:
    site = brought_up(world)
    other = next(n for n in NODES if n != world.vip_holder())
    orchestrate.take_out_of_service(site, other)
    assert (other, "stop", loadbalancing.KEEPALIVED) not in world.log


def test_a_stopped_load_balancer_is_skipped_by_the_drain(world: World) -> None:
    site = brought_up(world)
    world.kill("ctl3", loadbalancing.HAPROXY)
    orchestrate.take_out_of_service(site, "ctl1")
    assert {lb for lb, op, *_ in world.log if op == "haproxy"} == {"ctl1", "ctl2"}


def test_compute_nodes_are_mapped_to_the_cell_once_after_nova_compute_started(
        world: World) -> None:
    orchestrate.bring_up(world.site)
    log = [(e[0], e[1], e[2]) for e in world.log if e[1] in ("start", "run")]
    started = log.index(("cmp1", "start", "nova-compute"))
    discovers = [i for i, (_, op, what) in enumerate(log)
                 if op == "run" and what.endswith("cell_v2 discover_hosts")]
    assert len(discovers) == 1 and discovers[0] > started
    conductors = [i for i, e in enumerate(log) if e[1:] == ("start", "nova-conductor")]
    assert len(conductors) == 3 and max(conductors) < started   # it needs a conductor
    assert world.mapped == {"cmp1"}


def test_ceilometer_is_up_once_every_central_agent_is_a_member_of_its_tooz_group(
        world: World) -> None:
    orchestrate.bring_up(world.site)
    started = [e[0] for e in world.log if e[1:3] == ("start", openstack.CENTRAL_AGENT)]
    assert sorted(started) == list(NODES)
    reads = [e for e in world.log if e[1] == "run" and len(e) > 3 and '"EVAL"' in e[3]]
    password = read_secrets(world.site.state)["redis_password"]
    # on redis-cli's input (an AUTH line), never on its command line
    assert reads and all(password not in e[2] and password in e[3] for e in reads)


def test_a_central_agent_that_never_joins_its_group_fails_the_bring_up_by_name(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openstack, "START_TIMEOUT_S", 1)
    world.tooz_absent = {"ctl2"}
    with pytest.raises(LabError, match=r"ceilometer-central: tooz group central-global not "
                                       r"settled within 1 s: the group counts 2 live members, "
                                       r"3 agents run"):
        orchestrate.bring_up(world.site)
