"""One module per external system, written only against `NodeExec` and a `Site`.

Stage 5 (deploy). `galera`, `rabbitmq`, `loadbalancing` (HAProxy + keepalived), `caches`
(memcached, Redis, Sentinel), `keystone`, `openstack`, `pacemaker`: each knows its system's
protocol — how a member starts, joins, is observed — and nothing about namespaces or SSH.
This module holds the two things every system needs: run one function per node in
parallel, and wait for a service to listen on its port.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from hastack.deploy.base import NOT_COMING_UP, NodeExec, wait_until
from hastack.errors import LabError


def python_package_installed(module: str) -> bool:
    """Whether a Python package a service runs from (the project's venv) is importable."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def parallel(func: Callable[[NodeExec], list[str]], nodes: Sequence[NodeExec]) -> list[str]:
    """func on every node at once; the actions of all, in the nodes' order."""
    if not nodes:
        return []
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        return [a for result in pool.map(func, nodes) for a in result]


def wait_listening(node: NodeExec, service: str, port: int, timeout: float,
                   address: str | None = None) -> None:
    """Until `service` listens on `port` (on `address`: an API that binds its node's own
    address, while HAProxy already holds the same port on a VIP); fails at once when its
    manager gave up on it."""
    def ready() -> bool:
        state = node.services.states().get(service)
        if state in NOT_COMING_UP:
            raise LabError(f"{node.name}: {service} is {state}: "
                           f"{node.services.log_tail(service)}")
        return port in node.listening(address)
    if not wait_until(ready, timeout, 0.1):
        raise LabError(f"{node.name}: {service} not listening on :{port} after {timeout:g} s: "
                       f"{node.services.log_tail(service)}")
