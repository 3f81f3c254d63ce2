"""hastack's RPC probe service (`hastack.agents.rpc_service`): its oslo.config file per node.

Stage 4 (render). The service stands where the cloud's active/active RPC services stand (the
catalog's `rpc` strategy: nova-conductor, nova-scheduler, cinder-scheduler...): one instance
per such node, all consuming one topic over RabbitMQ, so the lab can measure what an A/A RPC
service sees when a broker or a node fails. Like every OpenStack service it gets every
RabbitMQ node in `transport_url` (no load balancer) and the same oslo.messaging options
(`openstack.messaging_client`).
"""

from __future__ import annotations

from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile
from hastack.render.openstack import RABBIT_SECRET, IniFile, messaging_client
from hastack.render.secrets import SecretSpec

SYSTEM = "rpcservice"
PATH = "etc/hastack/rpc-service.conf"
TOPIC = "hastack-rpc"
SECTION = "rpc_service"


def service_nodes(plan: Plan) -> list[str]:
    """Nodes running an A/A RPC service of the plan, in the cloud's node order; none without
    RabbitMQ (nothing to talk over)."""
    if not plan.runs("rabbitmq"):
        return []
    rpc = {n for p in plan.processes if p.strategy == "rpc" and p.mode == "A/A" for n in p.nodes}
    return [n.name for n in plan.cloud.nodes if n.name in rpc]


def secrets_needed(plan: Plan) -> list[SecretSpec]:
    if not service_nodes(plan):
        return []
    return [SecretSpec(RABBIT_SECRET, purpose="RabbitMQ user 'openstack' of every service")]


def render(ctx: RenderContext) -> list[RenderedFile]:
    files = []
    for node in service_nodes(ctx.plan):
        ini = IniFile(f"rpc-service.conf of hastack's RPC probe service on {node}, cloud "
                      f"{ctx.plan.cloud.name}.\nRendered by hastack; edit cloud.yaml and "
                      "re-render instead of this file.")
        messaging_client(ctx, ini)
        ini.set("DEFAULT", "host", node,
                "The RPC server name: calls prepared with server=<node> reach this instance.")
        ini.set(SECTION, "topic", TOPIC,
                "Every instance consumes this topic: a call goes to any one of them.")
        # The RabbitMQ password is inside: root-only, like the services' files.
        files.append(RenderedFile(node=node, path=PATH, content=ini.text(), system=SYSTEM,
                                  mode=0o640, owner="root"))
    return files
