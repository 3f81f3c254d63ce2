"""A simulated world of nodes behind `NodeExec`, for orchestration tests (no @patch stacks).

`World` holds every node of a plan and appends, in order, to one shared `log` what any node
was asked to do:

- ("ctl1", "start", "mariadb", "<the args file's flags>"), ("ctl1", "start", "haproxy"),
  ("ctl1", "stop", "rabbitmq");
- ("ctl2", "run", "mariadbd --defaults-file=... --wsrep-recover ..."), with the input as a
  fourth element when there is one (the init SQL);
- ("ctl1", "write" | "remove" | "chown" | "chmod", path).

Two entries are the world's own observations: ("ctl2", "synced") when a status query sees a
Galera joiner's state transfer complete, ("ctl1", "exited", "mariadb", why) when a start
fails. Reads (read, exists, listdir, states, addresses, listening) are not logged.

Just enough of each system is simulated for `hastack.deploy.systems` to drive it:
- Galera: `mariadb-install-db` makes the datadir; starting `mariadb` reads the args file:
  `--wsrep-new-cluster` forms a Primary component (refused, as MariaDB does, when grastate.dat
  says safe_to_bootstrap: 0); otherwise it joins a running Primary component (the SST makes
  its datadir; it answers "Joining" to `transfer_polls` status queries, then "Synced") or
  exits. `mariadbd --wsrep-recover` appends `recovered[node]` to its --log-error file, or
  nothing when the node has no entry there (a failed recovery).
- RabbitMQ: a started node boots for its first `boot_polls` `listening()` polls (its AMQP
  port not yet listening); a start without data joins the cluster of a member that has
  booted (peer discovery), else — or when the node is in `strays` — forms
  its own; with data, it rejoins its cluster. `cluster_status`, `stop_app`, `reset`,
  `join_cluster`, `start_app` and `await_startup` behave like rabbitmqctl's (reset and
  join_cluster need the app stopped).
- keepalived: the VIPs are on the first node (plan order) whose keepalived runs.
Any other command succeeds with no output.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

from hastack.deploy.base import ServiceState
from hastack.deploy.lab.programs import programs_on
from hastack.deploy.progress import QuietReporter, Steps
from hastack.deploy.recovery import Position
from hastack.deploy.site import Site
from hastack.deploy.systems import caches, galera, loadbalancing, openstack, rabbitmq
from hastack.errors import LabError
from hastack.plan import Plan
from hastack.render import RenderedFile, wsgi

Entry = tuple[str, ...]
RUNNING, STOPPED, EXITED = ServiceState.RUNNING, ServiceState.STOPPED, ServiceState.EXITED
# service -> (catalog process, port name) of what it listens on while it runs
PORTS: dict[str, tuple[str, str | None]] = {
    "mariadb": ("mariadb-galera", "mysql"), "galera-health": ("mariadb-galera", "galera-health"),
    "rabbitmq": ("rabbitmq", "amqp"), "memcached": ("memcached", None),
    "redis": ("redis", None), "redis-sentinel": ("redis-sentinel", None),
}
SCHEMA_TOOLS = {"placement-manage": "placement", "glance-manage": "glance",
                "neutron-db-manage": "neutron", "nova-manage": "nova",
                "heat-manage": "heat"}
# Every WSGI API listens on its catalog port (keystone, placement-api, nova-api, ...).
PORTS.update({app.program: (app.process, app.port_name) for app in wsgi.APPS})


def completed(rc: int = 0, stdout: str = "", stderr: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], rc, stdout, stderr)


class FakeServices:
    """A node's service manager: states kept by the world."""

    def __init__(self, node: FakeNode) -> None:
        self.node = node

    def ready(self) -> bool:
        return True

    def states(self) -> dict[str, ServiceState]:
        with self.node.world.lock:
            return dict(self.node.states)

    def start(self, service: str) -> None:
        self.node.world.start(self.node, service)

    def stop(self, service: str) -> None:
        with self.node.world.lock:
            self.node.world.log.append((self.node.name, "stop", service))
            self.node.world.kill(self.node.name, service)

    def main_pid(self, service: str) -> int | None:
        return 1000 + sorted(self.node.states).index(service) \
            if self.node.states.get(service) is RUNNING else None

    def log_tail(self, service: str, size: int = 600) -> str:
        return self.node.why.get(service, "")[-size:]


