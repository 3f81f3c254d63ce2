"""The execution seam: how deploy and chaos act on a node without knowing what a node is.

Stage 5 (deploy). Everything that speaks to a node — the protocol code of `deploy.systems`
(Galera join, RabbitMQ join, Keystone bootstrap), the health probes, the lab's fault verbs —
does it through `NodeExec`: run a command, read and write a file, ask the node's service
manager, read its addresses and listening ports, talk to a unix socket. A lab namespace
(`deploy.lab.exec.LabExec`), an SSH host, or a fake in a unit test implement it, so the same
`systems/galera.py` drives all three.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Protocol, TypeVar

T = TypeVar("T")


class ServiceState(StrEnum):
    """A service's state as its manager reports it (supervisord's names; systemd's map)."""

    RUNNING = "RUNNING"
    STARTING = "STARTING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    BACKOFF = "BACKOFF"        # failed to start, the manager retries
    EXITED = "EXITED"
    FATAL = "FATAL"            # failed to start, the manager gave up
    UNKNOWN = "UNKNOWN"

    @classmethod
    def of(cls, name: str) -> ServiceState:
        try:
            return cls(name)
        except ValueError:
            return cls.UNKNOWN


# States from which a service will not come up by itself while we wait for it.
NOT_COMING_UP = frozenset({ServiceState.FATAL, ServiceState.EXITED, ServiceState.BACKOFF,
                           ServiceState.STOPPED})


class ServiceManager(Protocol):
    """A node's init: supervisord in the lab, systemd on a real host."""

    def ready(self) -> bool: ...
    def states(self) -> dict[str, ServiceState]: ...
    def start(self, service: str) -> None: ...
    def stop(self, service: str) -> None: ...
    def main_pid(self, service: str) -> int | None:
        """The service's main process as the node numbers it (None when not running)."""
        ...
    def log_tail(self, service: str, size: int = 600) -> str: ...


class NodeExec(Protocol):
    """One node, as protocol code sees it. Paths are the node's own (`/etc/mysql/my.cnf`)."""

    @property
    def name(self) -> str: ...
    @property
    def address(self) -> ipaddress.IPv4Interface:
        """The node's address on the cluster network."""
        ...
    @property
    def interface(self) -> str:
        """The interface that address is on (from the node, never a constant)."""
        ...
    @property
    def services(self) -> ServiceManager: ...

    def run(self, argv: Sequence[str], *, input: str | None = None, timeout: float = 60,
            check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]: ...
    def read(self, path: str) -> bytes | None:
        """The file's content; None when it does not exist."""
        ...
    def write(self, path: str, data: bytes, mode: int = 0o644, owner: str = "root") -> bool:
        """Put a file in place atomically (owner, mode); True when something changed."""
        ...
    def remove(self, path: str) -> bool: ...
    def exists(self, path: str) -> bool: ...
    def listdir(self, path: str) -> list[str]: ...
    def chown(self, path: str, owner: str) -> None: ...
    def chmod(self, path: str, mode: int) -> None: ...
    def addresses(self) -> set[str]:
        """IPv4 addresses local to the node (its own and any VIP it holds)."""
        ...
    def listening(self, address: str | None = None) -> set[int]:
        """TCP ports in LISTEN state on the node (bound to `address` or to every address,
        when given: an API's own socket, not HAProxy's on a VIP)."""
        ...
    def unix_request(self, path: str, request: bytes, timeout: float = 3) -> bytes:
        """Send `request` to a unix stream socket of the node and read until it closes;
        b"" when the socket cannot be reached."""
        ...


class FileReader(Protocol):
    """What evidence gathering needs of a disk: a running node, or a powered-off node's disk
    read from elsewhere."""

    def read(self, path: str) -> bytes | None: ...
    def exists(self, path: str) -> bool: ...


def read_text(node: FileReader, path: str) -> str | None:
    data = node.read(path)
    return None if data is None else data.decode(errors="replace")


def listening_ports(proc_net_tcp: str, address: str | None = None) -> set[int]:
    """TCP ports in LISTEN state, from the text of /proc/net/tcp and /proc/net/tcp6 (the one
    reading of it, for every kind of node); with `address` (IPv4), only sockets bound to it
    or to every address."""
    wanted = None
    if address is not None:
        wanted = {socket.inet_aton(address)[::-1].hex().upper(), "00000000", "0" * 32}
    ports: set[int] = set()
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A" and ":" in fields[1]:
            local, port = fields[1].rsplit(":", 1)
            if wanted is None or local in wanted:
                ports.add(int(port, 16))
    return ports


def wait_until(predicate: Callable[[], T | None], timeout: float,
               interval: float = 0.2) -> T | None:
    """Poll until predicate() returns a truthy value; returns it (None on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value or None
        time.sleep(interval)
