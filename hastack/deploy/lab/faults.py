"""Fault primitives on a running lab: the verbs chaos applies to nodes, links and programs.

Stage 5 (deploy) machinery for stage 6 (chaos): only `deploy/` touches namespaces, links and
processes, so `hastack.chaos` drives the lab through `LabFaults` and never signals anything
itself. Every verb has its reverse (crash/restore, freeze/thaw, partition/heal, unplug/plug,
stop/start, kill/start), and processes are found only through the lab's records, supervisord
or /proc PID-namespace membership — never by name.

Commands go through an injected runner (`run` by default), so the unit tests use a fake one.

    LabFaults(cloud, cloud_file).crash_node("ctl2")     ... .restore()
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

from hastack.deploy.lab import components
from hastack.deploy.lab.lab import Lab, LabNode, listening_ports, wait_until
from hastack.deploy.lab.nodes import kill, node_path, wait_gone
from hastack.deploy.lab.programs import programs_on
from hastack.deploy.lab.report import QuietReporter, Steps
from hastack.deploy.lab.run import nsenter, run
from hastack.deploy.lab.status import GALERA_BACKEND, collect, show_stat
from hastack.deploy.lab.supervisor import Program, supervisord_conf
from hastack.errors import LabError
from hastack.model.cloud import Cloud

Runner = Callable[..., CompletedProcess[str]]

NFT_TABLE = "hastack_chaos"          # the only nftables table chaos ever creates
STANDIN_PROGRAM = "standin-api"
STANDIN_MODULE = "hastack.agents.standin_api"
PROGRAM_RESTART_TIMEOUT_S = 15
GIVEN_UP = ("EXITED", "FATAL", "STOPPED")   # supervisord will not restart it
_LOCAL = re.compile(r"\|-- (\d+\.\d+\.\d+\.\d+)\n\s+/32 host LOCAL")


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
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and pid_namespace(int(entry)) == target:
            members.append(int(entry))
    return sorted(members)


def host_pid(init_pid: int, ns_pid: int) -> int | None:
    """The host pid of process `ns_pid` as the node sees it (supervisord reports those)."""
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


def local_addresses(init_pid: int) -> set[str]:
    """IPv4 addresses local to a node's network namespace, read from /proc (no subprocess:
    cheap enough to sample ten times a second)."""
    try:
        text = Path(f"/proc/{init_pid}/net/fib_trie").read_text()
    except OSError:
        return set()
    return set(_LOCAL.findall(text))


def nft_partition_script(peers: Sequence[str]) -> str:
    """Drop everything to and from `peers`, both ways, in one table of our own."""
    addresses = ", ".join(peers)
    return (f"table inet {NFT_TABLE} {{\n"
            f"  chain input {{ type filter hook input priority -300; policy accept;\n"
            f"    ip saddr {{ {addresses} }} drop\n  }}\n"
            f"  chain output {{ type filter hook output priority -300; policy accept;\n"
            f"    ip daddr {{ {addresses} }} drop\n  }}\n"
            f"}}\n")


# --- the lab, seen by faults ----------------------------------------------------------------


class LabFaults:
    """One running lab and the fault verbs on it. Re-reads the record after every change of
    nodes (a restored node has a new first process)."""

    def __init__(self, cloud: Cloud, cloud_file: str, runner: Runner = run):
        self.cloud, self.cloud_file, self.run = cloud, cloud_file, runner
        self.lab = Lab(cloud, cloud_file)
        self.lab.render(write=False)
        self.refresh()

    def refresh(self) -> list[str]:
        """Attach to the nodes that run; returns those that do not."""
        self.lab.record = self.lab.store.load() or self.lab.record
        self.lab.record.cloud_file = self.cloud_file
        self.lab.nodes.clear()
        return self.lab.attach_running()

    def node(self, name: str) -> LabNode:
        node = self.lab.nodes.get(name)
        if node is None:
            self.refresh()
            node = self.lab.nodes.get(name)
        if node is None:
            raise LabError(f"node {name} is not running in lab {self.cloud.name}")
        return node

    # -- observations ------------------------------------------------------------------------

    def vip_holders(self) -> dict[str, list[str]]:
        """VIP name -> nodes holding it, from /proc (see `local_addresses`)."""
        vips = {str(ip): name for name, ip in self.cloud.vips.items()}
        held: dict[str, list[str]] = {name: [] for name in vips.values()}
        for node in list(self.lab.nodes.values()):
            if not node.record.init or not node.record.init.alive():
                continue
            for address in local_addresses(node.pid) & set(vips):
                held[vips[address]].append(node.name)
        return {k: sorted(v) for k, v in held.items()}

    def galera_writer(self, seen_from: str | None = None) -> str | None:
        """The server HAProxy sends writes to (the active UP server, else the first UP
        backup), as seen by the HAProxy on `seen_from` (default: the internal VIP holder)."""
        if seen_from is None:
            holders = self.vip_holders().get("internal") or []
            if len(holders) != 1:
                return None
            seen_from = holders[0]
        node = self.lab.nodes.get(seen_from)
        if node is None:
            return None
        rows = [r for r in show_stat(self.lab, node)
                if r.get("pxname") == GALERA_BACKEND and r.get("svname") not in
                ("FRONTEND", "BACKEND")]
        up = [r for r in rows if str(r.get("status", "")).startswith("UP")]
        # The one-entry stick table decides while its server is UP (no failback).
        stuck = _stuck_server(self.lab, node)
        if stuck and any(r["svname"] == stuck for r in up):
            return stuck
        active = [str(r["svname"]) for r in up if r.get("bck") != "1"]
        backups = [str(r["svname"]) for r in up if r.get("bck") == "1"]
        chosen = active or backups
        return chosen[0] if chosen else None

    def status(self) -> dict[str, Any]:
        self.refresh()
        return collect(self.lab)

    def wait_healthy(self, timeout: float) -> dict[str, Any]:
        """Poll `status` until healthy or `timeout`; returns the last report."""
        deadline = time.monotonic() + timeout
        while True:
            report = self.status()
            if report["healthy"] or time.monotonic() > deadline:
                return report
            time.sleep(1.0)

    def members(self, process: str) -> list[str]:
        return list(self.lab.plan.nodes_running(process))

    def program_state(self, node: str, program: str) -> str | None:
        return self.program_states(node).get(program)

    def program_states(self, node: str) -> dict[str, str]:
        return self.node(node).supervisor.states()

    # -- node verbs ---------------------------------------------------------------------------

    def crash_node(self, name: str) -> None:
        """Power cut: SIGKILL of the node's first process kills its whole PID namespace; the
        network namespace and its veth (and any VIP on it) vanish with it."""
        record = self.lab.record.nodes.get(name)
        if record is None or record.init is None or not kill(record.init):
            raise LabError(f"node {name} is not running: nothing to crash")
        alive = wait_gone([record.init], timeout=10)
        if alive:
            raise LabError(f"node {name} survived SIGKILL of its first process")
        self.lab.nodes.pop(name, None)

    def restore(self, steps: Steps | None = None) -> list[str]:
        """The lab's own repair path (what `hastack up` does on a damaged lab): recreate the
        nodes that are gone, reinstall their files, start whatever is planned and not running
        (Galera members rejoin with --wsrep-recover), then the API stand-in."""
        steps = steps or Steps(QuietReporter())
        lab = self.lab
        lab.render()
        created = lab.ensure_nodes(steps)
        lab.install_files(lab.node_names(), steps, new=created)
        actions = [f"recreated node {n}" for n in created]
        actions += components.bring_up(lab, steps)
        actions += self.ensure_standin_api()
        return actions

    def freeze_node(self, name: str) -> list[int]:
        """SIGSTOP every process of the node's PID namespace (found through /proc)."""
        pids = namespace_members(self.node(name).pid)
        signal_all(pids, signal.SIGSTOP)
        return pids

    def thaw_node(self, name: str, pids: Iterable[int] = ()) -> None:
        """SIGCONT what was stopped, and anything else of that namespace (a missed child)."""
        node = self.lab.nodes.get(name)
        current = namespace_members(node.pid) if node else []
        signal_all(sorted({*pids, *current}), signal.SIGCONT)

    def node_names(self) -> list[str]:
        """The cloud's nodes (not the client)."""
        return [n.name for n in self.cloud.nodes]

    def peers_of(self, name: str) -> list[str]:
        return [str(n.ip) for n in self.cloud.nodes if n.name != name]

    def partition(self, name: str, peers: Sequence[str] | None = None) -> None:
        """Cut the node from its peers both ways (nftables in its network namespace); the
        client still reaches it, as a client on the node's side of a split would."""
        peers = list(peers if peers is not None else self.peers_of(name))
        if not peers:
            raise LabError(f"node {name} has no peers to be partitioned from")
        self.heal_partition(name)      # idempotent: never two tables
        self.run(nsenter(self.node(name).pid, ["nft", "-f", "-"], namespaces=("-n",)),
                 input=nft_partition_script(peers))

    def heal_partition(self, name: str) -> None:
        node = self.lab.nodes.get(name)
        if node is None:
            return
        self.run(nsenter(node.pid, ["nft", "delete", "table", "inet", NFT_TABLE],
                         namespaces=("-n",)), check=False)

    def unplug(self, name: str) -> None:
        """Pull the node's cable: its host-side veth goes down (the node sees NO-CARRIER)."""
        self.run(["ip", "link", "set", "dev", self.lab.addresses[name].veth, "down"])

    def plug(self, name: str) -> None:
        self.run(["ip", "link", "set", "dev", self.lab.addresses[name].veth, "up"])

    # -- program verbs ------------------------------------------------------------------------

    def kill_program(self, node: str, program: str) -> int:
        """SIGKILL of the pid supervisord reports for `program`; returns the host pid."""
        lab_node = self.node(node)
        info = lab_node.supervisor.info(program)
        if info.get("statename") != "RUNNING" or not info.get("pid"):
            raise LabError(f"{node}: {program} is {info.get('statename')}: nothing to kill")
        pid = host_pid(lab_node.pid, int(info["pid"]))
        if pid is None:
            raise LabError(f"{node}: {program} pid {info['pid']} not found in the node")
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop_program(self, node: str, program: str) -> None:
        self.node(node).supervisor.stop(program)

    def start_program(self, node: str, program: str) -> list[str]:
        """Bring `program` back: wait for supervisord's own restart (autorestart); a program
        it does not restart (mariadb: it must rejoin through --wsrep-recover) goes through
        the lab's repair path."""
        def settled() -> str | None:
            try:
                state = self.program_state(node, program)
            except LabError:
                return None
            return state if state in ("RUNNING", *GIVEN_UP) else None
        deadline = time.monotonic() + PROGRAM_RESTART_TIMEOUT_S
        state = None
        while time.monotonic() < deadline:
            state = settled()
            # EXITED right after a kill is supervisord's short step before restarting.
            if state == "RUNNING" or (state in GIVEN_UP and
                                      time.monotonic() > deadline - PROGRAM_RESTART_TIMEOUT_S
                                      + 2):
                break
            time.sleep(0.2)
        if state == "RUNNING":
            return []
        if state == "STOPPED" and program != "mariadb":
            # Stopped on purpose: start it like an operator would (mariadb always rejoins
            # through the repair path: --wsrep-recover, then IST).
            self.node(node).supervisor.start(program)
            return [f"{node}: started {program}"]
        return self.restore()

    # -- the API stand-in ---------------------------------------------------------------------

    def standin_needed(self) -> bool:
        """Only while the lab cannot run the real Keystone (no program row for it)."""
        members = self.members("keystone")
        return bool(members) and not any(
            p.name == "keystone" for p in programs_on(self.lab.plan, members[0]))

    def ensure_standin_api(self) -> list[str]:
        """Run hastack.agents.standin_api as the `keystone` process of every node that plans
        Keystone, as a supervisord program added at run time (the node's supervisord.conf
        gets the section, then reloadConfig/addProcessGroup), so it is killed, stopped and
        restarted like any other program, and `down` removes it with the node."""
        if not self.standin_needed():
            return self._retire_standin_api()
        port = next((f.port for f in self.lab.plan.frontends if f.process == "keystone"), 5000)
        actions = []
        for name in self.members("keystone"):
            node = self.node(name)
            program = Program(STANDIN_PROGRAM,
                              f"{sys.executable} -m {STANDIN_MODULE} --bind "
                              f"{node.address.interface.ip} --port {port} --hostname {name}",
                              autorestart="true", startsecs=1)
            states = node.supervisor.states()
            if STANDIN_PROGRAM not in states:
                _add_program(node, program)
            if node.supervisor.states().get(STANDIN_PROGRAM) != "RUNNING":
                node.supervisor.start(STANDIN_PROGRAM)
                if not wait_until(lambda n=node: port in listening_ports(n.pid), 10, 0.1):
                    raise LabError(f"{name}: {STANDIN_PROGRAM} not listening on :{port}: "
                                   f"{node.supervisor.log_tail(STANDIN_PROGRAM)}")
                actions.append(f"{name}: started {STANDIN_PROGRAM}")
        return actions

    def _retire_standin_api(self) -> list[str]:
        """The real Keystone can run now: a stand-in left from before must free its port."""
        actions = []
        for name in self.members("keystone"):
            node = self.lab.nodes.get(name)
            if node is not None and STANDIN_PROGRAM in node.supervisor.states():
                node.supervisor.stop(STANDIN_PROGRAM)
                node.supervisor._call("removeProcessGroup", STANDIN_PROGRAM)
                actions.append(f"{name}: removed {STANDIN_PROGRAM} (the real Keystone runs)")
        return actions

    # -- hygiene ------------------------------------------------------------------------------

    def leftovers(self) -> list[str]:
        """What a chaos run may leave behind: nft tables, links down, frozen or stopped
        processes. Empty on a clean lab."""
        found = []
        self.refresh()
        for name, node in self.lab.nodes.items():
            tables = self.run(nsenter(node.pid, ["nft", "list", "tables"], namespaces=("-n",)),
                              check=False).stdout
            if NFT_TABLE in tables:
                found.append(f"{name}: nftables table {NFT_TABLE}")
            stopped = [p for p in namespace_members(node.pid) if _state(p) == "T"]
            if stopped:
                found.append(f"{name}: {len(stopped)} stopped (SIGSTOP) processes")
            for program, state in node.supervisor.states().items():
                if state != "RUNNING":
                    found.append(f"{name}: {program} is {state}")
        for name, address in self.lab.addresses.items():
            link = Path(f"/sys/class/net/{address.veth}/operstate")
            if name in self.lab.nodes and link.exists() and "down" in link.read_text():
                found.append(f"{name}: link {address.veth} is down")
        return found


