"""The WSGI server of the APIs that run under one: Keystone under gunicorn.

Stage 4 (render). The PyPI Keystone ships no server of its own; gunicorn serves its
application (through `hastack.agents.keystone_wsgi`, which keeps gunicorn's arguments away
from Keystone's option parser). Per node, gunicorn binds the node's own address on the catalog
port, so HAProxy can bind the same port on the VIPs; its control socket lives in the node's
/run (gunicorn's default is under $HOME, which every lab node shares).

The file is gunicorn's own format (Python assignments of plain literals), read with
`gunicorn --config`.
"""

from __future__ import annotations

from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile
from hastack.render.secrets import SecretSpec

SYSTEM = "wsgi"
KEYSTONE_CONF = "etc/keystone/gunicorn.conf.py"
KEYSTONE_APP = "hastack.agents.keystone_wsgi:application"
CONTROL_SOCKET = "/run/keystone/gunicorn.ctl"
# Sync workers, one request each: a token issue is CPU-bound (bcrypt), so threads would not
# add throughput; two per node keep a node serving while one worker is busy or recycled.
WORKERS = 2
# A worker silent this long is killed and replaced (a request stuck on a dead back end).
WORKER_TIMEOUT_S = 60


def secrets_needed(plan: Plan) -> list[SecretSpec]:
    return []


def keystone_gunicorn(ctx: RenderContext, node: str) -> str:
    plan = ctx.plan
    settings: list[tuple[str, object, str]] = [
        ("wsgi_app", KEYSTONE_APP, "Keystone's API, sys.argv reset before it parses options."),
        ("bind", [f"{ctx.address(node)}:{plan.port('keystone', 'identity')}"],
         "The node's own address: HAProxy binds the same port on the VIPs."),
        ("workers", WORKERS, "Sync workers: token issue is CPU-bound (bcrypt)."),
        ("preload_app", True, "Import Keystone once, then fork: faster start, shared pages."),
        ("timeout", WORKER_TIMEOUT_S, ""),
        ("graceful_timeout", 10, ""),
        ("proc_name", "keystone", ""),
        ("control_socket", CONTROL_SOCKET, "In the node's /run: $HOME is shared by every node."),
        ("accesslog", "-", "Both logs to stdout: the node's supervisord keeps them."),
        ("errorlog", "-", ""),
    ]
    lines = [f"# gunicorn settings of keystone on {node}, cloud {plan.cloud.name}.",
             "# Rendered by hastack; edit cloud.yaml and re-render instead of this file."]
    for key, value, why in settings:
        if why:
            lines.append(f"# {why}")
        lines.append(f"{key} = {value!r}")
    return "\n".join(lines) + "\n"


def render(ctx: RenderContext) -> list[RenderedFile]:
    if not ctx.plan.runs("keystone"):
        return []
    return [RenderedFile(node=node, path=KEYSTONE_CONF, content=keystone_gunicorn(ctx, node),
                         system=SYSTEM, mode=0o644)
            for node in ctx.plan.nodes_running("keystone")]
