"""The node's init: supervisord from Debian, and a small client for its XML-RPC socket.

Why supervisord as each node's PID 1: it is Debian-packaged (no pip-only init), it gives every
program its own restart policy (`autorestart`), tracks pids and exit states, reaps orphans, and
starts/stops programs on request over a unix socket in the node's own /run — so the lab starts
daemons in protocol order (Galera bootstrap before joiners) instead of all at once, and
`hastack exec ctl1 -- supervisorctl status` works like on a real host. Programs are
`autostart=false`: the lab, not the init, decides when each one starts.

The host reaches a node's socket through /proc/<init pid>/root (the path `LabExec` gives),
which resolves paths in the node's mount namespace; no process has to be entered for a status
or a start. `Supervisor` is the lab's `ServiceManager`.
"""

from __future__ import annotations

import http.client
import socket
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hastack.deploy.base import ServiceState
from hastack.errors import LabError

SOCKET = "/run/hastack/supervisor.sock"
CONFIG = "/etc/supervisor/supervisord.conf"   # a lab file bind-mounted inside the node


@dataclass(frozen=True)
class Program:
    """One supervised daemon; commands run in the foreground."""

    name: str
    command: str
    user: str = "root"
    directory: str = "/"
    autorestart: str = "unexpected"   # true | false | unexpected
    startsecs: int = 1
    stopwaitsecs: int = 20
    environment: tuple[tuple[str, str], ...] = field(default=())


def supervisord_conf(programs: list[Program]) -> str:
    lines = [
        "; Written by hastack's lab: this node's init. Programs start only when the lab says.",
        "[unix_http_server]", f"file={SOCKET}", "chmod=0700", "",
        "[supervisord]", "nodaemon=true", "logfile=/var/log/supervisor/supervisord.log",
        "pidfile=/run/hastack/supervisord.pid", "childlogdir=/var/log/supervisor",
        "logfile_maxbytes=10MB", "logfile_backups=1", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{SOCKET}", "",
    ]
    for p in programs:
        env = ",".join(f'{k}="{v}"' for k, v in p.environment)
        lines += [
            f"[program:{p.name}]", f"command={p.command}", f"user={p.user}",
            f"directory={p.directory}", "autostart=false", f"autorestart={p.autorestart}",
            f"startsecs={p.startsecs}", f"stopwaitsecs={p.stopwaitsecs}", "stopasgroup=true",
            "killasgroup=true", "redirect_stderr=true",
            f"stdout_logfile=/var/log/supervisor/{p.name}.log", "stdout_logfile_maxbytes=10MB",
            "stdout_logfile_backups=1",
        ]
        if env:
            lines.append(f"environment={env}")
        lines.append("")
    return "\n".join(lines)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float):
        super().__init__()
        self._path = path
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self._path, self._timeout)


class Supervisor:
    """supervisord of one node, reached from the host at `socket_path`."""

    SOCKET = SOCKET

    def __init__(self, node: str, socket_path: Path, timeout: float = 30):
        self.node = node
        self._proxy = xmlrpc.client.ServerProxy(
            "http://localhost/RPC2", transport=_UnixTransport(str(socket_path), timeout))

    def call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._proxy.supervisor, method)(*args)
        except xmlrpc.client.Fault as fault:
            raise LabError(f"{self.node}: supervisor {method}{args}: {fault.faultString}"
                           ) from None
        except OSError as exc:
            raise LabError(f"{self.node}: supervisord unreachable: {exc}") from None

    def ready(self) -> bool:
        try:
            return self.call("getState")["statename"] == "RUNNING"
        except LabError:
            return False

    def states(self) -> dict[str, ServiceState]:
        return {p["name"]: ServiceState.of(p["statename"])
                for p in self.call("getAllProcessInfo")}

    def main_pid(self, service: str) -> int | None:
        info = self.call("getProcessInfo", service)
        if info.get("statename") != "RUNNING" or not info.get("pid"):
            return None
        return int(info["pid"])

    def start(self, service: str) -> None:
        """Start and wait `startsecs`; a program that exits early is reported with its log."""
        program = service
        try:
            self._proxy.supervisor.startProcess(program, True)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" in fault.faultString:
                return
            raise LabError(f"{self.node}: {program} did not start ({fault.faultString}); "
                           f"last log lines: {self.log_tail(program)}") from None
        except OSError as exc:
            raise LabError(f"{self.node}: supervisord unreachable: {exc}") from None

    def stop(self, service: str) -> None:
        program = service
        try:
            self._proxy.supervisor.stopProcess(program, True)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString:
                raise LabError(f"{self.node}: stopping {program}: {fault.faultString}") from None
        except OSError as exc:
            raise LabError(f"{self.node}: supervisord unreachable: {exc}") from None

    def add(self, program: Program, conf: Path) -> None:
        """Add one program at run time: its section appended to the node's supervisord.conf
        (a bind-mounted file: written in place, never replaced), then loaded."""
        section = supervisord_conf([program])
        section = section[section.index(f"[program:{program.name}]"):]
        if f"[program:{program.name}]" not in conf.read_text():
            with open(conf, "a") as handle:
                handle.write("\n" + section)
        self.call("reloadConfig")
        try:
            self.call("addProcessGroup", program.name)
        except LabError as exc:
            if "ALREADY_ADDED" not in str(exc):
                raise

    def remove(self, program: str) -> None:
        self.stop(program)
        self.call("removeProcessGroup", program)

    def log_tail(self, service: str, size: int = 600) -> str:
        try:
            result: Any = self._proxy.supervisor.tailProcessStdoutLog(service, 0, size)
            text = result[0]
        except (xmlrpc.client.Fault, OSError):
            return "(no log)"
        return " | ".join(str(text).strip().splitlines()[-4:])
