"""Whole-cluster recovery decisions: which Galera member may bootstrap, how RabbitMQ restarts.

Stage 5 (deploy), the pure half. Inputs are what each node's disk says — `grastate.dat`,
`gvwstate.dat`, the `mariadbd --wsrep-recover` log, RabbitMQ's `nodes_running_at_shutdown` —
already read by a deployer (`hastack.deploy.lab.recovery` for the lab). Outputs are decisions
that carry their reasons, so the CLI explains before anything is started, and the same logic
serves `hastack recover` and a cold `hastack up`.

The rule that prevents the known data-loss bug: `safe_to_bootstrap: 1` alone never picks a
node. Positions (seqno) decide; the flag only breaks ties. A node whose position is unknown,
or whose data cannot be read, blocks the bootstrap unless the survivors' last primary view
proves it had left the cluster before them (or `--force`, with a loud warning).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

ZERO_UUID = "00000000-0000-0000-0000-000000000000"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_RECOVERED = re.compile(rf"WSREP: Recovered position:?\s*({_UUID}):(-?\d+)")


# --- evidence ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """A Galera position: the cluster (state) uuid and the last committed seqno."""

    uuid: str
    seqno: int

    def __str__(self) -> str:
        return f"{self.uuid}:{self.seqno}"


@dataclass(frozen=True)
class Grastate:
    """`grastate.dat`: seqno -1 while running or after a crash; set by a clean shutdown."""

    uuid: str
    seqno: int
    safe_to_bootstrap: bool
    version: str = ""


@dataclass(frozen=True)
class Gvwstate:
    """`gvwstate.dat`: the last primary view this node was in (pc.recovery). Written on
    every primary view change and deleted by a clean shutdown."""

    my_uuid: str
    view_uuid: str
    view_seq: int
    members: tuple[str, ...]


def parse_grastate(text: str) -> Grastate:
    fields = _colon_fields(text)
    try:
        seqno = int(fields.get("seqno", "-1"))
    except ValueError:
        seqno = -1
    return Grastate(uuid=fields.get("uuid", ZERO_UUID).lower(), seqno=seqno,
                    safe_to_bootstrap=fields.get("safe_to_bootstrap", "0") == "1",
                    version=fields.get("version", ""))


def parse_gvwstate(text: str) -> Gvwstate | None:
    fields = _colon_fields(text)
    view = fields.get("view_id", "").split()
    members = tuple(line.split()[1].lower() for line in text.splitlines()
                    if line.startswith("member:") and len(line.split()) >= 2)
    if "my_uuid" not in fields or len(view) < 3:
        return None
    try:
        seq = int(view[2])
    except ValueError:
        return None
    return Gvwstate(fields["my_uuid"].lower(), view[1].lower(), seq, members)


def parse_wsrep_recover(log: str) -> Position | None:
    """The last `WSREP: Recovered position: uuid:seqno` of a `mariadbd --wsrep-recover` log."""
    found = _RECOVERED.findall(log)
    if not found:
        return None
    uuid, seqno = found[-1]
    return Position(uuid.lower(), int(seqno))


def _colon_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        fields.setdefault(key.strip(), value.strip())
    return fields


@dataclass(frozen=True)
class GaleraNode:
    """What one member's disk and processes say. `available`: its data can be read and it can
    be started; `has_data`: a datadir exists (False on a new node)."""

    name: str
    available: bool = True
    running_primary: bool = False
    has_data: bool = True
    grastate: Grastate | None = None
    gvwstate: Gvwstate | None = None
    recovered: Position | None = None
    recover_error: str = ""

    def position(self) -> Position | None:
        """grastate's seqno after a clean shutdown, else the one --wsrep-recover found."""
        if self.grastate is not None and self.grastate.seqno >= 0 \
                and self.grastate.uuid != ZERO_UUID:
            return Position(self.grastate.uuid, self.grastate.seqno)
        if self.recovered is not None and self.recovered.uuid != ZERO_UUID \
                and self.recovered.seqno >= 0:
            return self.recovered
        return None

    def empty(self) -> bool:
        """Holds no cluster state (no datadir, a datadir never started with wsrep, or an
        interrupted state transfer): it cannot be ahead of anyone."""
        if not self.has_data:
            return True
        uuids = {p.uuid for p in (self.grastate, self.recovered) if p is not None}
        return uuids <= {ZERO_UUID} and not self.recover_error


