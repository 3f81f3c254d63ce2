"""Render memcached: `etc/memcached.conf` in Debian's format on every node running it.

Stage 4 (render); pure. memcached instances do not know each other: clients get the whole
list (`memcached_servers`, used by the OpenStack renderer for oslo.cache and keystonemiddleware)
and hash keys over it, so a lost instance costs only its share of the cache.
"""

from __future__ import annotations

from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile
from hastack.render.secrets import SecretSpec
from hastack.render.templating import render_template

SYSTEM = "memcached"
PROCESS = "memcached"
MEMORY_MB = 64          # a token and catalog cache; the lab measured 9 MiB in use
MAX_CONNECTIONS = 1024  # every API worker of every node keeps a few connections


def memcached_servers(plan: Plan) -> list[str]:
    """`ip:11211` of every instance, in node order: the client-side server list."""
    port = plan.port(PROCESS)
    return [f"{plan.cloud.node(name).ip}:{port}" for name in plan.nodes_running(PROCESS)]


def secrets_needed(plan: Plan) -> list[SecretSpec]:
    return []


def render(ctx: RenderContext) -> list[RenderedFile]:
    return [
        RenderedFile(
            node, "etc/memcached.conf",
            render_template(SYSTEM, "memcached.conf.j2", address=ctx.address(node),
                            port=ctx.plan.port(PROCESS),
                            memory_mb=MEMORY_MB, max_connections=MAX_CONNECTIONS),
            SYSTEM,
        )
        for node in ctx.plan.nodes_running(PROCESS)
    ]


def command_line(conf: str) -> list[str]:
    """The memcached arguments a Debian-format config stands for, as Debian's
    start-memcached derives them: one option per line, comments and `logfile` dropped.
    memcached stays in the foreground (no -d), as a supervisor such as the lab wants it."""
    args: list[str] = []
    for raw in conf.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("logfile"):
            continue
        args.extend(line.split())
    return args
