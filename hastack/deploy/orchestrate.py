"""What runs on the nodes, as data: components, what each needs first, and one runner.

Stage 5 (deploy). `up`, `recover` and the chaos repair path all call `run_components`; a
graceful restart stops services in `graceful_stop_order`, the same graph read backwards —
one ordering, not three. Each component looks at what already runs and starts only what is
missing, so the same run brings a deployment up from nothing, repairs it, or, on a healthy
one, does nothing.

A component starts as soon as everything it `needs` is there: another component done, or a
milestone one reaches before it is done (`galera-primary`: a Primary component with the
init SQL run, before the other members have joined). A component whose need failed does not
start; the failure is reported once, by the component that failed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from hastack.deploy.site import Site
from hastack.deploy.systems import (
    caches,
    galera,
    keystone,
    loadbalancing,
    openstack,
    pacemaker,
    rabbitmq,
)
from hastack.errors import LabError

Start = Callable[[Site], list[str]]
OnNode = Callable[[Site, str], list[str]]


@dataclass(frozen=True)
class Component:
    name: str
    start: Start
    needs: tuple[str, ...] = ()         # components or milestones
    milestones: tuple[str, ...] = ()    # reached by `start` before it returns
    services: tuple[str, ...] = ()      # what it runs on a node, in start order
    entry: bool = False                 # carries the VIPs: the first to stop on a restart
    # Before a planned stop of a node, move the component's clients off it (and back after).
    drain: OnNode | None = None
    readmit: OnNode | None = None


def components(choose: galera.Chooser = galera.choose_most_advanced,
               overrides: Mapping[str, Start] | None = None) -> tuple[Component, ...]:
    """The deployment's components. `choose` picks the Galera member to bootstrap when none
    runs; `overrides` replace a component's start (recovery acts on its own decisions)."""
    bring = galera.GaleraBringUp(choose)
    graph = (
        # Before load-balancing: on a planned stop Pacemaker gives its resources (the VIPs,
        # HAProxy) away before anything else stops under them.
        Component("pacemaker", pacemaker.bring_up,
                  services=(pacemaker.COROSYNC, pacemaker.PACEMAKER), entry=True),
        Component("load-balancing", loadbalancing.bring_up,
                  services=(loadbalancing.HAPROXY, loadbalancing.KEEPALIVED), entry=True,
                  drain=loadbalancing.drain, readmit=loadbalancing.readmit),
        Component("galera", bring.primary, milestones=(galera.PRIMARY,),
                  services=(galera.MARIADB, galera.HEALTH)),
        Component("galera-joiners", bring.others, needs=("galera",)),
        Component("rabbitmq", rabbitmq.bring_up, services=(rabbitmq.SERVICE,),
                  drain=rabbitmq.drain, readmit=rabbitmq.revive),
        Component("caches", caches.bring_up,
                  services=(caches.MEMCACHED, caches.REDIS, caches.SENTINEL)),
        Component("keystone-keys", keystone.prepare),
        Component("keystone", keystone.bring_up, needs=("keystone-keys", galera.PRIMARY),
                  services=(keystone.SERVICE,)),
        # The services behind Keystone: registered in it, schemas on Galera, then started.
        Component("placement", openstack.starter("placement"), needs=("keystone",),
                  services=openstack.services_of(openstack.BY_NAME["placement"])),
        Component("glance", openstack.starter("glance"), needs=("keystone",),
                  services=openstack.services_of(openstack.BY_NAME["glance"])),
        Component("neutron", openstack.starter("neutron"), needs=("keystone", "rabbitmq"),
                  services=openstack.services_of(openstack.BY_NAME["neutron"])),
        # Nova's API asks Neutron about every server's ports: Neutron answers first.
        Component("nova", openstack.starter("nova"),
                  # Glance and Neutron are called per request (an image, a port), not at
                  # start: only nova-compute's first report needs Placement.
                  needs=("keystone", "rabbitmq", "placement"),
                  services=openstack.services_of(openstack.BY_NAME["nova"])),
        # Heat's engines call the other services only when a stack asks for them.
        Component("heat", openstack.starter("heat"), needs=("keystone", "rabbitmq"),
                  services=openstack.services_of(openstack.BY_NAME["heat"])),
        # The central agents join their tooz group through Redis Sentinel at start; they
        # poll the other services' APIs only at each interval.
        Component("ceilometer", openstack.starter("ceilometer"),
                  needs=("keystone", "rabbitmq", "caches"),
                  services=openstack.services_of(openstack.BY_NAME["ceilometer"])),
    )
    overrides = overrides or {}
    return tuple(replace(c, start=overrides[c.name]) if c.name in overrides else c
                 for c in graph)