# --- the Galera decision -------------------------------------------------------------------


class Action(StrEnum):
    NOTHING = "nothing"          # every available member runs in a Primary component
    JOIN = "join"                # a Primary component runs: start the others to join it
    NEW_CLUSTER = "new-cluster"  # nobody has data: bootstrap the first member
    BOOTSTRAP = "bootstrap"      # bootstrap the most advanced member, then the others join
    REFUSE = "refuse"            # not safe to pick: explained in `refusals`


@dataclass(frozen=True)
class NodeVerdict:
    name: str
    position: str        # "uuid:seqno", or "" when unknown
    source: str          # grastate | wsrep-recover | running | empty | unknown | unavailable
    safe_to_bootstrap: bool
    role: str            # bootstrap | join | running | left-out


@dataclass(frozen=True)
class Decision:
    action: Action
    chosen: str | None = None
    position: Position | None = None
    joiners: tuple[str, ...] = ()
    start_positions: dict[str, str] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    refusals: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    nodes: tuple[NodeVerdict, ...] = ()
    forced: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"] = self.action.value
        data["position"] = str(self.position) if self.position else None
        return data


def decide_galera(nodes: Sequence[GaleraNode], force: bool = False) -> Decision:
    """Which member bootstraps the cluster after every member stopped, and why.

    Refuses when nodes disagree on the cluster uuid (never overridden: it would wipe a
    cluster), and — unless `force` — when a member that might be the most advanced cannot be
    examined: its position is unknown, or its data is unreachable, and the survivors' last
    primary view does not prove it had left before them."""
    reasons: list[str] = []
    running = [n for n in nodes if n.available and n.running_primary]
    if running:
        rest = tuple(n.name for n in nodes if n.available and not n.running_primary)
        verdicts = tuple(NodeVerdict(n.name, "", "running" if n.running_primary else "-",
                                     False, "running" if n.running_primary else
                                     ("join" if n.available else "left-out")) for n in nodes)
        if not rest:
            return Decision(Action.NOTHING, reasons=(
                "every available member runs in a Primary component",), nodes=verdicts)
        start = {n.name: str(pos) for n in nodes
                 if n.available and not n.running_primary and (pos := n.position())}
        return Decision(Action.JOIN, chosen=running[0].name, joiners=rest, nodes=verdicts,
                        start_positions=start,
                        reasons=(f"a Primary component runs on "
                                 f"{', '.join(n.name for n in running)}: {', '.join(rest)} "
                                 "join it (IST/SST), no bootstrap",))

    if not any(n.has_data for n in nodes if n.available) \
            and all(n.available for n in nodes):
        first = nodes[0].name
        return Decision(Action.NEW_CLUSTER, chosen=first,
                        joiners=tuple(n.name for n in nodes[1:]),
                        reasons=(f"no member has a datadir: a new cluster from {first}",),
                        nodes=tuple(NodeVerdict(n.name, "", "empty", False,
                                                "bootstrap" if n.name == first else "join")
                                    for n in nodes))

    # 1. One cluster? Every uuid any node reports must be the same.
    uuids: dict[str, list[str]] = {}
    for n in nodes:
        for state in (n.grastate, n.recovered):
            if state is not None and state.uuid != ZERO_UUID:
                holders = uuids.setdefault(state.uuid, [])
                if n.name not in holders:
                    holders.append(n.name)
    refusals: list[str] = []
    if len(uuids) > 1:
        listing = "; ".join(f"{u} on {', '.join(h)}" for u, h in uuids.items())
        refusals.append(f"nodes disagree on the cluster uuid ({listing}): they hold different "
                        "clusters' data; bootstrapping either would make the other's members "
                        "discard theirs by a full state transfer. Decide by hand which data to "
                        "keep; --force does not override this")
        return Decision(Action.REFUSE, refusals=tuple(refusals), nodes=_verdicts(nodes, None),
                        reasons=("compared the cluster uuids",))

    # 2. Positions of every examinable member.
    known = [n for n in nodes if n.available and n.position() is not None]
    empty = [n for n in nodes if n.available and n.position() is None and n.empty()]
    unknown = [n for n in nodes if n.available and n.position() is None and not n.empty()]
    absent = [n for n in nodes if not n.available]
    for n in known:
        pos = n.position()
        assert pos is not None
        origin = "grastate.dat (clean shutdown)" if n.grastate and n.grastate.seqno >= 0 \
            else "--wsrep-recover (grastate.dat seqno -1: crash)"
        reasons.append(f"{n.name}: seqno {pos.seqno} from {origin}, "
                       f"safe_to_bootstrap {int(_safe(n))}")
    for n in empty:
        reasons.append(f"{n.name}: no cluster state (new or interrupted datadir): joins by SST")
    if not known:
        refusals.append("no available member has a known position: nothing to bootstrap from"
                        + (f" ({'; '.join(_why_unknown(n) for n in unknown)})" if unknown else ""))
        return Decision(Action.REFUSE, refusals=tuple(refusals), reasons=tuple(reasons),
                        nodes=_verdicts(nodes, None))

    best_seqno = max(_seqno(n) for n in known)
    top = [n for n in known if _seqno(n) == best_seqno]
    # Ties: prefer safe_to_bootstrap 1 (it saw the last commit as the last to leave), then the
    # plan's order (deterministic). The flag never beats a higher seqno.
    chosen = sorted(top, key=lambda n: (not _safe(n), nodes.index(n)))[0]
    for n in known:
        if _safe(n) and _seqno(n) < best_seqno:
            reasons.append(f"{n.name} has safe_to_bootstrap: 1 but seqno {_seqno(n)} is behind "
                           f"{best_seqno}: stale (it left cleanly before the others); "
                           "it will not bootstrap, it joins")
    reasons.append(f"most advanced: {chosen.name} at seqno {best_seqno}"
                   + (f" (tie with {', '.join(n.name for n in top if n is not chosen)}; "
                      f"{'safe_to_bootstrap 1' if _safe(chosen) else 'plan order'} decides)"
                      if len(top) > 1 else ""))

    # 3. Could a member we cannot examine be further ahead?
    last_view = _latest_view(known)
    excluded_ok: list[str] = []
    for n in [*unknown, *absent]:
        why = _why_unknown(n) if n.available else f"{n.name}: data unreachable (node unavailable)"
        pos = n.position()
        if pos is not None:
            if pos.seqno <= best_seqno:
                excluded_ok.append(f"{why}, but its last known seqno {pos.seqno} is not ahead "
                                   f"of {best_seqno}")
                continue
            refusals.append(f"{why}, and its last known seqno {pos.seqno} is AHEAD of "
                            f"{best_seqno}: bootstrapping without it would lose its writes")
            continue
        if last_view is not None and _not_in_view(n, last_view, known):
            excluded_ok.append(f"{why}, but it is not in the last primary view (recorded by "
                               f"{last_view[0]}, view {last_view[1].view_seq}, members: "
                               f"{_member_names(last_view[1], known)}): it had left before "
                               "them, so it cannot be ahead")
            continue
        proof = ("no survivor has a gvwstate.dat (all shut down cleanly)" if last_view is None
                 else f"the last primary view (recorded by {last_view[0]}, view "
                 f"{last_view[1].view_seq}, members: {_member_names(last_view[1], known)}) "
                 "includes a member none of the examined nodes are")
        refusals.append(f"{why}, and it might be the most advanced: {proof}")
    reasons += excluded_ok

    warnings: list[str] = []
    if refusals and not force:
        return Decision(Action.REFUSE, chosen=None, refusals=tuple(refusals),
                        reasons=tuple(reasons), nodes=_verdicts(nodes, None))
    if refusals:
        warnings = [f"FORCED: bootstrapping {chosen.name} although {r}" for r in refusals]
        warnings.append("writes that only the missing member committed are LOST when it "
                        "rejoins (it gets a state transfer from the new cluster)")
    joiners = tuple(n.name for n in nodes if n.available and n is not chosen)
    start = {n.name: str(n.position()) for n in known}
    return Decision(Action.BOOTSTRAP, chosen=chosen.name, position=chosen.position(),
                    joiners=joiners, start_positions=start, reasons=tuple(reasons),
                    refusals=(), warnings=tuple(warnings), nodes=_verdicts(nodes, chosen.name),
                    forced=bool(refusals))


