"""hastack's active/active oslo.messaging RPC service, on the nodes its renderer places it.

Stage 5 (deploy), one system. It starts once the RabbitMQ cluster is complete (the
orchestrator orders it after `rabbitmq`), so its quorum queues get every member.
"""

from __future__ import annotations

from hastack.deploy.site import Site, running, start
from hastack.deploy.systems import parallel, python_package_installed
from hastack.render.rpcservice import service_nodes

SERVICE = "rpc-service"
PYTHON_PACKAGE = "oslo_messaging"


def installed() -> bool:
    return python_package_installed(PYTHON_PACKAGE)


def bring_up(site: Site) -> list[str]:
    if not installed():
        return []
    todo = [site.nodes[n] for n in service_nodes(site.plan)
            if n in site.nodes and not running(site.nodes[n], SERVICE)]
    return parallel(lambda n: [start(n, SERVICE, site.steps, "start (oslo.messaging server)")],
                    todo)
