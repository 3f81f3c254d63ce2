"""Fault targets: a node by name, or a role resolved against what the lab is doing right now.

Pure: a `LabView` (a snapshot of who holds the VIP, which Galera member takes the writes,
who runs what) in, a node name out. As in os-faults, a target is a filtered collection and
`pick` takes one deterministically — preferring a node that is *not* also the VIP holder or
the writer, so that a scenario about RabbitMQ measures RabbitMQ, not the VIP moving.

    vip-holder      the node holding the internal VIP (exactly one, else an error)
    galera-writer   the Galera member HAProxy sends writes to
    rabbit-any      a RabbitMQ member (a bystander when possible)
    memcached-any   a memcached member (a bystander when possible)
    controller-any  a node running the control plane that is neither holder nor writer
    <node>          that node
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hastack.chaos import ChaosError


@dataclass(frozen=True)
class LabView:
    nodes: tuple[str, ...]                              # every cloud node (not the client)
    vip_holders: Mapping[str, Sequence[str]]            # VIP name -> holders
    galera_writer: str | None = None
    members: Mapping[str, Sequence[str]] = field(default_factory=dict)  # process -> nodes
    internal_vip: str = "internal"

    def vip_holder(self) -> str | None:
        holders = list(self.vip_holders.get(self.internal_vip, ()))
        return holders[0] if len(holders) == 1 else None


ROLE_PROCESS = {"rabbit-any": "rabbitmq", "memcached-any": "memcached",
                "controller-any": "haproxy"}
ROLES = ("vip-holder", "galera-writer", *ROLE_PROCESS)


def pick(candidates: Sequence[str], avoid: Sequence[str | None]) -> str | None:
    """The first candidate not in `avoid`, else the first candidate."""
    for name in candidates:
        if name not in avoid:
            return name
    return candidates[0] if candidates else None


def resolve(spec: str, view: LabView) -> str:
    """The node a target spec names now; ChaosError (with what is known) when none does."""
    if spec in view.nodes:
        return spec
    if spec == "vip-holder":
        holder = view.vip_holder()
        if holder is None:
            raise ChaosError(f"vip-holder: the {view.internal_vip} VIP is held by "
                             f"{list(view.vip_holders.get(view.internal_vip, [])) or 'nobody'}"
                             ", not by exactly one node")
        return holder
    if spec == "galera-writer":
        if view.galera_writer is None:
            raise ChaosError("galera-writer: HAProxy has no UP Galera server")
        return view.galera_writer
    process = ROLE_PROCESS.get(spec)
    if process is not None:
        chosen = pick(list(view.members.get(process, ())),
                      [view.vip_holder(), view.galera_writer])
        if chosen is None:
            raise ChaosError(f"{spec}: no node runs {process}")
        return chosen
    raise ChaosError(f"unknown target {spec!r}: a node ({', '.join(view.nodes)}) or one of "
                     f"{', '.join(ROLES)}")