def _seqno(node: GaleraNode) -> int:
    pos = node.position()
    return pos.seqno if pos is not None else -1


def _safe(node: GaleraNode) -> bool:
    return bool(node.grastate and node.grastate.safe_to_bootstrap)


def _why_unknown(node: GaleraNode) -> str:
    detail = node.recover_error or "--wsrep-recover found no position"
    return f"{node.name}: position unknown (grastate.dat seqno -1, {detail})"


def _latest_view(known: Sequence[GaleraNode]) -> tuple[str, Gvwstate] | None:
    """The newest primary view any examined member recorded (highest view seq)."""
    views = [(n.name, n.gvwstate) for n in known if n.gvwstate is not None]
    if not views:
        return None
    return max(views, key=lambda v: v[1].view_seq)


def _not_in_view(node: GaleraNode, view: tuple[str, Gvwstate], known: Sequence[GaleraNode]
                 ) -> bool:
    """True when `node` provably was not a member of the last primary view.

    A member that is not examined has no known gcomm uuid, so the proof is by elimination:
    every member of the view must be an examined node (by its own my_uuid)."""
    own = {n.gvwstate.my_uuid: n.name for n in known if n.gvwstate is not None}
    if node.gvwstate is not None:
        return node.gvwstate.my_uuid not in view[1].members
    return all(m in own for m in view[1].members)


