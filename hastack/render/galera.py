"""MariaDB/Galera: my.cnf of every database node, garbd's config on the arbitrator, the
health responder's config and the one-off bootstrap SQL.

Stage 4 (render). Pure: the plan and the timing budget in, files out. Galera's failure
detector (EVS) takes its timings from the budget; Galera refuses to start when they are out of
its ranges, so they are checked here (`check_evs_timings`) rather than on the lab.

The databases and accounts of the OpenStack services come from the OpenStack renderer's table
(`service_databases`): user = service, password secret `db_<service>`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from hastack.errors import RenderError
from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile
from hastack.render.budget import Budget
from hastack.render.openstack import service_databases
from hastack.render.secrets import SecretSpec
from hastack.render.templating import render_template

SYSTEM = "galera"
PROCESS = "mariadb-galera"
ARBITRATOR = "garbd"

PROVIDER = "/usr/lib/galera/libgalera_smm.so"   # Debian's galera-4
SOCKET = "/run/mysqld/mysqld.sock"
DATADIR = "/var/lib/mysql"

MY_CNF = "etc/mysql/my.cnf"
INIT_SQL = "etc/mysql/hastack-init.sql"
GARBD_CONF = "etc/garbd.conf"
HEALTH_INI = "etc/hastack/galera-health.ini"

ROOT_SECRET = "db_root"
SST_SECRET = "db_sst"
HEALTH_SECRET = "db_health"
SST_USER = "hastack_sst"
HEALTH_USER = "hastack_health"

# Galera's own ranges (gcomm/src/evs_proto.cpp), measured with garbd on galera-4:
# keepalive in [0.1 s, suspect/3), inactive_check < suspect/2, suspect <= inactive,
# install in [inactive_check, inactive).
EVS_MIN_PERIOD_S = 0.1
# Flow control of a single-writer cluster: write sets a member may lag before commits pause.
SINGLE_WRITER_FC_LIMIT = 256


@dataclass(frozen=True)
class EvsTimings:
    keepalive_s: float
    inactive_check_s: float
    suspect_s: float
    inactive_s: float
    install_s: float

    @property
    def join_retrans_s(self) -> float:
        """How often a member resends its JOIN while the members agree on a new view. Each
        view change (a member leaving for a planned restart too) holds every commit until the
        members agree; at Galera's default (1 s), one lost round costs commits 1 s, two cost
        2 s. Half a keepalive period keeps a view change well under a second."""
        return max(EVS_MIN_PERIOD_S, self.keepalive_s / 2)

    def provider_options(self) -> list[str]:
        return [
            f"evs.join_retrans_period={iso_duration(self.join_retrans_s)}",
            f"evs.keepalive_period={iso_duration(self.keepalive_s)}",
            f"evs.inactive_check_period={iso_duration(self.inactive_check_s)}",
            f"evs.suspect_timeout={iso_duration(self.suspect_s)}",
            f"evs.inactive_timeout={iso_duration(self.inactive_s)}",
            f"evs.install_timeout={iso_duration(self.install_s)}",
        ]


def iso_duration(seconds: float) -> str:
    """Galera's ISO 8601 period, e.g. 0.5 -> PT0.5S, 2.0 -> PT2S."""
    return f"PT{seconds:g}S"


def check_evs_timings(budget: Budget) -> EvsTimings:
    """The budget's EVS timings, refused when Galera would refuse them at start."""
    t = EvsTimings(budget.galera_keepalive_s, budget.galera_inactive_check_s,
                   budget.galera_suspect_s, budget.galera_inactive_s, budget.galera_install_s)
    problems = []
    if not EVS_MIN_PERIOD_S <= t.keepalive_s < t.suspect_s / 3:
        problems.append(f"evs.keepalive_period {t.keepalive_s:g}s not in "
                        f"[{EVS_MIN_PERIOD_S:g}s, suspect/3)")
    if not 0 < t.inactive_check_s < t.suspect_s / 2:
        problems.append(f"evs.inactive_check_period {t.inactive_check_s:g}s not below suspect/2")
    if not t.keepalive_s <= t.inactive_check_s <= t.suspect_s <= t.inactive_s:
        problems.append("EVS timings not ordered keepalive <= inactive_check <= suspect "
                        "<= inactive")
    if not t.inactive_check_s <= t.install_s < t.inactive_s:
        problems.append(f"evs.install_timeout {t.install_s:g}s not in "
                        "[inactive_check, inactive)")
    if problems:
        raise RenderError("Galera would refuse the timing budget: " + "; ".join(problems))
    return t


