"""Lab nodes: one first process per node in new PID, network, mount, UTS and IPC namespaces.

`unshare --pid --fork --kill-child --mount-proc --net --mount --uts --ipc --propagation private`
runs a generated init script as the namespace's PID 1. The script sets the hostname, mounts a
fresh sysfs (the node's own interfaces), fresh tmpfs on /run and /dev/shm, an overlay on /etc
(the host's /etc below, the node's own changes above), binds the node's state directories over
/var/lib/*, /var/log and /tmp, lays a Pacemaker lab's agents over /usr/sbin and the OCF
directory, and then execs supervisord as the node's init. hastack's own Python (the
venv and the package) stays visible in the node wherever the clone lies, even under /tmp. The
node's files are installed afterwards *through the node* (`LabExec.write`), so the host never
edits an overlay's upper directory while it is mounted.

SIGKILL of PID 1 is a power cut: every process of the PID namespace dies, the network namespace
and its veth vanish with it (no stale VIP), and the mounts go with the mount namespace.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import hastack
from hastack.deploy.lab.exec import LabExec, OfflineDisk
from hastack.deploy.lab.state import ProcessRef
from hastack.deploy.lab.supervisor import CONFIG
from hastack.deploy.systems import python_package_installed
from hastack.errors import LabError

# Per-node state directories bound over the host's paths: (name in the node dir, path, owner,
# mode). Only paths whose package is installed (the directory exists on the host) are bound.
STATE_BINDS: tuple[tuple[str, str, str, int], ...] = (
    ("mysql", "/var/lib/mysql", "mysql", 0o755),
    ("rabbitmq", "/var/lib/rabbitmq", "rabbitmq", 0o755),
    ("redis", "/var/lib/redis", "redis", 0o750),
    ("corosync", "/var/lib/corosync", "root", 0o700),
    ("pacemaker", "/var/lib/pacemaker", "root", 0o755),
    ("nova", "/var/lib/nova", "root", 0o755),
    ("glance", "/var/lib/glance", "root", 0o755),
    ("neutron", "/var/lib/neutron", "root", 0o755),
    ("ceilometer", "/var/lib/ceilometer", "root", 0o755),
    ("log", "/var/log", "root", 0o755),
    ("tmp", "/tmp", "root", 0o1777),
)
# State directories of services installed from PyPI, not from a Debian package: no package
# made their path on the host, so the lab makes the empty mount point when the service is
# installed (path -> the Python package).
PYPI_STATE = {"/var/lib/nova": "nova", "/var/lib/glance": "glance",
              "/var/lib/neutron": "neutron", "/var/lib/ceilometer": "ceilometer"}
# Directories the services expect inside their state directory.
SERVICE_DIRS = (("nova", "tmp"), ("nova", "instances"), ("glance", "images"),
                ("glance", "staging"), ("glance", "tasks"), ("neutron", "tmp"))
# One directory of the state dir bound into every node: Glance's images live on a filesystem
# that every Glance node shares (the part NFS or CephFS plays between real hosts), so an
# image uploaded through one node is served by any other.
SHARED_BINDS = (("glance-images", "/var/lib/glance/images"),)
# Log directories the daemons expect under the node's /var/log.
LOG_DIRS: tuple[tuple[str, str], ...] = (
    ("mysql", "mysql"), ("rabbitmq", "rabbitmq"), ("redis", "redis"), ("supervisor", "root"),
    ("haproxy", "root"), ("keepalived", "root"), ("memcached", "memcache"),
    ("corosync", "root"), ("pacemaker", "hacluster"),
)
# Pacemaker's working directories under the node's /var/lib/pacemaker.
PACEMAKER_DIRS = ("cib", "pengine", "blackbox", "cores", "bundles")
# Runtime directories recreated on the node's fresh /run at every start.
RUN_DIRS: tuple[tuple[str, str, str], ...] = (
    ("/run/hastack", "root", "0755"), ("/run/lock", "root", "1777"),
    ("/run/mysqld", "mysql", "0755"), ("/run/rabbitmq", "rabbitmq", "0755"),
    ("/run/redis", "redis", "2755"), ("/run/haproxy", "root", "0755"),
    ("/run/memcached", "memcache", "0755"), ("/run/keepalived", "root", "0755"),
    ("/run/corosync", "root", "0755"), ("/run/crm", "hacluster", "0750"),
)
# Where the state directory appears inside every node, whatever its host path (it may lie
# under /tmp, which the node overmounts).
STATE_IN_NODE = "/run/hastack/state"
# Pacemaker labs: the lab's fence and resource agents (`cluster_agents`, copied into the state
# directory), laid over the host's directories where Pacemaker looks for agents. Read-only
# overlays with two lower layers, so every node can share the same agents directory.
CLUSTER_AGENTS = "cluster-agents"
AGENT_OVERLAYS = (("sbin", "/usr/sbin"), ("ocf", "/usr/lib/ocf/resource.d"))
READY_TIMEOUT_S = 20
# Every process of a node carries this variable (set on its launcher, inherited by its init and
# daemons), naming the lab's state directory: `down` finds a node the record lost (a crash of
# hastack between spawn and record) by this tag it set itself, never by a process name.
LAB_MARKER = "HASTACK_LAB_STATE"


@dataclass(frozen=True)
class NodeDirs:
    """A node's directories on the host."""

    root: Path       # <state>/nodes/<node>

    @property
    def lab(self) -> Path:
        return self.root / "lab"

    def data(self, name: str) -> Path:
        return self.root / name


