"""The recovery decisions (`hastack.deploy.recovery`), from files recorded on the lab.

The fixtures in tests/fixtures/recovery/ are real MariaDB 10.11 / galera-4 outputs from a
three-member lab:
- `powerloss-*`: every member SIGKILLed at once (grastate.dat seqno -1, a 3-member
  gvwstate.dat, --wsrep-recover logs at seqno 69);
- `stale-*`: ctl3 stopped cleanly at seqno 45 (10.11 wrote safe_to_bootstrap: 0), writes
  went on to 66 on ctl1/ctl2 (their gvwstate.dat: a 2-member view), then they lost power;
- `running-*-gvwstate.dat`: the 3-member view while all ran;
- `failed-wsrep-recover-locked.log`: --wsrep-recover while another mariadbd held the datadir;
- `other-cluster-*`: a member of a different cluster (another lab), after a power cut.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from hastack.deploy.recovery import (
    ZERO_UUID,
    Action,
    GaleraNode,
    Grastate,
    Position,
    RabbitNode,
    decide_galera,
    decide_rabbitmq,
    explain,
    parse_grastate,
    parse_gvwstate,
    parse_running_at_shutdown,
    parse_wsrep_recover,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "recovery"
CLUSTER = "0fc18aae-e6cf-11f1-994e-133badfca964"
OTHER = "f7d8a70c-e6d0-11f1-aa50-e7b90fe8d00f"   # another lab's cluster (other-cluster-*)


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def crashed(prefix: str, node: str, gvw: str | None = None) -> GaleraNode:
    """A member after a power cut, as the lab reads it: grastate, gvwstate, recover log."""
    gvwstate = parse_gvwstate(text(gvw or f"{prefix}-{node}-gvwstate{_sfx(prefix)}.dat"))
    grastate = parse_grastate(text(f"{prefix}-{node}-grastate{_sfx(prefix)}.dat"))
    return GaleraNode(node, grastate=grastate, gvwstate=gvwstate,
                      recovered=parse_wsrep_recover(text(f"{prefix}-{node}-wsrep-recover.log")))


def _sfx(prefix: str) -> str:
    return "-crashed" if prefix == "stale" else ""


def powerloss() -> list[GaleraNode]:
    return [crashed("powerloss", n) for n in ("ctl1", "ctl2", "ctl3")]


def stale_ctl3(safe_to_bootstrap: bool = False) -> GaleraNode:
    grastate = text("stale-ctl3-grastate.dat")
    if safe_to_bootstrap:
        grastate = re.sub(r"safe_to_bootstrap:\s*\d", "safe_to_bootstrap: 1", grastate)
    return GaleraNode("ctl3", grastate=parse_grastate(grastate), gvwstate=None)


def stale() -> list[GaleraNode]:
    return [crashed("stale", "ctl1"), crashed("stale", "ctl2"), stale_ctl3()]


def with_seqno(node: GaleraNode, seqno: int) -> GaleraNode:
    return replace(node, recovered=Position(CLUSTER, seqno))


# --- parsers ------------------------------------------------------------------------------


def test_parse_grastate_after_a_crash_and_after_a_clean_stop() -> None:
    assert parse_grastate(text("powerloss-ctl1-grastate.dat")) == Grastate(
        CLUSTER, -1, False, "2.1")
    assert parse_grastate(text("stale-ctl3-grastate.dat")) == Grastate(CLUSTER, 45, False, "2.1")


def test_parse_grastate_tolerates_junk() -> None:
    state = parse_grastate("# GALERA saved state\nseqno: many\n")
    assert state == Grastate(ZERO_UUID, -1, False, "")


def test_parse_gvwstate_members_and_view() -> None:
    view = parse_gvwstate(text("powerloss-ctl1-gvwstate.dat"))
    assert view is not None
    assert view.view_seq == 8 and len(view.members) == 3
    assert view.my_uuid in view.members
    two = parse_gvwstate(text("stale-ctl1-gvwstate-crashed.dat"))
    assert two is not None and len(two.members) == 2 and two.view_seq == 4


def test_parse_gvwstate_incomplete_is_none() -> None:
    assert parse_gvwstate("my_uuid: x\n#vwbeg\n") is None
    assert parse_gvwstate("my_uuid: x\nview_id: 3 y notanumber\n") is None


def test_parse_wsrep_recover_real_logs() -> None:
    assert parse_wsrep_recover(text("powerloss-ctl2-wsrep-recover.log")) == Position(CLUSTER, 69)
    assert parse_wsrep_recover(text("stale-ctl3-wsrep-recover.log")) == Position(CLUSTER, 45)
    assert parse_wsrep_recover(text("failed-wsrep-recover-locked.log")) is None


def test_parse_rabbitmq_running_at_shutdown() -> None:
    assert parse_running_at_shutdown("[rabbit@ctl1,rabbit@ctl2].\n") == (
        "rabbit@ctl1", "rabbit@ctl2")
    assert parse_running_at_shutdown("[].") == ()


# --- Galera: nothing to recover -------------------------------------------------------------


def test_all_members_running_means_nothing() -> None:
    nodes = [GaleraNode(n, running_primary=True) for n in ("ctl1", "ctl2", "ctl3")]
    assert decide_galera(nodes).action is Action.NOTHING


def test_a_running_primary_means_join_not_bootstrap() -> None:
    nodes = [GaleraNode("ctl1", running_primary=True), *powerloss()[1:]]
    decision = decide_galera(nodes)
    assert decision.action is Action.JOIN
    assert decision.joiners == ("ctl2", "ctl3")
    assert decision.position is None


def test_no_datadir_anywhere_is_a_new_cluster() -> None:
    nodes = [GaleraNode(n, has_data=False) for n in ("ctl1", "ctl2", "ctl3")]
    decision = decide_galera(nodes)
    assert decision.action is Action.NEW_CLUSTER
    assert decision.chosen == "ctl1" and decision.joiners == ("ctl2", "ctl3")


# --- Galera: bootstrap ------------------------------------------------------------------------


def test_power_loss_bootstraps_the_most_advanced() -> None:
    nodes = powerloss()
    nodes[1] = with_seqno(nodes[1], 70)
    decision = decide_galera(nodes)
    assert decision.action is Action.BOOTSTRAP
    assert decision.chosen == "ctl2" and decision.position == Position(CLUSTER, 70)
    assert decision.joiners == ("ctl1", "ctl3")
    assert decision.start_positions["ctl1"] == f"{CLUSTER}:69"


def test_power_loss_tie_goes_to_plan_order() -> None:
    decision = decide_galera(powerloss())
    assert decision.chosen == "ctl1"
    assert any("plan order decides" in r for r in decision.reasons)


def test_tie_prefers_safe_to_bootstrap() -> None:
    nodes = powerloss()
    nodes[2] = replace(nodes[2], grastate=Grastate(CLUSTER, -1, True))
    decision = decide_galera(nodes)
    assert decision.chosen == "ctl3"
    assert any("safe_to_bootstrap 1 decides" in r for r in decision.reasons)


def test_stale_node_trap_positions_beat_safe_to_bootstrap() -> None:
    """The known bug: a cleanly stopped but stale member with safe_to_bootstrap: 1."""
    nodes = stale()
    nodes[2] = stale_ctl3(safe_to_bootstrap=True)
    decision = decide_galera(nodes)
    assert decision.action is Action.BOOTSTRAP
    assert decision.chosen == "ctl1" and decision.position == Position(CLUSTER, 66)
    assert "ctl3" in decision.joiners
    assert any("ctl3 has safe_to_bootstrap: 1 but seqno 45 is behind 66" in r
               for r in decision.reasons)
    assert decision.start_positions["ctl3"] == f"{CLUSTER}:45"


def test_stale_node_as_recorded_by_mariadb_10_11() -> None:
    decision = decide_galera(stale())
    assert decision.chosen == "ctl1"
    verdicts = {v.name: v for v in decision.nodes}
    assert verdicts["ctl3"].source == "grastate" and verdicts["ctl3"].role == "join"
    assert verdicts["ctl1"].role == "bootstrap"


def test_clean_full_shutdown_last_to_leave_bootstraps() -> None:
    nodes = [GaleraNode("ctl1", grastate=Grastate(CLUSTER, 40, False)),
             GaleraNode("ctl2", grastate=Grastate(CLUSTER, 52, True)),
             GaleraNode("ctl3", grastate=Grastate(CLUSTER, 45, False))]
    decision = decide_galera(nodes)
    assert decision.chosen == "ctl2"
    assert any("clean shutdown" in r for r in decision.reasons)


def test_empty_member_joins_by_sst() -> None:
    nodes = [*powerloss()[:2], GaleraNode("ctl3", has_data=False)]
    decision = decide_galera(nodes)
    assert decision.action is Action.BOOTSTRAP and "ctl3" in decision.joiners
    assert {v.name: v.source for v in decision.nodes}["ctl3"] == "empty"


def test_interrupted_state_transfer_is_empty() -> None:
    node = GaleraNode("ctl3", grastate=Grastate(ZERO_UUID, -1, False),
                      recovered=Position(ZERO_UUID, -1))
    decision = decide_galera([*powerloss()[:2], node])
    assert decision.action is Action.BOOTSTRAP and "ctl3" in decision.joiners


# --- Galera: refusals ---------------------------------------------------------------------


def test_refuses_when_nodes_disagree_on_the_cluster_uuid_even_forced() -> None:
    nodes = powerloss()
    nodes[2] = GaleraNode("ctl3", grastate=parse_grastate(text("other-cluster-grastate.dat")),
                          recovered=parse_wsrep_recover(text("other-cluster-wsrep-recover.log")))
    assert nodes[2].position() == Position(OTHER, 351)
    for force in (False, True):
        decision = decide_galera(nodes, force=force)
        assert decision.action is Action.REFUSE
        assert "disagree on the cluster uuid" in decision.refusals[0]
        assert decision.chosen is None


def test_refuses_when_grastate_and_recover_disagree_on_uuid() -> None:
    nodes = powerloss()
    nodes[0] = replace(nodes[0], grastate=Grastate(OTHER, -1, False))
    assert decide_galera(nodes).action is Action.REFUSE


def test_refuses_when_no_position_is_known() -> None:
    locked = parse_wsrep_recover(text("failed-wsrep-recover-locked.log"))
    nodes = [replace(n, recovered=locked, recover_error="Failed to initialize plugins.")
             for n in powerloss()]
    decision = decide_galera(nodes, force=True)
    assert decision.action is Action.REFUSE
    assert "no available member has a known position" in decision.refusals[0]
    assert "Failed to initialize plugins" in decision.refusals[0]


def test_refuses_when_an_unknown_position_might_be_ahead() -> None:
    nodes = powerloss()
    nodes[2] = replace(nodes[2], recovered=None, recover_error="Failed to initialize plugins.")
    decision = decide_galera(nodes)
    assert decision.action is Action.REFUSE
    assert "ctl3: position unknown" in decision.refusals[0]
    assert "might be the most advanced" in decision.refusals[0]


def test_force_overrides_an_unknown_position_loudly() -> None:
    nodes = powerloss()
    nodes[2] = replace(nodes[2], recovered=None, recover_error="Failed to initialize plugins.")
    decision = decide_galera(nodes, force=True)
    assert decision.action is Action.BOOTSTRAP and decision.forced
    assert decision.chosen == "ctl1" and "ctl3" in decision.joiners
    assert decision.warnings[0].startswith("FORCED: bootstrapping ctl1 although ctl3")
    assert any("LOST" in w for w in decision.warnings)


def test_unknown_position_outside_the_last_view_cannot_be_ahead() -> None:
    """ctl3's own gvwstate is an older view the survivors' newer view excludes."""
    nodes = stale()
    nodes[2] = GaleraNode("ctl3", grastate=Grastate(CLUSTER, -1, False),
                          gvwstate=parse_gvwstate(text("running-ctl3-gvwstate.dat")),
                          recover_error="Failed to initialize plugins.")
    decision = decide_galera(nodes)
    assert decision.action is Action.BOOTSTRAP and not decision.forced
    assert any("not in the last primary view" in r for r in decision.reasons)


# --- Galera: 2 of 3 members back ------------------------------------------------------------


def test_two_of_three_back_missing_member_left_earlier() -> None:
    nodes = [crashed("stale", "ctl1"), crashed("stale", "ctl2"),
             GaleraNode("ctl3", available=False, has_data=False)]
    decision = decide_galera(nodes)
    assert decision.action is Action.BOOTSTRAP
    assert decision.chosen == "ctl1" and decision.joiners == ("ctl2",)
    assert any("ctl3: data unreachable" in r and "not in the last primary view" in r
               for r in decision.reasons)
    assert {v.name: v.role for v in decision.nodes}["ctl3"] == "left-out"


def test_two_of_three_back_missing_member_was_in_the_last_view() -> None:
    nodes = [*powerloss()[:2], GaleraNode("ctl3", available=False, has_data=False)]
    decision = decide_galera(nodes)
    assert decision.action is Action.REFUSE
    assert "ctl3: data unreachable" in decision.refusals[0]
    assert "includes a member none of the examined nodes are" in decision.refusals[0]


def test_two_of_three_back_forced() -> None:
    nodes = [*powerloss()[:2], GaleraNode("ctl3", available=False, has_data=False)]
    decision = decide_galera(nodes, force=True)
    assert decision.action is Action.BOOTSTRAP and decision.forced
    assert decision.joiners == ("ctl2",)
    assert any("FORCED" in w for w in decision.warnings)


def test_two_of_three_back_missing_member_readable_and_behind() -> None:
    """Its disk was read elsewhere: a clean shutdown at an older seqno cannot be ahead."""
    nodes = [*powerloss()[:2], replace(stale_ctl3(), available=False)]
    decision = decide_galera(nodes)
    assert decision.action is Action.BOOTSTRAP and decision.chosen == "ctl1"
    assert any("last known seqno 45 is not ahead of 69" in r for r in decision.reasons)


def test_two_of_three_back_missing_member_readable_and_ahead() -> None:
    nodes = [*stale()[:2], GaleraNode("ctl3", available=False,
                                      grastate=Grastate(CLUSTER, 90, True))]
    decision = decide_galera(nodes)
    assert decision.action is Action.REFUSE
    assert "AHEAD of 66" in decision.refusals[0]


def test_missing_member_and_no_view_to_prove_anything() -> None:
    nodes = [GaleraNode("ctl1", grastate=Grastate(CLUSTER, 52, True)),
             GaleraNode("ctl2", grastate=Grastate(CLUSTER, 52, False)),
             GaleraNode("ctl3", available=False, has_data=False)]
    decision = decide_galera(nodes)
    assert decision.action is Action.REFUSE
    assert "no survivor has a gvwstate.dat" in decision.refusals[0]


# --- the explanation ------------------------------------------------------------------------


def test_explain_says_what_and_why() -> None:
    nodes = stale()
    nodes[2] = stale_ctl3(safe_to_bootstrap=True)
    lines = explain(decide_galera(nodes), decide_rabbitmq(rabbit_stale()))
    assert lines[0] == f"Galera: bootstrap from ctl1 at {CLUSTER}:66"
    assert any("stale" in line for line in lines)
    assert any(line.startswith("RabbitMQ: start ctl1, ctl2, ctl3") for line in lines)


def test_explain_refusal_and_decision_json() -> None:
    decision = decide_galera([*powerloss()[:2], GaleraNode("ctl3", available=False)])
    assert any(line.startswith("  REFUSED: ctl3") for line in explain(decision))
    data = decision.to_json()
    assert data["action"] == "refuse" and data["position"] is None


# --- RabbitMQ --------------------------------------------------------------------------------


def rabbit(name: str, seen: tuple[str, ...], **kw: bool) -> RabbitNode:
    return RabbitNode(name, f"rabbit@{name}", running_at_shutdown=tuple(
        f"rabbit@{n}" for n in seen), **kw)


def rabbit_stale() -> list[RabbitNode]:
    """As recorded: ctl3 stopped first (saw all three), ctl1/ctl2 lost power together."""
    return [rabbit("ctl1", ("ctl1", "ctl2")), rabbit("ctl2", ("ctl1", "ctl2")),
            rabbit("ctl3", ("ctl1", "ctl2", "ctl3"))]


def test_rabbit_all_running_nothing_to_do() -> None:
    plan = decide_rabbitmq([rabbit(n, (), running=True) for n in ("ctl1", "ctl2")])
    assert plan.first == () and plan.then == ()


def test_rabbit_a_running_member_others_rejoin() -> None:
    plan = decide_rabbitmq([rabbit("ctl1", (), running=True), rabbit("ctl2", ("ctl2",))])
    assert plan.first == ("ctl2",) and plan.force_boot is None


def test_rabbit_no_data_seeds_a_new_cluster() -> None:
    plan = decide_rabbitmq([rabbit(n, (), has_data=False) for n in ("ctl1", "ctl2", "ctl3")])
    assert plan.first == ("ctl1",) and plan.then == ("ctl2", "ctl3")


def test_rabbit_power_loss_starts_everyone_together() -> None:
    plan = decide_rabbitmq(rabbit_stale())
    assert plan.first == ("ctl1", "ctl2", "ctl3") and plan.force_boot is None
    assert any("last to stop: ctl1, ctl2" in r for r in plan.reasons)


def test_rabbit_without_records_starts_everyone() -> None:
    plan = decide_rabbitmq([rabbit(n, ()) for n in ("ctl1", "ctl2")])
    assert plan.first == ("ctl1", "ctl2") and plan.force_boot is None


def test_rabbit_last_to_stop_gone_force_boots_with_a_warning() -> None:
    nodes = [rabbit("ctl1", ("ctl1", "ctl2", "ctl3")), rabbit("ctl2", ("ctl2", "ctl3")),
             RabbitNode("ctl3", "rabbit@ctl3", available=False)]
    plan = decide_rabbitmq(nodes)
    assert plan.force_boot == "ctl2" and plan.first == ("ctl1", "ctl2")
    assert plan.warnings and "ctl3" in plan.warnings[0]


def test_rabbit_member_that_left_early_gone_force_boots_quietly() -> None:
    nodes = [*rabbit_stale()[:2], RabbitNode("ctl3", "rabbit@ctl3", available=False)]
    plan = decide_rabbitmq(nodes)
    assert plan.force_boot == "ctl1" and plan.warnings == ()


@pytest.mark.parametrize("prefix", ["powerloss", "stale"])
def test_every_fixture_parses(prefix: str) -> None:
    for path in FIXTURES.glob(f"{prefix}-*"):
        content = path.read_text()
        if path.name.endswith("-wsrep-recover.log"):
            assert parse_wsrep_recover(content) is not None
        elif "gvwstate" in path.name:
            assert parse_gvwstate(content) is not None
        else:
            assert parse_grastate(content).uuid == CLUSTER