# --------------------------------------------------------------------------------------------
# Shapes shared by my.cnf and garbd.conf


def galera_members(plan: Plan) -> tuple[str, ...]:
    return plan.nodes_running(PROCESS)


def arbitrator_node(plan: Plan) -> str | None:
    nodes = plan.nodes_running(ARBITRATOR)
    return nodes[0] if nodes else None


def gcomm_address(ctx: RenderContext) -> str:
    """gcomm:// every data member, then the arbitrator (it votes, so a joiner may ask it)."""
    plan = ctx.plan
    peers = list(galera_members(plan))
    arbitrator = arbitrator_node(plan)
    if arbitrator is not None and arbitrator not in peers:
        peers.append(arbitrator)
    port = plan.port(PROCESS, "galera-replication")
    return "gcomm://" + ",".join(f"{ctx.address(n)}:{port}" for n in peers)


def _group_options(ctx: RenderContext, node: str) -> list[str]:
    """Provider options every group member shares: where to listen, how fast to evict."""
    return [
        f"gmcast.listen_addr=tcp://{ctx.address(node)}:"
        f"{ctx.plan.port(PROCESS, 'galera-replication')}",
        *check_evs_timings(ctx.budget).provider_options(),
        "pc.recovery=TRUE",
    ]


# --------------------------------------------------------------------------------------------
# Secrets


def secrets_needed(plan: Plan) -> list[SecretSpec]:
    if not plan.runs(PROCESS):
        return []
    specs = [
        SecretSpec(ROOT_SECRET, purpose="MariaDB root (socket or password, never anonymous)"),
        SecretSpec(HEALTH_SECRET, purpose=f"MariaDB '{HEALTH_USER}' of the Galera health check"),
    ]
    if plan.cloud.settings.galera.sst_method == "mariabackup":
        specs.append(SecretSpec(SST_SECRET, purpose=f"MariaDB '{SST_USER}' (mariabackup SST)"))
    specs += [SecretSpec(f"db_{service}", purpose=f"Galera user '{service}'")
              for service in service_databases(plan)]
    return specs


# --------------------------------------------------------------------------------------------
# Files


def render(ctx: RenderContext) -> list[RenderedFile]:
    plan = ctx.plan
    members = galera_members(plan)
    if not members:
        return []
    files: list[RenderedFile] = []
    bootstrap = members[0]
    for node in members:
        files.append(RenderedFile(node, MY_CNF, _my_cnf(ctx, node), SYSTEM,
                                  mode=0o640, owner="mysql"))
        files.append(RenderedFile(node, HEALTH_INI, _health_ini(ctx, node), SYSTEM,
                                  mode=0o600))
    files.append(RenderedFile(bootstrap, INIT_SQL, _init_sql(ctx), SYSTEM, mode=0o600))
    arbitrator = arbitrator_node(plan)
    if arbitrator is not None:
        files.append(RenderedFile(arbitrator, GARBD_CONF, _garbd_conf(ctx, arbitrator), SYSTEM,
                                  mode=0o640))
    return files


def _my_cnf(ctx: RenderContext, node: str) -> str:
    plan = ctx.plan
    settings = plan.cloud.settings.galera
    options = [
        *_group_options(ctx, node),
        f"ist.recv_addr={ctx.address(node)}:{plan.port(PROCESS, 'galera-ist')}",
        # The ring buffer joiners catch up from by IST (its size: the sizing profile).
        f"gcache.size={ctx.sizing.galera_gcache_size}",
        # Keep the ring buffer across restarts: after a full-cluster stop, joiners catch up
        # by IST from it instead of a full state transfer (15-22 s each in the lab).
        "gcache.recover=yes",
    ]
    if settings.writers == 1:
        # One writer: a member that rejoins (IST, then applying what queued meanwhile) would
        # pause every commit by flow control once 16 write sets wait for it, and a node that
        # just started is slow to apply (its services boot beside it) — 2 s write stalls in
        # the lab's rolling restart. With a single primary the limit is not scaled by the
        # cluster size and can be high: the lagging member serves no traffic (the health
        # agent keeps a JOINED member out of HAProxy until it is Synced).
        options += [f"gcs.fc_limit={SINGLE_WRITER_FC_LIMIT}", "gcs.fc_single_primary=yes"]
    sst_auth = (f"{SST_USER}:{ctx.secret(SST_SECRET)}"
                if settings.sst_method == "mariabackup" else None)
    return render_template(
        SYSTEM, "my.cnf.j2",
        cloud=plan.cloud.name,
        node=node,
        address=ctx.address(node),
        port=plan.port(PROCESS, "mysql"),
        sst_port=plan.port(PROCESS, "galera-sst"),
        socket=SOCKET,
        datadir=DATADIR,
        provider=PROVIDER,
        cluster_address=gcomm_address(ctx),
        sst_method=settings.sst_method,
        sst_auth=sst_auth,
        provider_options=";".join(options),
        suspect=iso_duration(ctx.budget.galera_suspect_s),
    )