def _member_names(view: Gvwstate, known: Sequence[GaleraNode]) -> str:
    own = {n.gvwstate.my_uuid: n.name for n in known if n.gvwstate is not None}
    return ", ".join(own.get(m, f"unknown {m[:8]}") for m in view.members)


def _verdicts(nodes: Sequence[GaleraNode], chosen: str | None) -> tuple[NodeVerdict, ...]:
    rows = []
    for n in nodes:
        pos = n.position()
        if not n.available:
            source, role = "unavailable", "left-out"
        elif pos is not None:
            source = "grastate" if n.grastate and n.grastate.seqno >= 0 else "wsrep-recover"
            role = "bootstrap" if n.name == chosen else "join"
        else:
            source = "empty" if n.empty() else "unknown"
            role = "join"
        if chosen is None and n.available:
            role = "-"
        rows.append(NodeVerdict(n.name, str(pos) if pos else "", source, _safe(n), role))
    return tuple(rows)


# --- RabbitMQ ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RabbitNode:
    """`running_at_shutdown`: the nodenames this node saw running when it went down (its
    `nodes_running_at_shutdown` file); `()` when unknown."""

    name: str
    nodename: str
    available: bool = True
    running: bool = False
    has_data: bool = True
    running_at_shutdown: tuple[str, ...] = ()