# The stateful tier and what fronts it: the components with no client of their own to wait
# for. Recovery brings these back before any of their clients start.
STATEFUL = ("pacemaker", "load-balancing", "galera", "galera-joiners", "rabbitmq", "caches")


def bring_up(site: Site, overrides: Mapping[str, Start] | None = None,
             choose: galera.Chooser = galera.choose_most_advanced,
             only: Collection[str] | None = None) -> list[str]:
    """Every component (or `only` these), in dependency order and otherwise in parallel;
    a need outside `only` counts as met."""
    graph = components(choose, overrides)
    if only is not None:
        kept = [c for c in graph if c.name in only]
        provided = {n for c in kept for n in (c.name, *c.milestones)}
        graph = tuple(replace(c, needs=tuple(n for n in c.needs if n in provided))
                      for c in kept)
    return run_components(site, graph)


def run_components(site: Site, graph: Sequence[Component]) -> list[str]:
    """Run the graph: each component in its own thread once its needs are met. Raises one
    LabError with every failure."""
    _check(graph)
    done = {name: threading.Event() for c in graph for name in (c.name, *c.milestones)}
    failed: set[str] = set()
    site.milestones = done
    lock = threading.Lock()

    def run(component: Component) -> list[str]:
        for need in component.needs:
            done[need].wait()
        with lock:
            blocked = [n for n in component.needs if n in failed]
        if blocked:
            _fail(component)
            return []
        try:
            return component.start(site)
        except BaseException:
            _fail(component)
            raise
        finally:
            for name in (component.name, *component.milestones):
                done[name].set()

    def _fail(component: Component) -> None:
        with lock:
            failed.update(n for n in (component.name, *component.milestones)
                          if not done[n].is_set())
        for name in (component.name, *component.milestones):
            done[name].set()

    actions: list[str] = []
    errors: list[str] = []
    pool = ThreadPoolExecutor(max_workers=len(graph))
    try:
        for future in [pool.submit(run, c) for c in graph]:
            try:
                actions += future.result()
            except LabError as exc:
                errors.append(str(exc))
    finally:
        # On Ctrl-C, do not wait for the components: the caller tears the nodes down, which
        # makes whatever they still wait for fail at once.
        for event in done.values():
            event.set()
        pool.shutdown(wait=False, cancel_futures=True)
        site.milestones = {}
    if errors:
        raise LabError("; ".join(errors))
    return actions


def _check(graph: Sequence[Component]) -> None:
    known = {name for c in graph for name in (c.name, *c.milestones)}
    for c in graph:
        unknown = [n for n in c.needs if n not in known]
        if unknown:
            raise LabError(f"component {c.name} needs unknown {', '.join(unknown)}")
    _topological(graph)


def _topological(graph: Sequence[Component]) -> list[Component]:
    """Components with everything they need before them; raises on a cycle."""
    provider = {name: c.name for c in graph for name in (c.name, *c.milestones)}
    by_name = {c.name: c for c in graph}
    ordered: list[Component] = []
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise LabError(f"components form a cycle through {name}")
        state[name] = "visiting"
        for need in by_name[name].needs:
            visit(provider[need])
        state[name] = "done"
        ordered.append(by_name[name])

    for c in graph:
        visit(c.name)
    return ordered


def take_out_of_service(site: Site, node: str,
                        graph: Sequence[Component] | None = None) -> list[str]:
    """A planned stop's first step, while everything still runs: each component moves its
    clients off `node` (the load balancers stop sending it requests and move the Galera
    writer, RabbitMQ hands its queues and connections to the other members)."""
    return [a for c in graph or components() if c.drain for a in c.drain(site, node)]


def return_to_service(site: Site, node: str,
                      graph: Sequence[Component] | None = None) -> list[str]:
    """After the node's services run again: undo `take_out_of_service`."""
    return [a for c in graph or components() if c.readmit for a in c.readmit(site, node)]


def graceful_stop_order(running: Iterable[str],
                        graph: Sequence[Component] | None = None) -> list[str]:
    """The order to stop a node's running services for a planned restart: the components
    that carry the VIPs first (keepalived gives the VIP away, then HAProxy), then every other
    component after what needs it, each one's services in reverse start order; services of no
    component last."""
    graph = graph or components()
    ordered = _topological(graph)
    entries = [c for c in ordered if c.entry]
    rest = [c for c in reversed(ordered) if not c.entry]
    order = [s for c in [*entries, *rest] for s in reversed(c.services)]
    present = list(running)
    return [s for s in order if s in present] + [s for s in present if s not in order]
