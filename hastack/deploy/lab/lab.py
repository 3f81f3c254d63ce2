"""One lab on this machine: its plan, rendered files, nodes and record, and node life cycle.

`attach_running()` connects to the recorded nodes that still run; `ensure_nodes()` creates
missing nodes in parallel, each recorded the moment its pid is known; `install_files()` puts
every rendered file in place through the node; `site()` is what `orchestrate` and `health`
work on. What runs in the nodes is in `hastack.deploy.systems`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hastack.deploy.files import read_secrets, write_secrets, write_tree
from hastack.deploy.lab import names as lab_names
from hastack.deploy.lab import network
from hastack.deploy.lab.cib import lab_cib
from hastack.deploy.lab.exec import LabExec, run
from hastack.deploy.lab.fencing import BROKEN_NAME, SOCKET_NAME
from hastack.deploy.lab.nodes import (
    NodeDirs,
    apply_sysctls,
    find_init,
    install_cluster_agents,
    kill,
    marked_processes,
    parse_sysctl,
    prepare_dirs,
    spawn_node,
    wait_gone,
    wait_ready,
)
from hastack.deploy.lab.programs import (
    NOVA_COMPUTE_LAB_CONF,
    PACKAGE_FILES,
    programs_on,
    skipped,
)
from hastack.deploy.lab.state import LabRecord, NodeRecord, ProcessRef, RecordStore, state_dir
from hastack.deploy.lab.supervisor import supervisord_conf
from hastack.deploy.progress import QuietReporter, Steps
from hastack.deploy.site import Site
from hastack.errors import LabError
from hastack.model.cloud import Cloud, Sizing
from hastack.plan import Plan, make_plan
from hastack.render import RenderedFile, keepalived, render_cloud, secret_specs
from hastack.render.secrets import complete

SYSCTL_FILE = "etc/sysctl.d/60-hastack.conf"
# Rendered nftables tables, loaded into a node's kernel when new or changed.
NFTABLES_FILES = (keepalived.VRRP_FILTER,)


class Lab:
    def __init__(self, cloud: Cloud, cloud_file: str):
        self.cloud = cloud
        self.plan: Plan = make_plan(cloud)
        self.names = lab_names.LabNames(cloud.name)
        self.addresses = {a.name: a for a in lab_names.lab_addresses(cloud)}
        self.state = state_dir(cloud.name)
        self.store = RecordStore(self.state)
        self.record = self.store.load() or LabRecord(cloud.name, cloud_file)
        self.record.cloud_file = cloud_file
        self.nodes: dict[str, LabExec] = {}
        self.skipped = skipped(self.plan)      # what the lab does not run, and why
        self.files: dict[str, list[RenderedFile]] = {}

    # --- render -------------------------------------------------------------------------
    def render(self, write: bool = True) -> int:
        """Secrets (kept in the state dir, 0600) -> rendered tree in <state>/rendered.

        Returns how many rendered files changed on disk; `write=False` renders in memory only
        (status reads a running lab's files without touching anything)."""
        secrets = complete(read_secrets(self.state), secret_specs(self.plan))
        files = render_cloud(self.plan, secrets, Sizing.lab)
        written = 0
        if write:
            self.state.mkdir(parents=True, exist_ok=True)
            write_secrets(self.state, secrets)
            written = len(write_tree(self.state / "rendered", files).written)
        self.files = {}
        for f in files:
            self.files.setdefault(f.node, []).append(f)
        self.files[lab_names.CLIENT] = self._client_files()
        for node in self.plan.nodes_running("nova-compute"):
            self.files.setdefault(node, []).append(self._hypervisor_file(node))
        for process, paths in PACKAGE_FILES.items():
            for source, target in paths:
                path = Path(sys.prefix) / source
                if not path.exists():
                    continue          # the service is not installed: the lab skips it
                for node in self.plan.nodes_running(process):
                    self.files.setdefault(node, []).append(
                        RenderedFile(node, target, path.read_text(), "package", mode=0o644))
        return written

    def _hypervisor_file(self, node: str) -> RenderedFile:
        """The lab's hypervisor, over the rendered one: this machine has no KVM (nor any
        hypervisor nova-compute could drive in a namespace), so nova-compute runs Nova's fake
        driver, which reports resources to Placement and takes servers to ACTIVE without a
        guest. Everything else of the compute path (API, conductor, scheduler, Placement,
        RPC) is the real one. The variant without fake nodes: like a real single-node driver
        it keeps its node identity in state_path/compute_id, and since Antelope nova-compute
        refuses to start again without that file (the plain FakeDriver writes none, so a
        restarted nova-compute never came back)."""
        text = ("# Written by hastack's lab (not rendered from cloud.yaml): the lab's\n"
                "# hypervisor is Nova's fake driver; real hosts keep the rendered one.\n"
                "[DEFAULT]\ncompute_driver = fake.FakeDriverWithoutFakeNodes\n")
        return RenderedFile(node, NOVA_COMPUTE_LAB_CONF, text, "lab", mode=0o644)

    def _client_files(self) -> list[RenderedFile]:
        """The client is lab machinery, not part of the cloud: it gets a hosts file naming
        every node and itself."""
        client = self.addresses[lab_names.CLIENT]
        hosts = ["# Written by hastack's lab for its client node.", "127.0.0.1 localhost"]
        hosts += [f"{n.ip} {n.name}" for n in self.cloud.nodes]
        hosts += [f"{client.interface.ip} {lab_names.CLIENT}"]
        hosts += [f"{ip} vip-{name}" for name, ip in self.cloud.vips.items()]
        if self.cloud.public_tls:
            # The name the public VIP's certificate carries, so https to it by name works.
            hosts[-1] += f" {self.cloud.public_hostname}"
        return [RenderedFile(lab_names.CLIENT, "etc/hosts", "\n".join(hosts) + "\n", "lab"),
                RenderedFile(lab_names.CLIENT, "etc/hostname", "client\n", "lab")]

    def rendered(self, node: str, path: str) -> str | None:
        for f in self.files.get(node, []):
            if f.path == path:
                return f.content if isinstance(f.content, str) else f.content.decode()
        return None

    # --- nodes --------------------------------------------------------------------------
    def node_names(self) -> list[str]:
        return list(self.addresses)

    def attach_running(self) -> list[str]:
        """Connect to the recorded nodes that still run; returns the names of those that don't."""
        attached: dict[str, LabExec] = {}
        missing = []
        for name in self.node_names():
            rec = self.record.nodes.get(name)
            if rec and rec.init and rec.init.alive():
                attached[name] = self._exec(name, rec.init.pid)
            else:
                missing.append(name)
        # One assignment: a sampler thread reading the nodes never sees an empty lab.
        self.nodes = attached
        return missing

    def _exec(self, name: str, init_pid: int) -> LabExec:
        interface = self.cloud.node(name).interface if name != lab_names.CLIENT else "eth0"
        return LabExec(name, init_pid, self.addresses[name].interface, interface)

    def dirs(self, name: str) -> NodeDirs:
        return NodeDirs(self.state / "nodes" / name)

    @property
    def pacemaker_fenced_by_lab(self) -> bool:
        """A Pacemaker cluster whose fence devices are the lab's (`fencing: lab`)."""
        return (self.plan.cluster("corosync") is not None
                and self.cloud.settings.pacemaker.fencing == "lab")

    def ensure_nodes(self, steps: Steps, only: Collection[str] | None = None) -> list[str]:
        """Create every node that is not running (or only these), in parallel; returns those
        created."""
        missing = [n for n in self.attach_running() if only is None or n in only]
        if self.plan.cluster("corosync") is not None:
            install_cluster_agents(self.state)
        if not missing:
            return []
        with steps.timed("-", "network", f"bridge {self.names.bridge}"):
            network.ensure_bridge(self.names)
        with ThreadPoolExecutor(max_workers=len(missing)) as pool:
            for node in pool.map(lambda n: self._create_node(n, steps), missing):
                self.nodes[node.name] = node
        return missing

    def _create_node(self, name: str, steps: Steps) -> LabExec:
        with steps.timed(name, "node", "namespaces, mounts, supervisord, network"):
            address = self.addresses[name]
            stale = self.record.nodes.get(name)
            if stale:
                # A recorded node that died (crash, power cut): its launcher may linger.
                kill(stale.launcher)
            if address.veth in network.links():
                run(["ip", "link", "del", address.veth], check=False)
            dirs = self.dirs(name)
            prepare_dirs(dirs, supervisord_conf(programs_on(self.plan, name)))
            launcher = spawn_node(name, dirs, self.state)
            rec = NodeRecord(name, ProcessRef.of(launcher.pid))
            self._save_node(rec)
            rec.init = find_init(launcher, name, dirs)
            self._save_node(rec)
            node = self._exec(name, rec.init.pid)
            network.plug(self.names, address, node)
            wait_ready(node, rec.init, dirs)
            return node

    def site(self, steps: Steps | None = None) -> Site:
        """The running nodes as `orchestrate` and `health` see them."""
        nodes = {n: x for n, x in self.nodes.items() if n != lab_names.CLIENT}
        return Site(self.cloud, self.plan, nodes, self.files, self.state,
                    steps or Steps(QuietReporter()), client=self.nodes.get(lab_names.CLIENT),
                    planned_services=lambda n: [p.name for p in programs_on(self.plan, n)],
                    skipped=self.skipped,
                    unreachable=[n for n in self.node_names() if n not in self.nodes],
                    pacemaker_cib=self._lab_cib)

    def _lab_cib(self, rendered: str) -> str:
        programs = {p.name for n in self.node_names() for p in programs_on(self.plan, n)}
        return lab_cib(rendered, programs).xml

    # --- the power controller of a Pacemaker lab ---------------------------------------------
    def ensure_power_controller(self, steps: Steps) -> str | None:
        """Start the lab's power controller (the fence agents' "BMC") unless it runs."""
        if not self.pacemaker_fenced_by_lab:
            return None
        current = self.record.power
        socket_path = self.state / SOCKET_NAME
        if current is not None and current.alive() and socket_path.exists():
            return None
        with steps.timed("-", "power", "the lab's power controller (fence_hastack's BMC)"):
            log = open(self.state / "powerd.log", "ab")  # noqa: SIM115 - handed to the child
            try:
                child = subprocess.Popen(
                    [sys.executable, "-m", "hastack.deploy.lab.powerd",
                     "--cloud", str(Path(self.record.cloud_file).resolve())],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                    close_fds=True, cwd="/")
            finally:
                log.close()
            power = ProcessRef.of(child.pid)
            self._change_record(lambda r: setattr(r, "power", power))
            deadline = time.monotonic() + 10
            while not socket_path.exists():
                if child.poll() is not None or time.monotonic() > deadline:
                    raise LabError(f"the lab's power controller did not start: see "
                                   f"{self.state / 'powerd.log'}")
                time.sleep(0.05)
        return "started the lab's power controller"

    def details(self) -> dict[str, dict[str, object]]:
        """What `status` shows of each running node besides its services."""
        return {name: {"pid": node.pid, "address": str(node.address)}
                for name, node in self.nodes.items()}

    def _save_node(self, rec: NodeRecord) -> None:
        self._change_record(lambda r: r.nodes.__setitem__(rec.name, rec))

    def _change_record(self, change: Callable[[LabRecord], None]) -> None:
        """One change to the record on disk (other processes write it too), and this lab's
        cloud file kept in it."""
        cloud_file = self.record.cloud_file

        def apply(record: LabRecord) -> None:
            record.cloud_file = cloud_file or record.cloud_file
            change(record)
        self.record = self.store.update(self.record, apply)

    def install_files(self, nodes: Iterable[str], steps: Steps,
                      new: Iterable[str] = ()) -> dict[str, list[str]]:
        """Every rendered file of these nodes in place (owner, mode); sysctls applied on new
        nodes (a fresh network namespace) and when the file changed.
        Returns node -> paths that changed."""
        new = set(new)
        changed: dict[str, list[str]] = {}
        for name in nodes:
            node = self.nodes[name]
            paths = []
            for f in self.files.get(name, []):
                data = f.content.encode() if isinstance(f.content, str) else f.content
                if node.write(f.path, data, f.mode, f.owner):
                    paths.append(f.path)
            for path in NFTABLES_FILES:
                if self.rendered(name, path) is not None and (path in paths or name in new):
                    node.run(["nft", "-f", f"/{path}"])
            sysctl = self.rendered(name, SYSCTL_FILE)
            if sysctl is not None and (SYSCTL_FILE in paths or name in new):
                global_keys = apply_sysctls(node, parse_sysctl(sysctl))
                if global_keys:
                    steps.note(f"{name}: sysctls not namespaced, left to the host: "
                               + ", ".join(global_keys))
            if paths:
                changed[name] = paths
        return changed


def teardown(cloud_name: str, purge: bool) -> list[str]:
    """Remove every process, link and mount of a lab, from its record and its name prefix.

    Works on whatever is left after a crash: only recorded pids whose start time still
    matches are killed (never a name pattern)."""
    done: list[str] = []
    state = state_dir(cloud_name)
    store = RecordStore(state)
    record = store.load()
    nodes = list(record.nodes.values()) if record else []
    inits = [n.init for n in nodes if n.init is not None]
    launchers = [n.launcher for n in nodes]
    # PID 1 of each node first: the kernel kills the whole node, and its launcher (unshare)
    # reaps it and exits. Launchers still there after that are killed too.
    power = [record.power] if record and record.power else []
    # The power controller first: it would power nodes on again.
    killed = [r for r in power if kill(r)]
    wait_gone(power)
    killed += [r for r in inits if kill(r)]
    wait_gone(inits)
    killed += [r for r in launchers if kill(r)]
    if killed:
        done.append(f"killed {len(killed)} recorded process(es)")
    # Nodes the record lost (another process overwrote it, or hastack died between spawning
    # a node and recording it) still carry the lab's tag.
    strays = [r for r in marked_processes(state) if kill(r)]
    if strays:
        done.append(f"killed {len(strays)} unrecorded process(es) of the lab")
    alive = wait_gone([*power, *inits, *launchers, *strays])
    for leftover in (SOCKET_NAME, BROKEN_NAME):
        (state / leftover).unlink(missing_ok=True)
    if alive:
        raise LabError("processes survived SIGKILL: " + ", ".join(str(r.pid) for r in alive))
    removed = network.remove_links(lab_names.LabNames(cloud_name))
    if removed:
        done.append("removed links " + ", ".join(removed))
    for mount in _host_mounts_under(state):
        run(["umount", "-l", mount], check=False)
        done.append(f"unmounted {mount}")
    store.remove()
    if purge and state.exists():
        shutil.rmtree(state)
        done.append(f"deleted {state}")
    return done


def _host_mounts_under(path: Path) -> list[str]:
    """Mounts of the host under the state dir (none unless something went badly wrong)."""
    prefix = str(path) + "/"
    mounts = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                mounts.append(point)
    return sorted(mounts, reverse=True)


