"""Render HAProxy: one `haproxy.cfg` per node that runs HAProxy (stage 4, render).

Each plan frontend becomes one `listen` section bound on its VIPs, balancing the nodes that run
the process (each bound at its own node IP, so HAProxy can bind the same port on the VIP).
Galera's single-writer frontend sends every connection to one member, keeps the others as
`backup` and never fails back (a stick table keyed on the destination address). Check
timings come from the budget. With TLS on the public VIP (`hastack.render.tls`), every bind
on it terminates TLS with the cloud's certificate, and HTTP back ends are told the scheme
the client used (`X-Forwarded-Proto`, which oslo.middleware's http_proxy_to_wsgi reads), never
the client's own claim. Pure: a RenderContext in, files out.
"""

from __future__ import annotations

from dataclasses import dataclass

from hastack.plan import Frontend, Plan
from hastack.render import RenderContext, RenderedFile
from hastack.render.budget import Budget
from hastack.render.secrets import SecretSpec
from hastack.render.templating import render_template
from hastack.render.tls import HAPROXY_PEM
from hastack.render.tls import enabled as tls_enabled

SYSTEM = "haproxy"
CONFIG_PATH = "etc/haproxy/haproxy.cfg"
PIDFILE = "/run/haproxy.pid"
STATS_SOCKET = "/run/haproxy/admin.sock"
MAXCONN = 4096

# Traffic timeouts: how long an idle client or server may stay silent. They are not failure
# detection (the budget's checks are), and the budget has no field for them yet, so they live
# here, in one place, with the values TripleO ships (2 min for APIs, 90 min for database
# connections, which oslo.db keeps in a pool and recycles hourly).
HTTP_REQUEST_TIMEOUT_S = 10
API_IDLE_TIMEOUT_S = 120
QUEUE_TIMEOUT_S = 120
DB_IDLE_TIMEOUT_S = 90 * 60

# Galera's stick table: `nopurge`, so the writer's entry is never evicted, and room for one
# more entry per connection. Each connection's `stick store` first allocates an entry of its
# own (counted in the table's size) before merging it into the VIP's; in a full `nopurge` table
# that allocation fails and the store is skipped, silently. With `size 1` the entry kept the
# first writer forever, and HAProxy failed back to it as soon as it was UP again.
GALERA_STICK_TABLE_SIZE = MAXCONN + 1

# The load balancers' shared stick tables: a VIP that moves finds the same Galera writer on
# its new holder (an empty table would pick the first UP server, maybe a second writer).
PEERS = "hastack"

# TLS on the public VIP: Mozilla's "intermediate" profile (TLS 1.2 and 1.3, forward-secret
# AEAD ciphers); HAProxy's TLS 1.3 suites are OpenSSL's defaults, already all AEAD.
TLS_MIN_VERSION = "TLSv1.2"
TLS_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
               "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
               "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")

# An HTTP check passes on any 2xx or 3xx (OpenStack API roots answer 300 Multiple Choices).
HTTP_CHECK_EXPECT = "200-399"


@dataclass(frozen=True)
class Server:
    """One `server` line of a listen section."""

    name: str
    address: str
    port: int
    options: str


@dataclass(frozen=True)
class Listener:
    """One `listen` section: a plan frontend, bound on its VIPs."""

    name: str
    comment: str
    mode: str
    binds: tuple[str, ...]
    lines: tuple[str, ...]     # balancing, check and stickiness directives, in order
    servers: tuple[Server, ...]


def secrets_needed(plan: Plan) -> list[SecretSpec]:
    return []   # no stats page, no passwords: the admin socket is root-only


def render(ctx: RenderContext) -> list[RenderedFile]:
    listeners = [listener for f in ctx.plan.frontends if (listener := _listener(ctx, f))]
    files = []
    nodes = ctx.plan.nodes_running("haproxy")
    for node in nodes:
        content = render_template(
            SYSTEM, "haproxy.cfg.j2",
            cloud=ctx.plan.cloud.name, node=node, budget=ctx.budget,
            pidfile=PIDFILE, stats_socket=STATS_SOCKET, maxconn=MAXCONN,
            timeouts=_timeouts(ctx.budget), listeners=listeners,
            peers=_peers(ctx, nodes), peers_name=PEERS,
            tls=_tls_globals(ctx),
        )
        files.append(RenderedFile(node=node, path=CONFIG_PATH, content=content, system=SYSTEM))
    return files


