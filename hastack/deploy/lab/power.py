"""The lab's power and fault control: what chaos does to nodes, links and services.

Stage 5 (deploy) machinery for stage 6 (chaos): only `deploy/` touches namespaces, links and
processes, so `hastack.chaos` drives the lab through `LabControl` (it implements the
`chaos.actions.Control` protocol) and never signals anything itself. Every verb has its
reverse (crash/restore, freeze/thaw, partition/heal, unplug/plug, stop/start, kill/start),
and processes are found only through the lab's records, supervisord or /proc PID-namespace
membership — never by name. Observations (VIP holders, the Galera writer, health) are the
systems' own, through the same `Site` that `up` uses.

    LabControl(cloud, cloud_file).crash_node("ctl2")     ... .restore()
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from hastack.deploy import orchestrate
from hastack.deploy.base import ServiceState
from hastack.deploy.files import read_secrets
from hastack.deploy.health import Health, collect
from hastack.deploy.lab import network
from hastack.deploy.lab.exec import LabExec
from hastack.deploy.lab.fencing import read_events, set_broken
from hastack.deploy.lab.lab import Lab
from hastack.deploy.lab.names import CLIENT
from hastack.deploy.lab.nodes import kill, wait_gone
from hastack.deploy.lab.programs import programs_on, service_of
from hastack.deploy.lab.supervisor import Program
from hastack.deploy.progress import QuietReporter, Steps
from hastack.deploy.site import Site
from hastack.deploy.systems import caches, galera, loadbalancing, openstack, wait_listening
from hastack.errors import LabError
from hastack.model.cloud import Cloud
from hastack.plan import Plan

NFT_TABLE = "hastack_chaos"          # the only nftables table chaos ever creates
STANDIN_PROGRAM = "standin-api"
STANDIN_MODULE = "hastack.agents.standin_api"
SERVICE_RESTART_TIMEOUT_S = 15
GIVEN_UP = (ServiceState.EXITED, ServiceState.FATAL, ServiceState.STOPPED)


# --- /proc: PID namespaces ----------------------------------------------------------------


def pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def namespace_members(init_pid: int) -> list[int]:
    """Host pids of every process in the PID namespace of a node's first process."""
    target = pid_namespace(init_pid)
    if target is None:
        return []
    return sorted(int(e) for e in os.listdir("/proc")
                  if e.isdigit() and pid_namespace(int(e)) == target)