class FakeNode:
    """One node: its files (path -> bytes, plus directories), services and addresses."""

    def __init__(self, world: World, name: str, address: ipaddress.IPv4Interface) -> None:
        self.world, self.name, self.address, self.interface = world, name, address, "eth0"
        self.files: dict[str, bytes] = {}
        self.meta: dict[str, tuple[int, str]] = {}     # path -> (mode, owner)
        self.dirs: set[str] = set()
        self.states = {p.name: STOPPED for p in programs_on(world.plan, name)}
        self.why: dict[str, str] = {}                  # service -> why it exited
        self.services = FakeServices(self)

    def run(self, argv: Sequence[str], *, input: str | None = None, timeout: float = 60,
            check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        with self.world.lock:
            self.world.log.append((self.name, "run", shlex.join(argv))
                                  + ((input,) if input is not None else ()))
            result = self.world.execute(self, list(argv), input)
        if check and result.returncode != 0:
            raise LabError(f"'{shlex.join(argv)}' failed ({result.returncode}): {result.stderr}")
        return result

    def read(self, path: str) -> bytes | None:
        with self.world.lock:
            return self.files.get(path)

    def write(self, path: str, data: bytes, mode: int = 0o644, owner: str = "root") -> bool:
        with self.world.lock:
            self.world.log.append((self.name, "write", path))
            changed = self.files.get(path) != data or self.meta.get(path) != (mode, owner)
            self.files[path], self.meta[path] = data, (mode, owner)
            return changed

    def remove(self, path: str) -> bool:
        with self.world.lock:
            self.world.log.append((self.name, "remove", path))
            self.meta.pop(path, None)
            return self.files.pop(path, None) is not None

    def exists(self, path: str) -> bool:
        path = path.rstrip("/")
        with self.world.lock:
            return path in self.files or path in self.dirs or any(
                p.startswith(path + "/") for p in (*self.files, *self.dirs))

    def listdir(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        with self.world.lock:
            return sorted({p[len(prefix):].split("/")[0] for p in (*self.files, *self.dirs)
                           if p.startswith(prefix)})

    def chown(self, path: str, owner: str) -> None:
        self._set_meta("chown", path, owner=owner)

    def chmod(self, path: str, mode: int) -> None:
        self._set_meta("chmod", path, mode=mode)

    def _set_meta(self, op: str, path: str, mode: int | None = None,
                  owner: str | None = None) -> None:
        with self.world.lock:
            self.world.log.append((self.name, op, path))
            if not self.exists(path):
                raise FileNotFoundError(path)
            key = path.rstrip("/")
            old_mode, old_owner = self.meta.get(key, (0o755, "root"))
            self.meta[key] = (old_mode if mode is None else mode, owner or old_owner)

    def addresses(self) -> set[str]:
        with self.world.lock:
            vips = self.world.vip_holder() == self.name
        own = {str(self.address.ip)}
        return own | {str(ip) for _, ip in self.world.plan.cloud.vips.items()} if vips else own

    def listening(self, address: str | None = None) -> set[int]:
        with self.world.lock:
            ports = {self.world.plan.port(*PORTS[s]) for s, state in self.states.items()
                     if state is RUNNING and s in PORTS}
            if self.world.booting.get(self.name):      # RabbitMQ still booting
                self.world.booting[self.name] -= 1
                ports.discard(self.world.plan.port(*PORTS[rabbitmq.SERVICE]))
            else:
                self.world.booting.pop(self.name, None)
            return ports

    def unix_request(self, path: str, request: bytes, timeout: float = 3) -> bytes:
        """HAProxy's admin socket, while HAProxy runs: `show stat` (the rendered back ends
        and their servers, with the state each was set to) and `set server`/`shutdown
        sessions`, logged like commands."""
        with self.world.lock:
            if self.states.get(loadbalancing.HAPROXY) is not RUNNING:
                raise LabError(f"{self.name}: {path}: connection refused")
            command = request.decode().strip()
            self.world.log.append((self.name, "haproxy", command))
            if command == "show stat":
                rows = ["# pxname,svname,status,bck,scur"]
                for backend, server in _haproxy_servers(self.files):
                    state = self.world.haproxy_states.get((self.name, backend, server), "UP")
                    rows.append(f"{backend},{server},{state},0,0")
                return ("\n".join(rows) + "\n").encode()
            words = command.split()
            if words[:2] == ["set", "server"] and words[3:4] == ["state"]:
                backend, server = words[2].split("/")
                self.world.haproxy_states[(self.name, backend, server)] = {
                    "ready": "UP", "drain": "DRAIN", "maint": "MAINT"}[words[4]]
            return b""


def _haproxy_servers(files: dict[str, bytes]) -> list[tuple[str, str]]:
    """(back end, server) of every `server` line of the node's rendered haproxy.cfg."""
    found, backend = [], None
    for line in files.get("/" + loadbalancing.HAPROXY_CFG, b"").decode().splitlines():
        words = line.split()
        if words[:1] == ["listen"]:
            backend = words[1]
        elif words[:1] == ["server"] and backend is not None:
            found.append((backend, words[1]))
    return found


class World:
    """Every node of a plan, the shared log, and the clusters' simulated state."""

    def __init__(self, plan: Plan, files: dict[str, list[RenderedFile]], state: Path) -> None:
        self.plan = plan
        self.log: list[Entry] = []
        self.lock = threading.RLock()
        self.nodes = {n.name: FakeNode(self, n.name, n.address) for n in plan.cloud.nodes}
        for name, node in self.nodes.items():       # installed by the deployer beforehand
            for f in files.get(name, []):
                content = f.content.encode() if isinstance(f.content, str) else f.content
                node.files["/" + f.path], node.meta["/" + f.path] = content, (f.mode, f.owner)
        # What orchestrate is given: these nodes, the rendered files, the state dir.
        self.site = Site(plan.cloud, plan, self.nodes, files, state, Steps(QuietReporter()))
        # The machine clients run on (Keystone registrations): it has no programs of its own.
        self.site.client = FakeNode(self, "client", ipaddress.IPv4Interface("198.18.0.2/24"))
        # Galera
        self.primary: list[str] = []                # members of the Primary component
        self.transferring: dict[str, int] = {}      # joiner -> status polls until Synced
        self.transfer_polls = 1
        self.recovered: dict[str, Position] = {}    # what --wsrep-recover finds (absent: fails)
        # RabbitMQ
        self.nodenames = {n: rabbitmq.nodename(self.site, n) for n in self.nodes}
        self.rabbit_cluster: dict[str, str] = {}    # node -> its cluster (founder's nodename)
        self.app_stopped: set[str] = set()
        self.booting: dict[str, int] = {}          # node -> listening() polls until it listens
        self.boot_polls = 1
        self.strays: set[str] = set()
        # node -> how many of its next cluster_status calls time out (a broker waiting for
        # its peers' net tick answers nothing)
        self.rabbit_silent: dict[str, int] = {}
        # nodes whose running ceilometer-central never joins its tooz group
        self.tooz_absent: set[str] = set()
        self.schemas: set[str] = set()              # databases a schema tool has filled
        # Nova: the compute hosts discover_hosts has mapped to cell1
        self.mapped: set[str] = set()
        # HAProxy: (load balancer, back end, server) -> state set through the admin socket
        self.haproxy_states: dict[tuple[str, str, str], str] = {}

    # --- the world as tests arrange and inspect it ----------------------------------------
    def running(self, node: str, service: str) -> bool:
        return self.nodes[node].states.get(service) is RUNNING

    def kill(self, node: str, service: str) -> None:
        """A service stops (not logged: a crash, or the manager's stop)."""
        with self.lock:
            self.nodes[node].states[service] = STOPPED
            if service == galera.MARIADB and node in self.primary:
                self.primary.remove(node)
                self.transferring.pop(node, None)
            if service == rabbitmq.SERVICE:
                self.app_stopped.discard(node)
                self.booting.pop(node, None)

    def power_off(self) -> None:
        """Every node loses power: services stop, /run (a tmpfs) is emptied, disks stay."""
        with self.lock:
            for name, node in self.nodes.items():
                for service in node.states:
                    self.kill(name, service)
                for path in [p for p in node.files if p.startswith("/run/")]:
                    del node.files[path]

    def running_nodes(self, cluster: str) -> list[str]:
        return [self.nodenames[n] for n in self.nodes if self.rabbit_cluster.get(n) == cluster
                and self.running(n, rabbitmq.SERVICE) and n not in self.app_stopped]

    def vip_holder(self) -> str | None:
        return next((n for n in self.plan.nodes_running(loadbalancing.KEEPALIVED)
                     if self.running(n, loadbalancing.KEEPALIVED)), None)

    def snapshot(self) -> object:
        with self.lock:
            nodes = {n: (dict(x.files), dict(x.meta), set(x.dirs), dict(x.states))
                     for n, x in self.nodes.items()}
            return nodes, list(self.primary), dict(self.rabbit_cluster), set(self.app_stopped)

    # --- services ---------------------------------------------------------------------------
    def start(self, node: FakeNode, service: str) -> None:
        with self.lock:
            if service not in node.states:
                raise LabError(f"{node.name}: no such process {service}")
            if service != galera.MARIADB:
                self.log.append((node.name, "start", service))
                if service == rabbitmq.SERVICE:
                    self._start_rabbit(node)
                node.states[service] = RUNNING
                return
            args = (node.files.get(galera.START_ARGS) or b"").decode().split()
            self.log.append((node.name, "start", service, " ".join(args)))
            why = self._start_mariadb(node, args)
            node.states[service] = EXITED if why else RUNNING
            if why:
                node.why[service] = why
                self.log.append((node.name, "exited", service, why))

    def _start_mariadb(self, node: FakeNode, args: list[str]) -> str:
        if "--wsrep-new-cluster" in args:
            if b"safe_to_bootstrap: 0" in (node.files.get(galera.GRASTATE) or b""):
                return "[ERROR] WSREP: It may not be safe to bootstrap the cluster from this node"
            self.primary = [node.name]
            return ""
        if not self.primary:
            return "[ERROR] WSREP: failed to open gcomm backend connection: no Primary"
        self.primary.append(node.name)
        node.dirs.add(f"{galera.DATADIR}/mysql")     # what the state transfer brings
        self.transferring[node.name] = self.transfer_polls
        return ""

    def _start_rabbit(self, node: FakeNode) -> None:
        name = node.name
        mnesia = f"{rabbitmq.HOME}/mnesia/{self.nodenames[name]}"
        if not node.exists(mnesia):
            node.dirs.add(mnesia)
            peers = [n for n in self.nodes if n != name and n not in self.booting
                     and self.running(n, rabbitmq.SERVICE)]
            self.rabbit_cluster[name] = self.rabbit_cluster[peers[0]] \
                if peers and name not in self.strays else self.nodenames[name]
        self.rabbit_cluster.setdefault(name, self.nodenames[name])
        self.app_stopped.discard(name)
        self.booting[name] = self.boot_polls

    # --- commands ---------------------------------------------------------------------------
    def execute(self, node: FakeNode, argv: list[str],
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        program = Path(argv[0]).name
        if program.startswith("python") and len(argv) > 1 and argv[1].endswith(
                tuple(f"/bin/{tool}" for tool in SCHEMA_TOOLS)):
            argv = argv[1:]                       # a console script run through the link
            program = Path(argv[0]).name
        if program == "mariadb-install-db":
            node.dirs.add(f"{galera.DATADIR}/mysql")
        elif program == "mariadb":
            if not self.running(node.name, galera.MARIADB):
                return completed(1, stderr="ERROR 2002 (HY000): Can't connect to local server")
            sql = argv[argv.index("-e") + 1] if "-e" in argv else ""
            if "SHOW GLOBAL STATUS" in sql:
                return self._wsrep_status(node.name)
            if "FROM nova.services" in sql:           # every running service reports at once
                return completed(stdout="".join(
                    f"{n}\t{b}\t0\t0\t60\n" for b in ("nova-conductor", "nova-scheduler",
                                                       "nova-compute")
                    for n in self.nodes if self.running(n, b)))
            if "FROM heat.service" in sql:
                return completed(stdout="".join(f"{n}\theat-engine\t0\t0\t120\n"
                                                for n in self.nodes
                                                if self.running(n, "heat-engine")))
            if "information_schema.tables" in sql:   # made by the service's schema tool
                database = sql.split("table_schema = '")[1].split("'")[0]
                return completed(stdout="1\n" if database in self.schemas else "0\n")
            if "nova.compute_nodes" in sql:          # a nova-compute records its node at start
                return completed(stdout="".join(f"{n}\n" for n in self._computes()))
            if "nova_api.host_mappings" in sql:
                return completed(stdout="".join(f"{n}\n" for n in sorted(self.mapped)))
        elif program == "mariadbd" and "--wsrep-recover" in argv:
            path = next(a.split("=", 1)[1] for a in argv if a.startswith("--log-error="))
            found = self.recovered.get(node.name)
            if found is not None:
                line = f"2024-05-01  0 [Note] WSREP: Recovered position: {found}\n"
                node.files[path] = node.files.get(path, b"") + line.encode()
        elif program == "rabbitmqctl":
            return self._rabbitmqctl(node.name, [a for a in argv[1:]
                                                 if a not in ("--formatter", "json")])
        elif program == "redis-cli":
            return self._redis_cli(argv, input or "")
        elif program == "nova-manage" and argv[-2:] == ["cell_v2", "discover_hosts"]:
            self.mapped |= set(self._computes())
        elif program in SCHEMA_TOOLS:
            self.schemas.add(SCHEMA_TOOLS[program])
        return completed()

    def _redis_cli(self, argv: list[str], input: str) -> subprocess.CompletedProcess[str]:
        """Sentinel names the first running Redis the master; a tooz group's live members
        are its running agents (one per node), read by a script on redis-cli's input after
        an AUTH line."""
        redis = [n for n in self.nodes if self.running(n, caches.REDIS)]
        if "get-master-addr-by-name" in argv:
            return completed(stdout=f"{self.nodes[redis[0]].address.ip}\n6379\n"
                             if redis else "")
        if '"EVAL"' in input:
            if not redis:
                return completed(1, stderr="Could not connect to Redis")
            auth = "OK\n" if input.startswith("AUTH ") else ""
            return completed(stdout=auth + "".join(
                f"member-{n}\n" for n in self.nodes
                if self.running(n, openstack.CENTRAL_AGENT) and n not in self.tooz_absent))
        return completed()

    def _computes(self) -> list[str]:
        return [n for n in self.nodes if self.running(n, "nova-compute")]

    def _wsrep_status(self, name: str) -> subprocess.CompletedProcess[str]:
        if name not in self.primary:
            return completed(1, stderr="ERROR 1047 (08S01): WSREP has not yet prepared node")
        state = "Synced"
        polls = self.transferring.get(name)
        if polls:
            self.transferring[name], state = polls - 1, "Joining"
        elif polls is not None:
            del self.transferring[name]
            self.log.append((name, "synced"))
        rows = {"wsrep_local_state_comment": state, "wsrep_cluster_status": "Primary",
                "wsrep_cluster_size": str(len(self.primary))}
        return completed(stdout="".join(f"{k}\t{v}\n" for k, v in rows.items()))

    def _rabbitmqctl(self, name: str, args: list[str]) -> subprocess.CompletedProcess[str]:
        command = args[0]
        if command == "force_boot":
            return completed()
        if not self.running(name, rabbitmq.SERVICE):
            return completed(69, stderr=f"Error: unable to perform an operation on node "
                                        f"'{self.nodenames[name]}'")
        if command == "cluster_status":
            if self.rabbit_silent.get(name, 0) > 0:
                self.rabbit_silent[name] -= 1
                return completed(69, stderr="Error: operation cluster_status on node timed out")
            cluster = self.rabbit_cluster[name]
            members = [self.nodenames[n] for n in self.nodes
                       if self.rabbit_cluster.get(n) == cluster]
            return completed(stdout=json.dumps({"disk_nodes": members,
                                                "running_nodes": self.running_nodes(cluster)}))
        if command in ("reset", "join_cluster") and name not in self.app_stopped:
            return completed(64, stderr="Error: Mnesia is still running: stop_app first")
        if command == "stop_app":
            self.app_stopped.add(name)
        elif command == "start_app":
            self.app_stopped.discard(name)
        elif command == "reset":
            self.rabbit_cluster[name] = self.nodenames[name]
        elif command == "join_cluster":
            owner = next(n for n, erlang in self.nodenames.items() if erlang == args[1])
            self.rabbit_cluster[name] = self.rabbit_cluster[owner]
        return completed()
