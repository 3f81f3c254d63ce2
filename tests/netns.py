"""Throw-away network namespaces for tests that run a real daemon on a node's own address.

The names carry the `hs-test-` prefix, and the namespace is deleted even when the test fails;
daemons are stopped by the exact pid the test started, never by name.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import require_program

_counter = itertools.count()


@contextmanager
def netns_with(addresses: list[str], tag: str) -> Iterator[str]:
    """A namespace holding `addresses` (ip/prefix) on a veth pair (the dummy module is not
    loadable here)."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    name = f"hs-test-{tag}-{os.getpid()}-{next(_counter)}"
    ip = require_program("ip")
    subprocess.run([ip, "netns", "add", name], check=True)
    try:
        for args in (["link", "set", "lo", "up"],
                     ["link", "add", "hs0", "type", "veth", "peer", "name", "hs1"],
                     ["link", "set", "hs0", "up"], ["link", "set", "hs1", "up"],
                     *(["addr", "add", a, "dev", "hs0"] for a in addresses)):
            subprocess.run([ip, "-n", name, *args], check=True)
        yield name
    finally:
        subprocess.run([ip, "netns", "delete", name], check=False)


@contextmanager
def started(ns: str, argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run one daemon in the namespace (`ip netns exec` execs it: the pid is the daemon's) and
    stop exactly that pid afterwards."""
    with log.open("wb") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=out, stderr=out)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
