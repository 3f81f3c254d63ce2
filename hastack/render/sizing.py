"""Sizing profiles: the few settings that depend on the machine, not on the design.

Pure data. `production` is what real hosts get from `hastack render`; `lab` is what `hastack
up` renders for three controllers sharing one 2-core machine. A cloud file may pin one
(`settings.sizing`). Renderers read `ctx.sizing`; none bakes in what the lab's machine is.
"""

from __future__ import annotations

from dataclasses import dataclass

from hastack.model.cloud import Sizing


@dataclass(frozen=True)
class SizingProfile:
    name: str
    # Galera's ring buffer: a joiner whose missing writes are still in a donor's gcache
    # catches up by IST instead of a full state transfer.
    galera_gcache_size: str
    # Extra Erlang VM flags of RabbitMQ. Schedulers busy-wait by default, which is right on
    # a dedicated host and starves the other VMs when several share two cores.
    rabbitmq_erl_args: str
    # Worker processes of the OpenStack RPC services (nova-conductor, nova-scheduler,
    # neutron-rpc-server); None: the service's default (one per CPU).
    rpc_workers: int | None = None
    # How often Ceilometer's central agents poll the APIs (polling.yaml's interval; Ceilometer
    # ships 300 s). The lab polls often enough that a scenario sees a lost agent's share of
    # the resources taken over within its run.
    ceilometer_polling_interval_s: int = 300


PROFILES: dict[Sizing, SizingProfile] = {
    Sizing.production: SizingProfile("production", galera_gcache_size="1G",
                                     rabbitmq_erl_args=""),
    Sizing.lab: SizingProfile("lab", galera_gcache_size="64M",
                              rabbitmq_erl_args="+sbwt none +sbwtdcpu none +sbwtdio none",
                              # Three controllers share two cores: one worker each.
                              rpc_workers=1, ceilometer_polling_interval_s=10),
}


def profile(pinned: Sizing | None, default: Sizing = Sizing.production) -> SizingProfile:
    """The cloud file's profile if it pins one, else the caller's default."""
    return PROFILES[pinned or default]
