"""RabbitMQ: a seed, members with data together, strays joined; status and queues.

Stage 5 (deploy), one system, written only against `NodeExec`. A new cluster starts one
seed first (nodes booting together from empty data may form separate clusters); members with
data (a cluster that stopped or crashed) start together, since each waits for its peers'
tables; a member that is not in the cluster afterwards joins it explicitly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hastack.deploy.base import NodeExec, read_text, wait_until
from hastack.deploy.recovery import RabbitNode, RabbitPlan, parse_running_at_shutdown
from hastack.deploy.site import Site, running, start
from hastack.deploy.systems import parallel, wait_listening
from hastack.errors import LabError

PROCESS = "rabbitmq"
SERVICE = "rabbitmq"
HOME = "/var/lib/rabbitmq"
COOKIE = f"{HOME}/.erlang.cookie"
ENV_CONF = "etc/rabbitmq/rabbitmq-env.conf"
START_TIMEOUT_S = 90
AWAIT_ATTEMPTS = 20
_NODENAME = re.compile(r"^\s*(?:RABBITMQ_)?NODENAME=['\"]?([^'\"\s]+)", re.M)


def nodename(site: Site, node: str) -> str:
    """The Erlang node name the rendered rabbitmq-env.conf gives `node`."""
    match = _NODENAME.search(site.rendered(node, ENV_CONF) or "")
    name = match.group(1) if match else "rabbit@$HOSTNAME"
    return name.replace("${HOSTNAME}", node).replace("$HOSTNAME", node)


def rabbitmqctl(node: NodeExec, args: Sequence[str], timeout: float = 60,
                check: bool = True) -> str:
    return node.run(["rabbitmqctl", *args], timeout=timeout, check=check).stdout


def _json(node: NodeExec, args: Sequence[str], timeout: float = 30) -> Any:
    """rabbitmqctl's JSON answer; None when it fails or hangs (a broker still waiting for a
    lost peer's net tick answers nothing: an observation, not an error)."""
    try:
        out = node.run(["rabbitmqctl", args[0], "--formatter", "json", *args[1:]],
                       timeout=timeout, check=False)
    except LabError:
        return None
    if out.returncode != 0:
        return None
    try:
        return json.loads(out.stdout)
    except ValueError:
        return None


def cluster_status(node: NodeExec) -> dict[str, Any] | None:
    data = _json(node, ["cluster_status"])
    return data if isinstance(data, dict) else None


def has_data(site: Site, node: NodeExec) -> bool:
    return node.exists(f"{HOME}/mnesia/{nodename(site, node.name)}")


def wait_booted(node: NodeExec, site: Site) -> None:
    wait_listening(node, SERVICE, site.plan.port(PROCESS, "amqp"), START_TIMEOUT_S)
    # await_startup fails at once before the node registers with epmd: retry.
    for _ in range(AWAIT_ATTEMPTS):
        result = node.run(["rabbitmqctl", "await_startup", "--timeout", "60"], timeout=90,
                          check=False)
        if result.returncode == 0:
            return
    raise LabError(f"{node.name}: rabbitmqctl await_startup keeps failing")


def own_cookie(node: NodeExec) -> None:
    """The rendered cookie is 0400; rabbitmq must own its HOME and the cookie."""
    node.chown(HOME, "rabbitmq")
    if node.exists(COOKIE):
        node.chown(COOKIE, "rabbitmq")


def boot(node: NodeExec, site: Site) -> list[str]:
    own_cookie(node)
    action = start(node, SERVICE, site.steps)
    with site.steps.timed(node.name, SERVICE, "booted (await_startup)"):
        wait_booted(node, site)
    return [action]


def bring_up(site: Site) -> list[str]:
    members = site.members(PROCESS)
    if not members:
        return []
    for node in members:
        own_cookie(node)
    actions: list[str] = []
    live = [m for m in members if running(m, SERVICE)]
    if not live and not any(has_data(site, m) for m in members):
        actions += boot(members[0], site)
        live = [members[0]]
    actions += parallel(lambda n: boot(n, site), [m for m in members if m not in live])
    return actions + join_strays(site, live[0] if live else members[0])


def join_strays(site: Site, seed: NodeExec) -> list[str]:
    """Members that peer discovery did not cluster (that came up alone) join `seed`.

    A stray is a running member outside the seed's running nodes that sees only itself.
    `reset` deletes a member's data, its replicas of the quorum queues among them: a member
    is never reset on an unanswered question (a broker waiting for its peers' net tick
    answers nothing), nor because the seed does not see it yet while it sees others."""
    status = _answered_status(seed)
    clustered = {str(n) for n in status.get("running_nodes", ())}
    target = nodename(site, seed.name)
    strays = [m for m in site.members(PROCESS) if m.name != seed.name
              and nodename(site, m.name) not in clustered and _alone(site, m)]
    def join(node: NodeExec) -> list[str]:
        with site.steps.timed(node.name, SERVICE, f"join_cluster {target}"):
            for args in (["stop_app"], ["reset"], ["join_cluster", target], ["start_app"]):
                rabbitmqctl(node, args)
        return [f"{node.name}: joined RabbitMQ cluster"]

    return parallel(join, strays)