def offline_disk(dirs: NodeDirs) -> OfflineDisk:
    """The node's data dirs as seen from the host, for a node that is not running."""
    return OfflineDisk({target: dirs.data(name) for name, target, _, _ in STATE_BINDS})


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _chown(path: Path, owner: str) -> None:
    """Owner and the owner's primary group (hacluster's is haclient), if the user exists."""
    try:
        user = pwd.getpwnam(owner)
    except KeyError:
        return
    os.chown(path, user.pw_uid, user.pw_gid)


def make_pypi_mount_points() -> None:
    """The host's empty mount points of the PyPI services' state directories (as their
    Debian packages would make them)."""
    for path, module in PYPI_STATE.items():
        if python_package_installed(module):
            os.makedirs(path, exist_ok=True)


def prepare_dirs(dirs: NodeDirs, supervisord_conf: str) -> None:
    """Create the node's state directories (kept across `down`) and its init files."""
    make_pypi_mount_points()
    dirs.lab.mkdir(parents=True, exist_ok=True)
    for name, _, owner, mode in STATE_BINDS:
        path = dirs.data(name)
        path.mkdir(exist_ok=True)
        _chown(path, owner)
        path.chmod(mode)
    for parent, name in SERVICE_DIRS:
        (dirs.data(parent) / name).mkdir(exist_ok=True)
    for name, _ in SHARED_BINDS:
        (dirs.root.parent.parent / "shared" / name).mkdir(parents=True, exist_ok=True)
    for name, owner in LOG_DIRS:
        path = dirs.data("log") / name
        path.mkdir(exist_ok=True)
        _chown(path, owner)
    if user_exists("hacluster"):
        for name in PACEMAKER_DIRS:
            path = dirs.data("pacemaker") / name
            path.mkdir(exist_ok=True)
            _chown(path, "hacluster")
            path.chmod(0o750)
    for name in ("etc.upper", "etc.work"):
        (dirs.root / name).mkdir(exist_ok=True)
    (dirs.lab / "supervisord.conf").write_text(supervisord_conf)


def own_paths() -> list[Path]:
    """hastack's own Python: the venv it runs from and the directory of its package (a
    clone, for an editable install). Both must be visible inside every node."""
    package_root = Path(hastack.__file__).resolve().parent.parent
    return sorted({Path(sys.prefix).resolve(), package_root})


def init_script(node: str, dirs: NodeDirs, state_root: Path) -> str:
    """The shell run as the node's PID 1 before it becomes supervisord."""
    inside = f"{STATE_IN_NODE}/{dirs.root.relative_to(state_root)}"
    q = shlex.quote
    binds = [(name, target) for name, target, _, _ in STATE_BINDS if os.path.isdir(target)]
    # hastack's own paths under a directory the node overmounts (a clone under /tmp):
    # held aside before the overmount, bound back at the same path after it.
    hidden = [p for p in own_paths()
              if any(str(p).startswith(target.rstrip("/") + "/") for _, target in binds)]
    lines = [
        "set -eu",
        f"hostname {q(node)}",
        "mount -t sysfs sysfs /sys",
        "mount -t tmpfs -o mode=0755,size=256m tmpfs /run",
        # Each node's own shared memory: corosync's and Pacemaker's IPC rings are files
        # named after the daemon, which an IPC namespace does not separate.
        "mount -t tmpfs -o mode=1777,size=256m tmpfs /dev/shm",
        f"mkdir -p {STATE_IN_NODE}",
        f"mount --bind {q(str(state_root))} {STATE_IN_NODE}",
        "mount -t overlay overlay -o "
        f"lowerdir=/etc,upperdir={inside}/etc.upper,workdir={inside}/etc.work /etc",
    ]
    for index, path in enumerate(hidden):
        lines += [f"mkdir -p /run/hastack/own/{index}",
                  f"mount --bind {q(str(path))} /run/hastack/own/{index}"]
    for name, target in binds:
        lines.append(f"mount --bind {inside}/{name} {target}")
    for name, target in SHARED_BINDS:
        if any(target.startswith(bound.rstrip("/") + "/") for _, bound in binds):
            lines.append(f"mount --bind {STATE_IN_NODE}/shared/{name} {target}")
    for index, path in enumerate(hidden):
        lines += [f"mkdir -p {q(str(path))}",
                  f"mount --bind /run/hastack/own/{index} {q(str(path))}"]
    for run_dir, owner, mode in RUN_DIRS:
        owner = owner if user_exists(owner) else "root"
        group = grp.getgrgid(pwd.getpwnam(owner).pw_gid).gr_name
        lines.append(f"install -d -o {owner} -g {group} -m {mode} {run_dir}")
    if (state_root / CLUSTER_AGENTS).is_dir():
        for layer, target in AGENT_OVERLAYS:
            lines.append(f"mount -t overlay overlay -o lowerdir={STATE_IN_NODE}/"
                         f"{CLUSTER_AGENTS}/{layer}:{target} {target}")
    lines += [
        f"mount --bind {inside}/lab/supervisord.conf {CONFIG}",
        "touch /run/hastack/ready",
        f"exec supervisord -n -c {CONFIG}",
    ]
    return "\n".join(lines) + "\n"


