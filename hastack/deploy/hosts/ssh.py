"""A real host as a `NodeExec`: commands, files and systemd over the OpenSSH client.

Stage 5 (deploy), beside the lab's `LabExec`. Every call is one `ssh` run through a shared
connection per host (ControlMaster, ControlPersist), so a probe costs a round trip, not a
handshake. Commands go as one quoted argv (`shlex.join`), prefixed with `sudo -n` unless the
user is root; file contents travel base64-encoded on stdin/stdout, so binary files and any
byte survive. A host that cannot be reached, or whose sudo asks for a password, raises
`HostError` with one line that says which and what to do.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hastack.deploy.base import ServiceState, listening_ports
from hastack.errors import HastackError

SSH_UNREACHABLE = 255          # ssh's own exit status for a connection that failed
_SUDO_PASSWORD = re.compile(r"sudo: (a password is required|a terminal is required)|"
                            r"is not in the sudoers file", re.IGNORECASE)
_INET = re.compile(r"^\d+:\s+(?P<dev>\S+)\s+inet\s+(?P<addr>\d+\.\d+\.\d+\.\d+)/\d+", re.M)

# Read a file as base64, or exit 3 when it does not exist.
_READ = 'if [ -e "$1" ]; then base64 -w0 -- "$1"; else exit 3; fi'
# Print "<mode> <owner> <sha256>" of a file, or nothing when it does not exist.
_STAT = ('[ -e "$1" ] || exit 0; printf "%s %s " "$(stat -c %a -- "$1")" '
         '"$(stat -c %U -- "$1")"; sha256sum -- "$1" | cut -d" " -f1')
# Write stdin (base64) to a file atomically: a temporary file beside it, owner, mode, rename.
_WRITE = ('set -e; d=$(dirname -- "$1"); mkdir -p -- "$d"; t=$(mktemp "$d/.hastack.XXXXXX"); '
          'base64 -d > "$t"; chown -- "$2" "$t"; chmod -- "$3" "$t"; mv -f -- "$t" "$1"')
_REMOVE = '[ -e "$1" ] || exit 3; rm -f -- "$1"'
# One request to a unix stream socket, the answer base64 on stdout ("" when unreachable).
_UNIX = ("import base64,socket,sys\n"
         "s=socket.socket(socket.AF_UNIX,socket.SOCK_STREAM);s.settimeout(float(sys.argv[2]))\n"
         "try:\n s.connect(sys.argv[1]);s.sendall(base64.b64decode(sys.stdin.read()))\n"
         " out=b''\n while True:\n  c=s.recv(65536)\n  if not c: break\n  out+=c\n"
         "except OSError: out=b''\n"
         "sys.stdout.write(base64.b64encode(out).decode())\n")


class HostError(HastackError):
    """A host that cannot be reached or operated over SSH; one line naming it."""


# ssh argv, stdin bytes, timeout -> the finished ssh (stdout/stderr bytes).
Transport = Callable[[Sequence[str], bytes | None, float], "subprocess.CompletedProcess[bytes]"]


def subprocess_transport(argv: Sequence[str], data: bytes | None,
                         timeout: float) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(argv), input=data, capture_output=True, timeout=timeout,
                          check=False)


@dataclass(frozen=True)
class SshTarget:
    """How to reach one host: what an inventory says of it (ansible_host, ansible_user...)."""

    host: str
    user: str = "root"
    port: int = 22
    identity: str | None = None
    options: tuple[str, ...] = ()             # extra `-o Name=value` settings
    control_dir: str = field(default_factory=lambda: str(
        Path(tempfile.gettempdir()) / "hastack-ssh"))

    def ssh_argv(self, remote: str) -> list[str]:
        # BatchMode: never prompt (a prompt would hang a probe); one master connection per
        # host and user kept open a minute after the last command.
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ControlMaster=auto",
                "-o", f"ControlPath={self.control_dir}/%C", "-o", "ControlPersist=60s",
                "-o", "ConnectTimeout=10", "-p", str(self.port), "-l", self.user]
        if self.identity:
            argv += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        for option in self.options:
            argv += ["-o", option]
        return [*argv, self.host, remote]


class SshExec:
    """One real host, reached over SSH; paths are the host's own."""

    def __init__(self, name: str, address: ipaddress.IPv4Interface, target: SshTarget,
                 units: Mapping[str, str] | None = None,
                 transport: Transport = subprocess_transport):
        self.name = name
        self.address = address
        self.target = target
        self._transport = transport
        self._interface: str | None = None
        self.services = SystemdManager(self, units or {})
        Path(target.control_dir).mkdir(mode=0o700, parents=True, exist_ok=True)

    # --- the one way in ----------------------------------------------------------------
    def _remote(self, argv: Sequence[str], env: Mapping[str, str] | None) -> str:
        command = list(argv)
        if env:
            command = ["env", *(f"{k}={v}" for k, v in env.items()), *command]
        if self.target.user != "root":
            command = ["sudo", "-n", "--", *command]
        return shlex.join(command)

    def _ssh(self, argv: Sequence[str], data: bytes | None = None, timeout: float = 60,
             env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        ssh = self.target.ssh_argv(self._remote(argv, env))
        try:
            result = self._transport(ssh, data, timeout)
        except subprocess.TimeoutExpired:
            raise HostError(f"{self.name}: '{shlex.join(argv)[:120]}' did not finish within "
                            f"{timeout:g} s over SSH") from None
        except FileNotFoundError:
            raise HostError("the OpenSSH client (ssh) is not installed here") from None
        stderr = result.stderr.decode(errors="replace")
        if result.returncode == SSH_UNREACHABLE:
            raise HostError(f"{self.name}: unreachable over SSH ({self.target.user}@"
                            f"{self.target.host}:{self.target.port}): "
                            f"{_last_line(stderr) or 'connection failed'}")
        if _SUDO_PASSWORD.search(stderr):
            raise HostError(f"{self.name}: {self.target.user} has no passwordless sudo "
                            f"({_last_line(stderr)}); hastack needs root on its hosts")
        return result

    def _sh(self, script: str, *args: str, data: bytes | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return self._ssh(["sh", "-c", script, "sh", *args], data, timeout)

    # --- NodeExec ----------------------------------------------------------------------
    @property
    def interface(self) -> str:
        if self._interface is None:
            found = {addr: dev for dev, addr in _inet(self.run(["ip", "-4", "-o", "addr",
                                                                "show"]).stdout)}
            self._interface = found.get(str(self.address.ip), "eth0")
        return self._interface

    def run(self, argv: Sequence[str], *, input: str | None = None, timeout: float = 60,
            check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = self._ssh(argv, input.encode() if input is not None else None, timeout, env)
        done = subprocess.CompletedProcess(list(argv), result.returncode,
                                           result.stdout.decode(errors="replace"),
                                           result.stderr.decode(errors="replace"))
        if check and done.returncode != 0:
            raise HostError(f"{self.name}: '{shlex.join(argv)[:120]}' failed "
                            f"({done.returncode}): {_last_line(done.stderr or done.stdout)}")
        return done

    def read(self, path: str) -> bytes | None:
        result = self._sh(_READ, path)
        if result.returncode == 3:
            return None
        if result.returncode != 0:
            raise HostError(f"{self.name}: cannot read {path}: "
                            f"{_last_line(result.stderr.decode(errors='replace'))}")
        return base64.b64decode(result.stdout)

    def write(self, path: str, data: bytes, mode: int = 0o644, owner: str = "root") -> bool:
        import hashlib

        current = self._sh(_STAT, path).stdout.decode().split()
        if current == [f"{mode:o}", owner, hashlib.sha256(data).hexdigest()]:
            return False
        result = self._sh(_WRITE, path, owner, f"{mode:o}", data=base64.b64encode(data))
        if result.returncode != 0:
            raise HostError(f"{self.name}: cannot write {path}: "
                            f"{_last_line(result.stderr.decode(errors='replace'))}")
        return True

    def remove(self, path: str) -> bool:
        return self._sh(_REMOVE, path).returncode == 0

    def exists(self, path: str) -> bool:
        return self._ssh(["test", "-e", path]).returncode == 0

    def listdir(self, path: str) -> list[str]:
        result = self._ssh(["ls", "-1A", "--", path])
        if result.returncode != 0:
            return []
        return sorted(result.stdout.decode(errors="replace").splitlines())

    def chown(self, path: str, owner: str) -> None:
        self.run(["chown", "--", owner, path])

    def chmod(self, path: str, mode: int) -> None:
        self.run(["chmod", "--", f"{mode:o}", path])

    def addresses(self) -> set[str]:
        result = self.run(["ip", "-4", "-o", "addr", "show"], check=False)
        return {addr for _, addr in _inet(result.stdout)}

    def listening(self, address: str | None = None) -> set[int]:
        result = self._sh("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null")
        return listening_ports(result.stdout.decode(errors="replace"), address)

    def unix_request(self, path: str, request: bytes, timeout: float = 3) -> bytes:
        result = self._ssh(["python3", "-c", _UNIX, path, f"{timeout:g}"],
                           base64.b64encode(request), timeout + 10)
        if result.returncode != 0:
            return b""
        return base64.b64decode(result.stdout)


def _inet(text: str) -> list[tuple[str, str]]:
    return [(m.group("dev"), m.group("addr")) for m in _INET.finditer(text)]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --- the host's service manager -------------------------------------------------------------

# systemd's (ActiveState, SubState) -> the states hastack's code waits on.
_STATES: dict[str, ServiceState] = {
    "active": ServiceState.RUNNING, "reloading": ServiceState.RUNNING,
    "activating": ServiceState.STARTING, "deactivating": ServiceState.STOPPING,
    "inactive": ServiceState.STOPPED, "failed": ServiceState.FATAL,
}


def service_state(active: str, sub: str) -> ServiceState:
    if active == "active" and sub == "exited":
        return ServiceState.EXITED
    if active == "activating" and sub == "auto-restart":
        return ServiceState.BACKOFF
    return _STATES.get(active, ServiceState.UNKNOWN)


class SystemdManager:
    """A host's systemd, as the `ServiceManager` hastack's code speaks to. `units` maps
    hastack's service names to units where they differ (rabbitmq -> rabbitmq-server)."""

    def __init__(self, node: SshExec, units: Mapping[str, str]):
        self.node = node
        self.units = dict(units)

    def unit(self, service: str) -> str:
        return f"{self.units.get(service, service)}.service"

    def ready(self) -> bool:
        state = self.node.run(["systemctl", "is-system-running"], check=False).stdout.strip()
        return state in ("running", "degraded")

    def states(self) -> dict[str, ServiceState]:
        """Every service hastack names on this host (the units it knows)."""
        names = list(self.units)
        if not names:
            return {}
        out = self.node.run(["systemctl", "show", "--property=Id,ActiveState,SubState",
                             *(self.unit(n) for n in names)], check=False).stdout
        by_unit: dict[str, ServiceState] = {}
        for block in out.strip().split("\n\n"):
            fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            if "Id" in fields:
                by_unit[fields["Id"]] = service_state(fields.get("ActiveState", ""),
                                                      fields.get("SubState", ""))
        return {name: by_unit.get(self.unit(name), ServiceState.UNKNOWN) for name in names}

    def start(self, service: str) -> None:
        self.node.run(["systemctl", "start", self.unit(service)], timeout=900)

    def stop(self, service: str) -> None:
        self.node.run(["systemctl", "stop", self.unit(service)], timeout=900)

    def main_pid(self, service: str) -> int | None:
        out = self.node.run(["systemctl", "show", "--property=MainPID", "--value",
                             self.unit(service)], check=False).stdout.strip()
        return int(out) if out.isdigit() and int(out) > 0 else None

    def log_tail(self, service: str, size: int = 600) -> str:
        out = self.node.run(["journalctl", "--no-pager", "-o", "cat", "-n", "50", "-u",
                             self.unit(service)], check=False).stdout
        return out[-size:]