def _alone(site: Site, node: NodeExec) -> bool:
    """Whether the member answers that it runs in a cluster of its own."""
    own = cluster_status(node)
    return own is not None and [str(n) for n in own.get("running_nodes", ())] == [
        nodename(site, node.name)]


def _answered_status(seed: NodeExec) -> dict[str, Any]:
    """The seed's cluster status, waited for: no answer is no knowledge, never "alone"."""
    status = wait_until(lambda: cluster_status(seed), START_TIMEOUT_S, 1)
    if status is None:
        raise LabError(f"{seed.name}: rabbitmqctl cluster_status gave no answer for "
                       f"{START_TIMEOUT_S} s: cannot tell which members are strays")
    return status


# --- recovery --------------------------------------------------------------------------------


def evidence(site: Site, without: Sequence[str] = ()) -> list[RabbitNode]:
    """Every planned member: running, has data, whom it saw running when it stopped."""
    nodes = []
    for name in site.plan.nodes_running(PROCESS):
        node = site.nodes.get(name)
        erlang_name = nodename(site, name)
        if name in without or node is None:
            nodes.append(RabbitNode(name, erlang_name, available=False))
            continue
        mnesia = f"{HOME}/mnesia/{erlang_name}"
        text = read_text(node, f"{mnesia}/nodes_running_at_shutdown")
        nodes.append(RabbitNode(
            name, erlang_name, running=running(node, SERVICE), has_data=node.exists(mnesia),
            running_at_shutdown=parse_running_at_shutdown(text) if text else ()))
    return nodes


def act_on_plan(site: Site, plan: RabbitPlan) -> list[str]:
    """`hastack recover`'s RabbitMQ half: force_boot when the last to stop is gone, then
    the planned groups, each started together."""
    actions: list[str] = []
    if plan.force_boot:
        node = site.nodes[plan.force_boot]
        with site.steps.timed(node.name, SERVICE, "force_boot (last to stop is gone)"):
            rabbitmqctl(node, ["force_boot"])
        actions.append(f"{node.name}: rabbitmqctl force_boot")
    for group in (plan.first, plan.then):
        todo = [site.nodes[n] for n in group if not running(site.nodes[n], SERVICE)]
        actions += parallel(lambda n: boot(n, site), todo)
    return actions


# --- status ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RabbitView:
    running: tuple[str, ...]                      # node names of running members
    nodenames: tuple[str, ...]                    # their Erlang names
    partitions: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"running": list(self.running), "nodenames": list(self.nodenames),
                "partitions": self.partitions}


def view(site: Site) -> RabbitView | None:
    if not site.plan.nodes_running(PROCESS):
        return None
    members = [m for m in site.members(PROCESS) if running(m, SERVICE)]
    with ThreadPoolExecutor(max_workers=len(members) or 1) as pool:
        views = list(pool.map(cluster_status, members))
    live: set[str] = set()
    partitions: dict[str, Any] = {}
    for member, seen in zip(members, views, strict=True):
        if not seen:
            continue
        live.update(str(n) for n in seen.get("running_nodes", []))
        if seen.get("partitions"):
            partitions[member.name] = seen["partitions"]
    names = {nodename(site, n): n for n in site.plan.nodes_running(PROCESS)}
    return RabbitView(tuple(sorted(names.get(r, r) for r in live)), tuple(sorted(live)),
                      partitions)


def list_queues(site: Site, nodes: Sequence[str]) -> list[dict[str, Any]] | None:
    """Every queue with its type, messages and leader, from the first member that answers."""
    for name in nodes:
        node = site.nodes.get(name)
        if node is None or not running(node, SERVICE):
            continue
        rows = _json(node, ["list_queues", "name", "type", "messages", "leader", "members",
                            "online"], timeout=60)
        if isinstance(rows, list):
            return rows
    return None


# --- planned maintenance ---------------------------------------------------------------------

QUORUM_TIMEOUT_S = 60


def drain(site: Site, node: str) -> list[str]:
    """Before a planned stop: wait until no quorum queue would lose its majority without this
    member, then put it in maintenance mode (`rabbitmq-upgrade drain`): it hands the
    leadership of its queues to other members and closes its client connections, so its
    clients move to another node while this one still runs — instead of finding out from a
    dead socket."""
    target = site.nodes.get(node)
    if target is None or not running(target, SERVICE):
        return []
    target.run(["rabbitmq-upgrade", "await_online_quorum_plus_one",
                "--timeout", str(QUORUM_TIMEOUT_S)], timeout=QUORUM_TIMEOUT_S + 30,
               check=False)
    target.run(["rabbitmq-upgrade", "drain"], timeout=QUORUM_TIMEOUT_S)
    return [f"{node}: rabbitmq drained (maintenance mode)"]


def revive(site: Site, node: str) -> list[str]:
    """After the planned restart: out of maintenance mode. A restart of RabbitMQ 3.10 ends it
    already (seen in the lab); reviving anyway means a drain whose stop never happened does
    not leave the node serving nobody."""
    target = site.nodes.get(node)
    if target is None or not running(target, SERVICE):
        return []
    target.run(["rabbitmq-upgrade", "revive"], timeout=QUORUM_TIMEOUT_S, check=False)
    return [f"{node}: rabbitmq out of maintenance mode"]
