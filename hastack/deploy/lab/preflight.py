"""Checks before the lab touches anything: root, and every program it will run installed.

Fails early with one line naming the Debian package, instead of a half-built lab.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable

from hastack.errors import LabError

SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

# program -> Debian package that ships it
BASE_PROGRAMS = {
    "unshare": "util-linux", "nsenter": "util-linux", "ip": "iproute2",
    "supervisord": "supervisor", "mount": "mount",
}
PROCESS_PROGRAMS: dict[str, dict[str, str]] = {
    "haproxy": {"haproxy": "haproxy"},
    "keepalived": {"keepalived": "keepalived"},
    "mariadb-galera": {"mariadbd": "mariadb-server", "mariadb-install-db": "mariadb-server",
                       "mariadb": "mariadb-client", "mariabackup": "mariadb-backup",
                       "socat": "socat", "rsync": "rsync"},
    "garbd": {"garbd": "galera-arbitrator-4"},
    "rabbitmq": {"rabbitmq-server": "rabbitmq-server", "rabbitmqctl": "rabbitmq-server"},
    "memcached": {"memcached": "memcached"},
    "redis": {"redis-server": "redis-server"},
    "redis-sentinel": {"redis-sentinel": "redis-sentinel"},
    "corosync": {"corosync": "corosync", "corosync-quorumtool": "corosync"},
    # fence_dummy stands for the fence-agents package (fence_hastack runs on its library),
    # IPaddr2's shell library for resource-agents.
    "pacemaker": {"pacemakerd": "pacemaker", "crm_mon": "pacemaker-cli-utils",
                  "cibadmin": "pacemaker-cli-utils", "stonith_admin": "pacemaker-cli-utils",
                  "fence_dummy": "fence-agents"},
}
GALERA_PROVIDER = ("/usr/lib/galera/libgalera_smm.so", "galera-4")


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates namespaces, links and mounts): "
                       "run it with sudo")


def require_programs(processes: Iterable[str]) -> None:
    processes = list(processes)
    wanted = dict(BASE_PROGRAMS)
    for process in processes:
        wanted.update(PROCESS_PROGRAMS.get(process, {}))
    missing = sorted({pkg for prog, pkg in wanted.items()
                      if shutil.which(prog, path=SEARCH_PATH) is None})
    if "mariadb-galera" in processes and not os.path.exists(GALERA_PROVIDER[0]):
        missing.append(GALERA_PROVIDER[1])
    if missing:
        raise LabError(f"missing Debian package(s) {', '.join(missing)}: run scripts/setup.sh")