def install_cluster_agents(state_root: Path) -> Path:
    """The lab's agents (fence_hastack, ocf:hastack:supervised) into the state directory,
    executable, for the nodes' agent overlays; returns where."""
    source = Path(__file__).parent / "cluster_agents"
    target = state_root / CLUSTER_AGENTS
    for path in sorted(source.rglob("*")):
        if path.is_dir() or path.suffix == ".pyc" or "__pycache__" in path.parts:
            continue
        dest = target / path.relative_to(source)
        data = path.read_bytes()
        # Unchanged agents stay untouched: running nodes see this directory as a lower layer.
        if not dest.exists() or dest.read_bytes() != data:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        dest.chmod(0o755)
    return target


def spawn_node(node: str, dirs: NodeDirs, state_root: Path) -> subprocess.Popen[bytes]:
    """Start the node's first process; it outlives hastack (own session, no controlling tty)."""
    script = dirs.lab / "init.sh"
    script.write_text(init_script(node, dirs, state_root))
    log = open(dirs.lab / "init.log", "wb")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--mount",
             "--uts", "--ipc", "--propagation", "private", "--", "/bin/sh", str(script)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            close_fds=True, cwd="/", env={**os.environ, LAB_MARKER: str(state_root)})
    finally:
        log.close()


def marked_processes(state_root: Path) -> list[ProcessRef]:
    """Every running process tagged with this lab's state directory (`LAB_MARKER`)."""
    tag = f"{LAB_MARKER}={state_root}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue       # gone, or a kernel thread
        if tag in environ.split(b"\0"):
            with contextlib.suppress(LabError):
                found.append(ProcessRef.of(int(entry.name)))
    return found


def find_init(launcher: subprocess.Popen[bytes], node: str, dirs: NodeDirs) -> ProcessRef:
    """PID 1 of the node's namespaces, as seen from the host: the launcher's only child."""
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if launcher.poll() is not None:
            raise LabError(f"{node}: node init exited: {init_log(dirs)}")
        try:
            pids = children.read_text().split()
        except FileNotFoundError:
            pids = []
        if pids:
            return ProcessRef.of(int(pids[0]))
        time.sleep(0.01)
    raise LabError(f"{node}: the node's first process did not appear within 5 s")


def wait_ready(node: LabExec, init: ProcessRef, dirs: NodeDirs) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not init.alive():
            raise LabError(f"{node.name}: node init exited: {init_log(dirs)}")
        if node.services.ready():
            return
        time.sleep(0.05)
    raise LabError(f"{node.name}: supervisord not ready after {READY_TIMEOUT_S} s: "
                   f"{init_log(dirs)}")


def init_log(dirs: NodeDirs) -> str:
    try:
        text = (dirs.lab / "init.log").read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "no init log"
    return " | ".join(text[-3:]) or "no output"


# Network sysctls that are per network namespace: safe to set inside a node. Anything else
# (vm.*, kernel.*, global net.core.*) would change the host, so the lab skips it.
NAMESPACED_SYSCTL_PREFIXES = ("net.ipv4.", "net.ipv6.", "net.core.somaxconn",
                              "net.unix.", "net.netfilter.")


def apply_sysctls(node: LabExec, settings: Iterable[tuple[str, str]]) -> list[str]:
    """Set the node's namespaced sysctls; return the keys skipped as host-global."""
    settings = list(settings)
    local = [f"{k}={v}" for k, v in settings if k.startswith(NAMESPACED_SYSCTL_PREFIXES)]
    skipped = [k for k, _ in settings if not k.startswith(NAMESPACED_SYSCTL_PREFIXES)]
    if local:
        node.run(["sysctl", "-q", "-w", *local])
    return skipped


def parse_sysctl(text: str) -> list[tuple[str, str]]:
    pairs = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if "=" in line:
            key, value = line.split("=", 1)
            pairs.append((key.strip().lstrip("-"), value.strip()))
    return pairs


def kill(ref: ProcessRef) -> bool:
    """SIGKILL a recorded process if it is still the same process; True if it was alive."""
    if not ref.alive():
        return False
    try:
        os.kill(ref.pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def wait_gone(refs: Iterable[ProcessRef], timeout: float = 10) -> list[ProcessRef]:
    """Wait for processes to disappear (reaping them when they are our children)."""
    refs = list(refs)
    deadline = time.monotonic() + timeout
    while True:
        for ref in refs:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(ref.pid, os.WNOHANG)
        alive = [r for r in refs if r.alive() and not _zombie(r.pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.02)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True   # gone between the liveness check and this read
    return stat[stat.rindex(")") + 2] == "Z"