def host_pid(init_pid: int, ns_pid: int) -> int | None:
    """The host pid of process `ns_pid` as the node numbers it (supervisord reports those)."""
    for pid in namespace_members(init_pid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^NSpid:\s+(.*)$", status, re.M)
        if match and int(match.group(1).split()[-1]) == ns_pid:
            return pid
    return None


def signal_all(pids: Iterable[int], sig: signal.Signals) -> int:
    sent = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            sent += 1
    return sent


def _process_state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "?"
    return stat[stat.rindex(")") + 2]


def nft_partition_script(peers: Sequence[str], direction: str = "both") -> str:
    """Drop everything to and from `peers` in one table of our own: both ways, or only what
    the node sends them (`out`: it still hears them) or only what they send it (`in`)."""
    if direction not in ("both", "in", "out"):
        raise LabError(f"partition direction {direction!r}: both, in or out")
    addresses = ", ".join(peers)
    chains = []
    if direction in ("both", "in"):
        chains.append(f"  chain input {{ type filter hook input priority -300; policy accept;\n"
                      f"    ip saddr {{ {addresses} }} drop\n  }}\n")
    if direction in ("both", "out"):
        chains.append(f"  chain output {{ type filter hook output priority -300; "
                      f"policy accept;\n    ip daddr {{ {addresses} }} drop\n  }}\n")
    return f"table inet {NFT_TABLE} {{\n{''.join(chains)}}}\n"


def nft_blackhole_script(port: int) -> str:
    """Drop (not refuse) every TCP packet to `port`: a server that hangs, or a lost route."""
    return (f"table inet {NFT_TABLE} {{\n"
            f"  chain input {{ type filter hook input priority -300; policy accept;\n"
            f"    tcp dport {port} drop\n  }}\n"
            f"}}\n")


# --- the lab, seen by chaos -----------------------------------------------------------------


class LabControl:
    """One running lab and the fault verbs on it. Re-reads the record after every change of
    nodes (a restored node has a new first process)."""

    def __init__(self, cloud: Cloud, cloud_file: str):
        self.cloud, self.cloud_file = cloud, cloud_file
        self.lab = Lab(cloud, cloud_file)
        self.lab.render(write=False)
        self.refresh()

    @property
    def plan(self) -> Plan:
        return self.lab.plan

    @property
    def state(self) -> Path:
        return self.lab.state

    def secrets(self) -> dict[str, str]:
        return read_secrets(self.lab.state)

    def refresh(self) -> list[str]:
        """Attach to the nodes that run; returns those that do not."""
        self.lab.record = self.lab.store.load() or self.lab.record
        self.lab.record.cloud_file = self.cloud_file
        return self.lab.attach_running()

    def _site(self) -> Site:
        return self.lab.site()

    def node(self, name: str) -> LabExec:
        node = self.lab.nodes.get(name)
        if node is None:
            self.refresh()
            node = self.lab.nodes.get(name)
        if node is None:
            raise LabError(f"node {name} is not running in lab {self.cloud.name}")
        return node

    def client_argv(self, argv: Sequence[str]) -> list[str]:
        """A client program of this machine, run in the client node's network (it writes
        its results on this machine)."""
        return self.node(CLIENT).argv(argv, network_only=True)

    # -- observations ------------------------------------------------------------------------

    def node_names(self) -> list[str]:
        """The cloud's nodes (not the client)."""
        return [n.name for n in self.cloud.nodes]

    def members(self, process: str) -> list[str]:
        return list(self.lab.plan.nodes_running(process))

    def vip_holders(self) -> dict[str, list[str]]:
        return loadbalancing.vip_holders(self._site())

    def galera_writer(self) -> str | None:
        return loadbalancing.galera_writer(self._site())

    def tooz_groups(self) -> dict[str, list[str] | None]:
        site = self._site()
        groups = tuple(openstack.tooz_groups(site))
        view = caches.redis_view(site, groups) if groups else None
        if view is None:
            return {}
        return {g: None if m is None else list(m) for g, m in view.groups.items()}

    def status(self) -> Health:
        self.refresh()
        return collect(self.lab.site(), self.lab.details())

    def wait_healthy(self, timeout: float) -> Health:
        """Poll `status` until healthy or `timeout`; returns the last report."""
        deadline = time.monotonic() + timeout
        while True:
            report = self.status()
            if report.healthy or time.monotonic() > deadline:
                return report
            time.sleep(1.0)

    def service_states(self, node: str) -> dict[str, ServiceState]:
        return self.node(node).services.states()

    def service_of(self, process: str) -> str:
        return service_of(process)

    # -- node verbs ---------------------------------------------------------------------------

    def crash_node(self, name: str) -> None:
        """Power cut. The node's cable goes first, in the same instant, so a dying node never
        answers (a powered-off machine sends no RST, no FIN, no ARP reply); then SIGKILL of
        its first process kills its whole PID namespace, and the network namespace and its
        veth (and any VIP on it) vanish with it."""
        record = self.lab.record.nodes.get(name)
        if record is None or record.init is None or not record.init.alive():
            raise LabError(f"node {name} is not running: nothing to crash")
        network.set_link(self.lab.addresses[name], up=False)
        kill(record.init)
        if wait_gone([record.init], timeout=10):
            raise LabError(f"node {name} survived SIGKILL of its first process")
        self.lab.nodes.pop(name, None)

    def restore(self, steps: Steps | None = None) -> list[str]:
        """The lab's own repair path (what `hastack up` does on a damaged lab): recreate the
        nodes that are gone, reinstall their files, start whatever is planned and not running
        (Galera members rejoin with --wsrep-recover), then the API stand-in."""
        steps = steps or Steps(QuietReporter())
        # Another process (the power controller, another hastack) may have recreated nodes
        # since this one read the record: never build a node that runs already.
        self.refresh()
        lab = self.lab
        lab.render()
        created = lab.ensure_nodes(steps)
        lab.ensure_power_controller(steps)
        lab.install_files(lab.node_names(), steps, new=created)
        actions = [f"recreated node {n}" for n in created]
        actions += orchestrate.bring_up(lab.site(steps))
        return actions + self.ensure_standin_api()

    def power_events(self, since: float) -> list[tuple[float, str, str]]:
        """What the fence devices did since a wall time (the power controller's log)."""
        return [e for e in read_events(self.state) if e[0] >= since]

    def break_fencing(self, name: str) -> None:
        """The node's fence device stops answering (its BMC is dead)."""
        if not self.lab.pacemaker_fenced_by_lab:
            raise LabError(f"lab {self.cloud.name} has no lab fence devices (a Pacemaker "
                           "cloud with `pacemaker: {fencing: lab}`): nothing to break")
        set_broken(self.state, name, True)

    def repair_fencing(self, name: str) -> None:
        if not self.lab.pacemaker_fenced_by_lab:
            return
        set_broken(self.state, name, False)

    def power_on(self, name: str, steps: Steps | None = None) -> list[str]:
        """Power one node on: its namespaces and files, then what a host starts at boot (the
        orchestrator starts whatever is planned and not running, as the repair path does)."""
        steps = steps or Steps(QuietReporter())
        self.refresh()
        lab = self.lab
        lab.render()
        created = lab.ensure_nodes(steps, only=[name])
        lab.install_files(created, steps, new=created)
        return [f"powered on {n}" for n in created] + orchestrate.bring_up(lab.site(steps))

    def freeze_node(self, name: str) -> list[int]:
        """A hung machine: its cable is silent (a frozen kernel answers no ARP and no SYN,
        though the lab's shared kernel would), and every process of its PID namespace gets
        SIGSTOP (found through /proc)."""
        node = self.node(name)
        network.set_link(self.lab.addresses[name], up=False)
        pids = namespace_members(node.pid)
        signal_all(pids, signal.SIGSTOP)
        return pids

    def thaw_node(self, name: str, pids: Sequence[int] = ()) -> None:
        """SIGCONT what was stopped, and anything else of that namespace (a missed child);
        then the machine speaks again."""
        node = self.lab.nodes.get(name)
        current = namespace_members(node.pid) if node else []
        signal_all(sorted({*pids, *current}), signal.SIGCONT)
        if node is not None:
            network.set_link(self.lab.addresses[name], up=True)
        self._power_on_if_fenced(name)

    def _power_on_if_fenced(self, name: str) -> None:
        """A fault's heal on a node that the cluster fenced meanwhile (powered off: the lab's
        fence devices leave nodes off) powers it on, as the end of a real fenced node's
        reboot would bring it back."""
        if not self.lab.pacemaker_fenced_by_lab or name == CLIENT:
            return
        self.refresh()
        actions = [action for _, action, node in self.power_events(0) if node == name]
        if name not in self.lab.nodes and actions[-1:] == ["off"]:
            self.power_on(name)

    def peers_of(self, name: str) -> list[str]:
        return [str(n.ip) for n in self.cloud.nodes if n.name != name]

    def partition(self, name: str, peers: Sequence[str] | None = None,
                  direction: str = "both") -> None:
        """Cut the node from its peers (nftables in the node): both ways, or one way (`out`:
        they stop hearing it, it still hears them); the client still reaches it, as a
        client on the node's side of a split would."""
        peers = list(peers if peers is not None else self.peers_of(name))
        if not peers:
            raise LabError(f"node {name} has no peers to be partitioned from")
        self.heal_partition(name)      # idempotent: never two tables
        self.node(name).run(["nft", "-f", "-"], input=nft_partition_script(peers, direction))

    def heal_partition(self, name: str) -> None:
        """Remove the node's fault table (a partition or a black hole)."""
        node = self.lab.nodes.get(name)
        if node is not None:
            node.run(["nft", "delete", "table", "inet", NFT_TABLE], check=False)
        self._power_on_if_fenced(name)

    def blackhole(self, name: str, process: str) -> None:
        """Packets to the process's port on the node are dropped, not refused: its clients
        wait for their own timeouts, as with a hung server."""
        if name not in self.plan.nodes_running(process):
            raise LabError(f"{name} does not run {process}: nothing to black-hole")
        self.heal_partition(name)
        self.node(name).run(["nft", "-f", "-"],
                            input=nft_blackhole_script(self.plan.port(process)))

    def unplug(self, name: str) -> None:
        """Pull the node's cable: its host-side veth goes down (the node sees NO-CARRIER)."""
        network.set_link(self.lab.addresses[name], up=False)

    def plug(self, name: str) -> None:
        network.set_link(self.lab.addresses[name], up=True)
        self._power_on_if_fenced(name)

    # -- service verbs ------------------------------------------------------------------------

    def kill_service(self, node: str, service: str) -> int:
        """SIGKILL of the pid supervisord reports for `service`; returns the host pid."""
        lab_node = self.node(node)
        ns_pid = lab_node.services.main_pid(service)
        if ns_pid is None:
            raise LabError(f"{node}: {service} is not running: nothing to kill")
        pid = host_pid(lab_node.pid, ns_pid)
        if pid is None:
            raise LabError(f"{node}: {service} pid {ns_pid} not found in the node")
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop_service(self, node: str, service: str) -> None:
        self.node(node).services.stop(service)

    def graceful_stop(self, node: str) -> list[str]:
        """A planned restart's first half: the node taken out of service (no load balancer
        sends it requests, RabbitMQ drained), then every running service stopped in the
        orchestrator's stop order (the VIP leaves first); returns what was stopped."""
        orchestrate.take_out_of_service(self._site(), node)
        states = self.service_states(node)
        running = [s for s, st in states.items() if st is ServiceState.RUNNING]
        order = orchestrate.graceful_stop_order(running)
        for service in order:
            self.stop_service(node, service)
        return order

    def graceful_start(self, node: str) -> list[str]:
        """A planned restart's second half: the lab's repair path starts what is stopped
        (Galera rejoins with IST), then the node goes back into service."""
        actions = self.restore()
        return actions + orchestrate.return_to_service(self._site(), node)

    def start_service(self, node: str, service: str) -> list[str]:
        """Bring `service` back: wait for supervisord's own restart (autorestart); a service
        it does not restart (mariadb: it must rejoin through --wsrep-recover) goes through
        the lab's repair path."""
        def settled() -> ServiceState | None:
            try:
                state = self.service_states(node).get(service)
            except LabError:
                return None
            return state if state in (ServiceState.RUNNING, *GIVEN_UP) else None
        started = time.monotonic()
        state = None
        while time.monotonic() < started + SERVICE_RESTART_TIMEOUT_S:
            state = settled()
            # EXITED right after a kill is supervisord's short step before restarting.
            if state is ServiceState.RUNNING or (state in GIVEN_UP
                                                 and time.monotonic() > started + 2):
                break
            time.sleep(0.2)
        if state is ServiceState.RUNNING:
            return []
        if state is ServiceState.STOPPED and service != galera.MARIADB:
            # Stopped on purpose: start it like an operator would (mariadb always rejoins
            # through the repair path: --wsrep-recover, then IST).
            self.node(node).services.start(service)
            return [f"{node}: started {service}"]
        return self.restore()

    # -- the API stand-in ---------------------------------------------------------------------

    def standin_needed(self) -> bool:
        """Only while the lab cannot run the real Keystone (no program row for it)."""
        members = self.members("keystone")
        return bool(members) and not any(
            p.name == "keystone" for p in programs_on(self.lab.plan, members[0]))

    def ensure_standin_api(self) -> list[str]:
        """Run hastack.agents.standin_api as the `keystone` process of every node that plans
        Keystone, as a supervisord program added at run time, so it is killed, stopped and
        restarted like any other program, and `down` removes it with the node."""
        if not self.standin_needed():
            return self._retire_standin_api()
        port = self.plan.port("keystone", "identity")
        actions = []
        for name in self.members("keystone"):
            node = self.node(name)
            program = Program(STANDIN_PROGRAM,
                              f"{shlex.quote(sys.executable)} -m {STANDIN_MODULE} --bind "
                              f"{node.address.ip} --port {port} --hostname {name}",
                              autorestart="true", startsecs=1)
            if STANDIN_PROGRAM not in node.services.states():
                node.services.add(program, self.lab.dirs(name).lab / "supervisord.conf")
            if node.services.states().get(STANDIN_PROGRAM) is not ServiceState.RUNNING:
                node.services.start(STANDIN_PROGRAM)
                wait_listening(node, STANDIN_PROGRAM, port, 10)
                actions.append(f"{name}: started {STANDIN_PROGRAM}")
        return actions

    def _retire_standin_api(self) -> list[str]:
        """The real Keystone can run now: a stand-in left from before must free its port."""
        actions = []
        for name in self.members("keystone"):
            node = self.lab.nodes.get(name)
            if node is not None and STANDIN_PROGRAM in node.services.states():
                node.services.remove(STANDIN_PROGRAM)
                actions.append(f"{name}: removed {STANDIN_PROGRAM} (the real Keystone runs)")
        return actions

    # -- hygiene ------------------------------------------------------------------------------

    def leftovers(self) -> list[str]:
        """What a chaos run may leave behind: nft tables, links down, frozen or stopped
        processes. Empty on a clean lab."""
        found = []
        self.refresh()
        for name, node in self.lab.nodes.items():
            tables = node.run(["nft", "list", "tables"], check=False).stdout
            if NFT_TABLE in tables:
                found.append(f"{name}: nftables table {NFT_TABLE}")
            stopped = [p for p in namespace_members(node.pid) if _process_state(p) == "T"]
            if stopped:
                found.append(f"{name}: {len(stopped)} stopped (SIGSTOP) processes")
            for service, state in node.services.states().items():
                if state is not ServiceState.RUNNING:
                    found.append(f"{name}: {service} is {state}")
        for name, address in self.lab.addresses.items():
            if name in self.lab.nodes and network.link_down(address):
                found.append(f"{name}: link {address.veth} is down")
        return found