def _stuck_server(lab: Lab, node: LabNode) -> str | None:
    """The server the Galera stick table points at (`show table galera`), if any."""
    cfg = lab.rendered(node.name, "etc/haproxy/haproxy.cfg") or ""
    match = re.search(r"^\s*stats socket (\S+)", cfg, re.M)
    if not match:
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(node_path(node.pid, match.group(1))))
            sock.sendall(f"show table {GALERA_BACKEND}\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return None
    found = re.search(r"server_key=(\S+)", data.decode(errors="replace"))
    return found.group(1) if found else None


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "?"
    return stat[stat.rindex(")") + 2]


def _add_program(node: LabNode, program: Program) -> None:
    """Append one [program:x] section to the node's supervisord.conf (a bind-mounted file:
    written in place, never replaced) and have supervisord load it."""
    conf = node.dirs.lab / "supervisord.conf"
    text = supervisord_conf([program])
    section = text[text.index(f"[program:{program.name}]"):]
    current = conf.read_text()
    if f"[program:{program.name}]" not in current:
        with open(conf, "a") as handle:
            handle.write("\n" + section)
    node.supervisor._call("reloadConfig")
    with contextlib.suppress(LabError):   # already added (ALREADY_ADDED)
        node.supervisor._call("addProcessGroup", program.name)