def _peers(ctx: RenderContext, nodes: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, address:port) of every load balancer, when there is more than one to share
    stick tables with."""
    if len(nodes) < 2:
        return []
    port = ctx.plan.port(SYSTEM, "peers")
    return [(node, f"{ctx.address(node)}:{port}") for node in nodes]


def _tls_globals(ctx: RenderContext) -> dict[str, str]:
    if not tls_enabled(ctx.plan):
        return {}
    return {"ssl-default-bind-ciphers": TLS_CIPHERS,
            "ssl-default-bind-options": f"ssl-min-ver {TLS_MIN_VERSION} no-tls-tickets"}


def _timeouts(budget: Budget) -> dict[str, str]:
    return {
        "connect": f"{budget.haproxy_connect_timeout_ms}ms",
        "http-request": _duration(HTTP_REQUEST_TIMEOUT_S),
        "queue": _duration(QUEUE_TIMEOUT_S),
        "client": _duration(API_IDLE_TIMEOUT_S),
        "server": _duration(API_IDLE_TIMEOUT_S),
        # no `timeout check`: HAProxy then bounds each check by `inter`, which keeps
        # inter x fall the true detection time.
    }


def _duration(seconds: int) -> str:
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _title(frontend: Frontend) -> str:
    process = f" ({frontend.process})" if frontend.process != frontend.name else ""
    return f"{frontend.name}{process} on {', '.join(frontend.vips)} VIP"


def _listener(ctx: RenderContext, frontend: Frontend) -> Listener | None:
    binds = tuple(_bind(ctx, vip, frontend.port) for vip in frontend.vips)
    if not binds or not frontend.backends:
        return None
    if frontend.single_writer:
        return galera_single_writer_listener(ctx, frontend, binds)
    lines = [f"balance {frontend.balance}", *_check_lines(frontend)]
    if frontend.mode == "http":
        lines.append("option forwardfor")
        if tls_enabled(ctx.plan) and "public" in frontend.vips:
            lines += ["http-request set-header X-Forwarded-Proto https if { ssl_fc }",
                      "http-request set-header X-Forwarded-Proto http if !{ ssl_fc }"]
    servers = tuple(_server(ctx, frontend, node) for node in frontend.backends)
    return Listener(
        name=frontend.name,
        comment=f"{_title(frontend)}: {len(servers)} back ends, {_check_description(frontend)}",
        mode=frontend.mode, binds=binds, lines=tuple(lines), servers=servers,
    )


def _bind(ctx: RenderContext, vip: str, port: int) -> str:
    """`<address>:<port>`, with TLS termination on the public VIP when the cloud has it."""
    address = dict(ctx.plan.cloud.vips.items())[vip]
    if vip == "public" and tls_enabled(ctx.plan):
        return f"{address}:{port} ssl crt /{HAPROXY_PEM}"
    return f"{address}:{port}"


def galera_single_writer_listener(ctx: RenderContext, frontend: Frontend,
                                  binds: tuple[str, ...]) -> Listener:
    """Every connection to one Galera member; the others are backups taken in order.

    The stick table holds one entry per bound VIP (Galera binds one): the server the last
    connection went to. Once a backup has taken over, new connections stay on it when the old
    writer returns, so there are never two writers; after a restart (the table is empty) the
    first UP server in order is chosen. `shutdown-sessions` cuts the clients of a member marked
    down, so they reconnect to the new writer at once instead of waiting for their own timeouts.
    No `on-marked-up shutdown-backup-sessions`: that would cut the new writer's clients when
    the old writer comes back.
    """
    writer, *backups = frontend.backends
    # No `balance`: with a single active server there is nothing to balance.
    lines = (
        *_check_lines(frontend),
        "option tcpka",
        f"timeout client {_duration(DB_IDLE_TIMEOUT_S)}",
        f"timeout server {_duration(DB_IDLE_TIMEOUT_S)}",
        f"stick-table type ip size {GALERA_STICK_TABLE_SIZE} nopurge"
        + (f" peers {PEERS}" if len(ctx.plan.nodes_running(SYSTEM)) > 1 else ""),
        "stick on dst",
    )
    servers = tuple(
        _server(ctx, frontend, node, backup=node != writer,
                extra="on-marked-down shutdown-sessions")
        for node in frontend.backends
    )
    return Listener(
        name=frontend.name,
        comment=f"{_title(frontend)}: single writer {writer}, "
                f"backups {', '.join(backups) or 'none'}, no failback; "
                f"{_check_description(frontend)}",
        mode=frontend.mode, binds=binds, lines=lines, servers=servers,
    )


def _check_lines(frontend: Frontend) -> list[str]:
    if frontend.check.kind == "http":
        return [f"option httpchk GET {frontend.check.path or '/'}",
                f"http-check expect status {HTTP_CHECK_EXPECT}"]
    return []   # a plain TCP connect check, HAProxy's default for `check`


def _check_description(frontend: Frontend) -> str:
    port = f" :{frontend.check.port}" if frontend.check.port else ""
    if frontend.check.kind == "http":
        return f"HTTP check GET {frontend.check.path or '/'}{port}"
    return f"TCP check{port}"


def _server(ctx: RenderContext, frontend: Frontend, node: str, backup: bool = False,
            extra: str = "") -> Server:
    """A back end at its node IP, checked with the budget's inter/fall/rise."""
    budget = ctx.budget
    words = ["backup"] if backup else []
    words.append("check")
    if frontend.check.port and frontend.check.port != frontend.port:
        words.append(f"port {frontend.check.port}")
    words.append(f"inter {budget.haproxy_inter_ms}ms fall {budget.haproxy_fall} "
                 f"rise {budget.haproxy_rise}")
    if extra:
        words.append(extra)
    options = " ".join(words)
    return Server(name=node, address=ctx.address(node), port=frontend.port, options=options)
