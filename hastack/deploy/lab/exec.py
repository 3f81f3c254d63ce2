"""Running commands for the lab: on the host, or inside a node's namespaces (`LabExec`).

`LabExec` is the lab's `NodeExec` and the only code that enters a node: `nsenter` into its
namespaces for commands, `/proc/<pid>/root` for its files and unix sockets, `/proc/<pid>/net`
for its addresses and listening ports. Arguments are always argv lists (never a shell
string); a failure becomes a LabError carrying the command and the tail of its output.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
import shlex
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from hastack.deploy.base import listening_ports
from hastack.deploy.lab.supervisor import Supervisor
from hastack.errors import LabError

NSENTER_ALL = ("-p", "-n", "-m", "-u", "-i")
_LOCAL = re.compile(r"\|-- (\d+\.\d+\.\d+\.\d+)\n\s+/32 host LOCAL")


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 60,
        input: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A command on the host."""
    try:
        # cwd "/": commands must not litter the caller's directory (a failing rabbitmqctl
        # writes erl_crash.dump into its working directory).
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                                input=input, check=False, cwd="/",
                                env={**os.environ, **env} if env else None)
    except subprocess.TimeoutExpired:
        raise LabError(f"'{_short(argv)}' did not finish within {timeout:g} s") from None
    except FileNotFoundError:
        raise LabError(f"'{argv[0]}' is not installed: run scripts/setup.sh") from None
    if check and result.returncode != 0:
        raise LabError(f"'{_short(argv)}' failed ({result.returncode}): {tail(result)}")
    return result


def tail(result: subprocess.CompletedProcess[str], lines: int = 3) -> str:
    text = (result.stderr or result.stdout or "").strip().splitlines()
    return " | ".join(text[-lines:]) or "no output"


def _short(argv: Sequence[str]) -> str:
    text = shlex.join(argv)
    return text if len(text) < 200 else text[:200] + "..."


def user_ids(owner: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        raise LabError(f"user '{owner}' does not exist: run scripts/setup.sh") from None
    return entry.pw_uid, entry.pw_gid


class LabExec:
    """One running lab node, reached from the host through its first process."""

    def __init__(self, name: str, init_pid: int, address: ipaddress.IPv4Interface,
                 interface: str = "eth0"):
        self.name = name
        self.pid = init_pid
        self.address = address
        self.interface = interface
        self.services = Supervisor(name, self.host_path(Supervisor.SOCKET))

    def argv(self, argv: Sequence[str], network_only: bool = False) -> list[str]:
        """`argv` wrapped to run in the node: all its namespaces, or only its network (a
        client program of the host's, writing its results on the host)."""
        namespaces = ("-n",) if network_only else NSENTER_ALL
        return ["nsenter", "-t", str(self.pid), *namespaces, "--", *argv]

    def run(self, argv: Sequence[str], *, input: str | None = None, timeout: float = 60,
            check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run(self.argv(argv), input=input, timeout=timeout, check=check, env=env)

    def host_path(self, path: str) -> Path:
        """A path inside the running node, reachable from the host."""
        return Path(f"/proc/{self.pid}/root") / path.lstrip("/")

    def read(self, path: str) -> bytes | None:
        try:
            return self.host_path(path).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def write(self, path: str, data: bytes, mode: int = 0o644, owner: str = "root") -> bool:
        target = self.host_path(path)
        uid, gid = user_ids(owner)
        try:
            st = target.stat()
            if (target.read_bytes() == data and (st.st_mode & 0o7777) == mode
                    and (st.st_uid, st.st_gid) == (uid, gid)):
                return False
        except FileNotFoundError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.hastack")
        tmp.write_bytes(data)
        os.chown(tmp, uid, gid)
        tmp.chmod(mode)
        os.replace(tmp, target)
        return True

    def remove(self, path: str) -> bool:
        try:
            self.host_path(path).unlink()
        except FileNotFoundError:
            return False
        return True

    def exists(self, path: str) -> bool:
        return self.host_path(path).exists()

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(p.name for p in self.host_path(path).iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []

    def chown(self, path: str, owner: str) -> None:
        os.chown(self.host_path(path), *user_ids(owner))

    def chmod(self, path: str, mode: int) -> None:
        self.host_path(path).chmod(mode)

    def addresses(self) -> set[str]:
        """IPv4 addresses local to the node's network namespace, from /proc (no subprocess:
        cheap enough to sample ten times a second)."""
        try:
            text = Path(f"/proc/{self.pid}/net/fib_trie").read_text()
        except OSError:
            return set()
        return set(_LOCAL.findall(text))

    def listening(self, address: str | None = None) -> set[int]:
        ports: set[int] = set()
        for table in ("tcp", "tcp6"):
            try:
                text = Path(f"/proc/{self.pid}/net/{table}").read_text()
            except OSError:
                continue
            ports |= listening_ports(text, address)
        return ports

    def unix_request(self, path: str, request: bytes, timeout: float = 3) -> bytes:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.host_path(path)))
                sock.sendall(request)
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError:
            return b""
        return b"".join(chunks)


class OfflineDisk:
    """A powered-off lab node's disk, read from the host (its data dirs are host dirs)."""

    def __init__(self, binds: dict[str, Path]):
        self.binds = binds          # node path of a bound data dir -> its host dir

    def _host(self, path: str) -> Path | None:
        for inside, host in self.binds.items():
            if path == inside or path.startswith(inside.rstrip("/") + "/"):
                return host / path[len(inside):].lstrip("/")
        return None

    def read(self, path: str) -> bytes | None:
        host = self._host(path)
        try:
            return host.read_bytes() if host is not None else None
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def exists(self, path: str) -> bool:
        host = self._host(path)
        return host is not None and host.exists()