@dataclass(frozen=True)
class RabbitPlan:
    first: tuple[str, ...]            # start these together first (empty: nothing to do)
    then: tuple[str, ...]             # then these (a new cluster's non-seed members)
    force_boot: str | None = None     # `rabbitmqctl force_boot` on this node before its start
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def decide_rabbitmq(nodes: Sequence[RabbitNode]) -> RabbitPlan:
    """How a stopped RabbitMQ cluster (3.10, Mnesia) restarts.

    A restarting member waits for the Mnesia tables of the members it did not see stop —
    measured on the lab: after one member stopped cleanly and the others lost power, the
    survivors still waited for all three. So every available member starts at once (the last
    to stop is among them, so it is never waiting behind the others). When a member with data
    is unavailable, the others would wait for it forever (10 x 30 s, then fail): `force_boot`
    the one that stopped last among the available, before its start."""
    available = [n for n in nodes if n.available]
    todo = [n for n in available if not n.running]
    if not todo:
        return RabbitPlan((), (), reasons=("every available member runs",))
    if any(n.running for n in available):
        return RabbitPlan(tuple(n.name for n in todo), (), reasons=(
            "a member runs: the others start and rejoin it",))
    with_data = [n for n in todo if n.has_data]
    if not with_data:
        return RabbitPlan((todo[0].name,), tuple(n.name for n in todo[1:]), reasons=(
            f"no member has data: a new cluster seeded by {todo[0].name}",))
    names = {n.nodename: n.name for n in nodes}
    known = [n for n in with_data if n.running_at_shutdown]
    reasons = [f"{n.name} saw {', '.join(names.get(m, m) for m in n.running_at_shutdown)} "
               "running when it stopped" for n in known]
    # The last to stop saw the fewest peers running; members that went down together (a
    # power cut) saw the same set and all count as last.
    fewest = min((len(n.running_at_shutdown) for n in known), default=0)
    last = [n for n in known if len(n.running_at_shutdown) == fewest] or with_data
    reasons.append(f"last to stop: {', '.join(n.name for n in last)}; members that did not "
                   "see each other stop wait for each other's tables, so all available "
                   f"members start together: {', '.join(n.name for n in todo)}")
    lost = [n for n in nodes if not n.available]
    if not lost:
        return RabbitPlan(tuple(n.name for n in todo), (), reasons=tuple(reasons))
    boot = last[0]
    lost_last = sorted({names.get(m, m) for n in last for m in n.running_at_shutdown}
                       & {n.name for n in lost})
    reasons.append(f"{', '.join(n.name for n in lost)} unavailable: the others would wait for "
                   f"its tables; force_boot {boot.name} (stopped last among the available)")
    warnings = ((f"{', '.join(lost_last)} was running when the last members stopped: "
                 "definitions changed only there (users, queues declared at the very end) are "
                 "lost; quorum queues keep their messages on the majority",) if lost_last
                else ())
    return RabbitPlan(tuple(n.name for n in todo), (), force_boot=boot.name,
                      reasons=tuple(reasons), warnings=warnings)


def parse_running_at_shutdown(text: str) -> tuple[str, ...]:
    """RabbitMQ's `nodes_running_at_shutdown`: an Erlang list, `[rabbit@a,rabbit@b].`"""
    body = text.strip().rstrip(".").strip().strip("[]")
    return tuple(n.strip().strip("'") for n in body.split(",") if n.strip())


def explain(decision: Decision, rabbit: RabbitPlan | None = None) -> list[str]:
    """The decision in sentences, for people, before anything is started."""
    lines = [f"Galera: {decision.action.value}"
             + (f" from {decision.chosen}" if decision.chosen and decision.action in (
                 Action.BOOTSTRAP, Action.NEW_CLUSTER) else "")
             + (f" at {decision.position}" if decision.position else "")]
    lines += [f"  - {r}" for r in decision.reasons]
    lines += [f"  REFUSED: {r}" for r in decision.refusals]
    lines += [f"  WARNING: {w}" for w in decision.warnings]
    if decision.joiners and decision.action is not Action.REFUSE:
        lines.append(f"  then join: {', '.join(decision.joiners)} (one at a time, IST/SST)")
    if rabbit is not None:
        order = " -> ".join(", ".join(group) for group in (rabbit.first, rabbit.then) if group)
        lines.append(f"RabbitMQ: {'start ' + order if order else 'nothing to start'}"
                     + (f" (force_boot {rabbit.force_boot})" if rabbit.force_boot else ""))
        lines += [f"  - {r}" for r in rabbit.reasons]
        lines += [f"  WARNING: {w}" for w in rabbit.warnings]
    return lines