def _garbd_conf(ctx: RenderContext, node: str) -> str:
    members = galera_members(ctx.plan)
    port = ctx.plan.port(PROCESS, "galera-replication")
    return render_template(
        SYSTEM, "garbd.conf.j2",
        group=ctx.plan.cloud.name,
        # The arbitrator only ever joins data members.
        address="gcomm://" + ",".join(f"{ctx.address(n)}:{port}" for n in members),
        options=";".join(_group_options(ctx, node)),
    )


def _health_ini(ctx: RenderContext, node: str) -> str:
    return render_template(
        SYSTEM, "galera-health.ini.j2",
        bind=ctx.address(node),
        port=ctx.plan.port(PROCESS, "galera-health"),
        socket=SOCKET,
        user=HEALTH_USER,
        password=ctx.secret(HEALTH_SECRET),
        # A check answered after HAProxy's next one is useless: bound the database round trip
        # by the check interval.
        timeout_s=f"{ctx.budget.haproxy_inter_ms / 1000:g}",
        max_age_s=f"{ctx.budget.haproxy_inter_ms / 2000:g}",
        available_when_donor=ctx.plan.cloud.settings.galera.sst_method == "mariabackup",
    )


# --------------------------------------------------------------------------------------------
# Bootstrap SQL


@dataclass(frozen=True)
class Account:
    user: str
    hosts: tuple[str, ...]
    secret: str
    grants: tuple[tuple[str, str], ...]      # (privileges, on what)


def client_hosts(plan: Plan) -> tuple[str, ...]:
    """MariaDB host patterns of the cloud's node subnets (and of a VIP outside all of them):
    HAProxy connects from a load balancer's address, services from their node's."""
    networks: list[ipaddress.IPv4Network] = []
    for node in plan.cloud.nodes:
        if node.address.network not in networks:
            networks.append(node.address.network)
    for _, vip in plan.cloud.vips.items():
        if not any(vip in net for net in networks):
            networks.append(ipaddress.IPv4Network(f"{vip}/32"))
    return tuple(f"{net.network_address}/{net.netmask}" for net in networks)


def accounts(plan: Plan) -> list[Account]:
    """Every account the bootstrap SQL creates; one row per user, grants as data."""
    rows = [
        # SHOW GLOBAL STATUS needs no privilege beyond USAGE; socket only.
        Account(HEALTH_USER, ("localhost",), HEALTH_SECRET, (("USAGE", "*.*"),)),
    ]
    if plan.cloud.settings.galera.sst_method == "mariabackup":
        # mariabackup on the donor, over the socket (MariaDB 10.11's list for backups).
        rows.append(Account(SST_USER, ("localhost",), SST_SECRET, (
            ("RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR", "*.*"),)))
    hosts = client_hosts(plan)
    for service, databases in service_databases(plan).items():
        rows.append(Account(service, hosts, f"db_{service}",
                            tuple(("ALL PRIVILEGES", f"`{db}`.*") for db in databases)))
    return rows


def sql_string(value: str) -> str:
    """A single-quoted SQL literal (secrets are alphanumeric; quote anyway)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _init_sql(ctx: RenderContext) -> str:
    plan = ctx.plan
    databases = [db for dbs in service_databases(plan).values() for db in dbs]
    rows = [
        {
            "user": sql_string(a.user),
            "hosts": [sql_string(h) for h in a.hosts],
            "password": sql_string(ctx.secret(a.secret)),
            "grants": a.grants,
        }
        for a in accounts(plan)
    ]
    # Anonymous accounts that an install may have created, by every host name a node has.
    anonymous = [sql_string(h) for h in ("localhost", *(n.name for n in plan.cloud.nodes))]
    return render_template(
        SYSTEM, "hastack-init.sql.j2",
        cloud=plan.cloud.name,
        root_password=sql_string(ctx.secret(ROOT_SECRET)),
        anonymous=anonymous,
        databases=databases,
        accounts=rows,
    )
