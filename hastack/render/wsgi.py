"""The WSGI server of the OpenStack APIs that run under one: gunicorn.

Stage 4 (render). The PyPI wheels of Keystone, Placement, Glance, Nova, Neutron and Heat ship no
server of their own, only application modules; gunicorn serves each of them (through
`hastack.agents.openstack_wsgi`, which keeps gunicorn's arguments away from the service's
option parser). Per node, gunicorn binds the node's own address on the catalog port, so
HAProxy can bind the same port on the VIPs; its control socket lives in the node's /run
(gunicorn's default is under $HOME, which every lab node shares).

The file is gunicorn's own format (Python assignments of plain literals), read with
`gunicorn --config`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile
from hastack.render.secrets import SecretSpec

SYSTEM = "wsgi"
AGENT = "hastack.agents.openstack_wsgi"
# A worker silent this long is killed and replaced (a request stuck on a dead back end).
WORKER_TIMEOUT_S = 60


@dataclass(frozen=True)
class WsgiApp:
    """One API application served by its own gunicorn (one program, one port)."""

    program: str          # the node's program (lab) or systemd unit (hosts)
    process: str          # the catalog process it is part of
    module: str           # the wheel's application module
    port_name: str        # the catalog port it binds
    conf: str             # where its gunicorn settings are rendered
    workers: int
    why_workers: str

    @property
    def wsgi_app(self) -> str:
        return f"{AGENT}:application({self.module!r})"

    @property
    def control_socket(self) -> str:
        return f"/run/{self.program}/gunicorn.ctl"


APPS: tuple[WsgiApp, ...] = (
    # Sync workers, one request each: a token issue is CPU-bound (bcrypt), so threads would
    # not add throughput; two per node keep a node serving while one worker is busy.
    WsgiApp("keystone", "keystone", "keystone.wsgi.api", "identity",
            "etc/keystone/gunicorn.conf.py", 2, "Sync workers: token issue is CPU-bound."),
    WsgiApp("placement-api", "placement-api", "placement.wsgi.api", "placement",
            "etc/placement/gunicorn.conf.py", 1,
            "One worker per node: three nodes serve the lab's scheduler."),
    WsgiApp("nova-api", "nova-api", "nova.wsgi.osapi_compute", "compute",
            "etc/nova/gunicorn-api.conf.py", 1,
            "One worker per node: the API only queues work for the conductors."),
    WsgiApp("nova-metadata-api", "nova-api", "nova.wsgi.metadata", "metadata",
            "etc/nova/gunicorn-metadata.conf.py", 1,
            "One worker per node: instances ask rarely."),
    WsgiApp("neutron-api", "neutron-server", "neutron.wsgi.api", "network",
            "etc/neutron/gunicorn.conf.py", 1,
            "One worker per node; the RPC side is neutron-rpc-server's."),
    WsgiApp("glance-api", "glance-api", "glance.wsgi.api", "image",
            "etc/glance/gunicorn.conf.py", 1,
            "One worker per node: image data streams through it."),
    WsgiApp("heat-api", "heat-api", "heat.wsgi.api", "orchestration",
            "etc/heat/gunicorn-api.conf.py", 1,
            "One worker per node: the API only hands stacks to the engines."),
    WsgiApp("heat-api-cfn", "heat-api-cfn", "heat.wsgi.cfn", "cloudformation",
            "etc/heat/gunicorn-cfn.conf.py", 1,
            "One worker per node: the CloudFormation API only hands stacks to the engines."),
)
BY_PROGRAM = {a.program: a for a in APPS}


def secrets_needed(plan: Plan) -> list[SecretSpec]:
    return []


def apps_of(process: str) -> list[WsgiApp]:
    return [a for a in APPS if a.process == process]


def gunicorn_settings(ctx: RenderContext, app: WsgiApp, node: str) -> str:
    plan = ctx.plan
    settings: list[tuple[str, object, str]] = [
        ("wsgi_app", app.wsgi_app, f"{app.module}, sys.argv reset before it parses options."),
        ("bind", [f"{ctx.address(node)}:{plan.port(app.process, app.port_name)}"],
         "The node's own address: HAProxy binds the same port on the VIPs."),
        ("workers", app.workers, app.why_workers),
        ("preload_app", True, "Import the service once, then fork: faster start, shared pages."),
        ("timeout", WORKER_TIMEOUT_S, ""),
        ("graceful_timeout", 10, ""),
        ("proc_name", app.program, ""),
        ("control_socket", app.control_socket,
         "In the node's /run: $HOME is shared by every node."),
        ("accesslog", "-", "Both logs to stdout: the node's supervisord keeps them."),
        ("errorlog", "-", ""),
    ]
    lines = [f"# gunicorn settings of {app.program} on {node}, cloud {plan.cloud.name}.",
             "# Rendered by hastack; edit cloud.yaml and re-render instead of this file."]
    for key, value, why in settings:
        if why:
            lines.append(f"# {why}")
        lines.append(f"{key} = {value!r}")
    return "\n".join(lines) + "\n"


def render(ctx: RenderContext) -> list[RenderedFile]:
    return [RenderedFile(node=node, path=app.conf, content=gunicorn_settings(ctx, app, node),
                         system=SYSTEM, mode=0o644)
            for app in APPS if ctx.plan.runs(app.process)
            for node in ctx.plan.nodes_running(app.process)]
