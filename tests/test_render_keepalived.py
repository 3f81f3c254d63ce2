"""keepalived renderer: every rendered keepalived.conf passes `keepalived --config-test`, and
the VRRP design holds (distinct VRIDs, decreasing priorities, no self-peering, no preemption)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hastack.plan import Plan, vrrp
from hastack.render import RenderContext, RenderedFile, keepalived
from hastack.render.budget import make_budget
from hastack.render.secrets import complete
from tests.conftest import EXAMPLE_NAMES, example_plan, plan_from_text, require_program

DEMO = (Path(__file__).resolve().parent.parent / "hastack" / "examples" / "demo.yaml").read_text()

# The demo nodes' interface: the cloud file's default.
INTERFACE = "eth0"
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "hastack" / "examples"


def demo_with(settings: str = "", name: str = "demo") -> Plan:
    text = DEMO.replace("name: demo", f"name: {name}")
    return plan_from_text(text.replace("  monitoring: {enabled: true}",
                                       "  monitoring: {enabled: true}\n" + settings))


def render_all(plan: Plan) -> list[RenderedFile]:
    """Only this renderer, so other systems' renderers cannot break these tests."""
    secrets = complete({}, keepalived.secrets_needed(plan))
    return keepalived.render(RenderContext(plan, make_budget(plan.cloud), secrets))


def render(plan: Plan) -> list[RenderedFile]:
    """Every node's keepalived.conf."""
    return [f for f in render_all(plan) if f.path == keepalived.CONFIG_PATH]


@dataclass
class Block:
    """One keepalived statement: its words and, for `name {`, the statements inside."""

    words: list[str]
    children: list[Block] = field(default_factory=list)

    def all(self, key: str) -> list[Block]:
        return [c for c in self.children if c.words[0] == key]

    def one(self, key: str) -> Block:
        (found,) = self.all(key)
        return found

    def value(self, key: str) -> str:
        return self.one(key).words[1]

    def has(self, key: str) -> bool:
        return bool(self.all(key))


def parse(content: str) -> Block:
    stack = [Block(["<root>"])]
    for raw in content.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if words == ["}"]:
            stack.pop()
            continue
        block = Block([w for w in words if w != "{"])
        stack[-1].children.append(block)
        if words[-1] == "{":
            stack.append(block)
    assert len(stack) == 1, "unbalanced braces"
    return stack[0]


def instances(f: RenderedFile) -> dict[str, Block]:
    return {b.words[1]: b for b in parse(str(f.content)).all("vrrp_instance")}


def run_keepalived_check(path: Path) -> subprocess.CompletedProcess[str]:
    """`keepalived --config-test`; it insists the interface exists, so where the host has no
    eth0 the check runs in a scratch network namespace that has one."""
    command = [require_program("keepalived"), "--config-test", "-f", str(path)]
    if not Path(f"/sys/class/net/{INTERFACE}").exists():
        if os.geteuid() != 0:
            pytest.fail(f"no {INTERFACE} here and not root to make one")
        # veth, not dummy: the dummy module is not loaded on every host
        setup = (f"{require_program('ip')} link add {INTERFACE} type veth "
                 "peer name hs-peer")
        command = [require_program("unshare"), "--net", "sh", "-c", f'{setup} && exec "$@"',
                   "sh", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def check_all(files: list[RenderedFile], tmp_path: Path) -> None:
    assert files
    for f in files:
        path = tmp_path / f.node / "keepalived.conf"
        path.parent.mkdir(parents=True)
        path.write_text(str(f.content))
        result = run_keepalived_check(path)
        assert result.returncode == 0, f"{f.node}: {result.stdout}{result.stderr}"


@pytest.mark.validator
@pytest.mark.parametrize("name", [n for n in EXAMPLE_NAMES if n != "pacemaker"])
def test_keepalived_accepts_every_rendered_config(name: str, tmp_path: Path) -> None:
    check_all(render(example_plan(name)), tmp_path)


@pytest.mark.validator
@pytest.mark.parametrize("settings", [
    "  keepalived: {mode: multicast}",
    "  failover: {target_seconds: 10}",   # whole-second adverts: VRRPv2 with authentication
    "  failover: {target_seconds: 10}\n  keepalived: {mode: multicast}",
])
def test_keepalived_accepts_the_other_modes(settings: str, tmp_path: Path) -> None:
    check_all(render(demo_with(settings)), tmp_path)


@pytest.mark.validator
def test_keepalived_check_rejects_a_corrupted_config(tmp_path: Path) -> None:
    content = str(render(example_plan("demo"))[0].content)
    broken = content.replace("    advert_int", "    advert_intervall", 1)
    assert broken != content
    path = tmp_path / "keepalived.conf"
    path.write_text(broken)
    result = run_keepalived_check(path)
    assert result.returncode != 0
    assert "advert_intervall" in result.stdout + result.stderr


def test_pacemaker_example_renders_no_keepalived() -> None:
    plan = example_plan("pacemaker")
    assert render(plan) == []
    assert keepalived.secrets_needed(plan) == []


@pytest.mark.parametrize("name", ["demo", "split-roles"])
def test_one_root_only_file_per_load_balancer(name: str) -> None:
    plan = example_plan(name)
    files = render(plan)
    assert [(f.node, f.path, f.mode) for f in files] == [
        (node, "etc/keepalived/keepalived.conf", 0o600) for node in plan.nodes_running("keepalived")
    ]


def test_vrids_differ_between_the_vips_of_a_cloud() -> None:
    for f in render(example_plan("demo")):
        ids = [int(b.value("virtual_router_id")) for b in instances(f).values()]
        assert len(ids) == 2 and len(set(ids)) == 2
        assert all(1 <= i <= 255 for i in ids)


def test_vrids_differ_between_two_clouds_and_are_stable() -> None:
    def vrids(plan: Plan) -> list[int]:
        return [int(b.value("virtual_router_id")) for b in instances(render(plan)[0]).values()]

    first, second = vrids(demo_with(name="alpha")), vrids(demo_with(name="bravo"))
    assert not set(first) & set(second)
    assert vrids(demo_with(name="alpha")) == first


def test_vrid_collision_inside_a_cloud_takes_the_next_id() -> None:
    # Find a cloud name whose two VIP names hash to the same raw id, then check they differ.
    def raw(cloud: str, vip: str) -> int:
        return vrrp.virtual_router_ids(cloud, [vip])[vip]

    names = (f"c{i}" for i in range(10_000))
    cloud = next(n for n in names if raw(n, "internal") == raw(n, "public"))
    ids = vrrp.virtual_router_ids(cloud, ["internal", "public"])
    assert ids["internal"] != ids["public"]
    assert ids["public"] == ids["internal"] % 255 + 1


def test_priorities_strictly_decrease_in_candidate_order() -> None:
    plan = example_plan("demo")
    files = {f.node: f for f in render(plan)}
    for vip in plan.vips:
        name = f"{plan.cloud.name}-{vip.name}"
        prios = [int(instances(files[node])[name].value("priority")) for node in vip.candidates]
        assert prios == sorted(prios, reverse=True) and len(set(prios)) == len(prios)
        assert all(1 <= p <= 254 for p in prios)
    many = keepalived.priorities(tuple(f"n{i}" for i in range(40)))
    assert list(many.values()) == sorted(many.values(), reverse=True)
    assert len(set(many.values())) == 40 and min(many.values()) >= 1


@pytest.mark.parametrize("name", ["demo", "split-roles"])
def test_unicast_peers_are_the_other_candidates(name: str) -> None:
    plan = example_plan(name)
    for f in render(plan):
        own = str(plan.cloud.node(f.node).ip)
        for instance in instances(f).values():
            peers = [b.words[0] for b in instance.one("unicast_peer").children]
            assert own not in peers
            vip = next(v for v in plan.vips if str(v.address) in
                       instance.one("virtual_ipaddress").children[0].words[0])
            assert peers == [str(plan.cloud.node(n).ip) for n in vip.candidates if n != f.node]
            assert instance.value("unicast_src_ip") == own


def test_multicast_mode_has_no_unicast_settings() -> None:
    for f in render(demo_with("  keepalived: {mode: multicast}")):
        assert "unicast" not in str(f.content)
        for instance in instances(f).values():
            assert not instance.has("unicast_peer") and not instance.has("unicast_src_ip")


def test_every_node_starts_backup_without_preemption() -> None:
    plan = example_plan("demo")
    for f in render(plan):
        for instance in instances(f).values():
            assert instance.value("state") == "BACKUP"
            assert instance.has("nopreempt")
            assert instance.value("interface") == plan.cloud.node(f.node).interface == INTERFACE


def test_the_vips_of_a_node_move_together_in_one_sync_group() -> None:
    for f in render(example_plan("demo")):
        root = parse(f.content)
        (group,) = root.all("vrrp_sync_group")
        members = {b.words[0] for b in group.one("group").children}
        assert members == set(instances(f)) and len(members) == 2


def test_vrrp_speaks_on_the_interface_each_node_declares() -> None:
    text = (EXAMPLES_DIR / "demo.yaml").read_text().replace(
        "address: 198.18.0.12,", "address: 198.18.0.12, interface: ens3,", 1)
    assert "interface: ens3" in text
    plan = plan_from_text(text)
    for f in render(plan):
        expected = "ens3" if f.node == "ctl2" else "eth0"
        assert {i.value("interface") for i in instances(f).values()} == {expected}
        assert f" dev {expected}" in str(f.content)


def test_vip_uses_the_node_prefix() -> None:
    plan = plan_from_text(DEMO.replace("198.18.0.11,", "198.18.0.11/25,")
                          .replace("198.18.0.12,", "198.18.0.12/25,")
                          .replace("198.18.0.13,", "198.18.0.13/25,"))
    for f in render(plan):
        for instance in instances(f).values():
            assert instance.one("virtual_ipaddress").children[0].words[1:] == ["dev", "eth0"]
            assert instance.one("virtual_ipaddress").children[0].words[0].endswith("/25")


def test_fast_budget_uses_vrrp3_without_authentication() -> None:
    plan = example_plan("demo")
    budget = make_budget(plan.cloud)
    assert budget.vrrp_advert_s < 1
    assert keepalived.secrets_needed(plan) == []
    for f in render(plan):
        root = parse(str(f.content))
        assert root.one("global_defs").value("vrrp_version") == "3"
        for instance in instances(f).values():
            assert float(instance.value("advert_int")) == budget.vrrp_advert_s
            assert not instance.has("authentication")


def test_whole_second_budget_uses_vrrp2_with_the_generated_password() -> None:
    plan = demo_with("  failover: {target_seconds: 10}")
    (spec,) = keepalived.secrets_needed(plan)
    assert spec.kind == "vrrp"
    secrets = complete({}, [spec])
    files = keepalived.render(RenderContext(plan, make_budget(plan.cloud), secrets))
    for f in (f for f in files if f.path == keepalived.CONFIG_PATH):
        assert parse(str(f.content)).one("global_defs").value("vrrp_version") == "2"
        for instance in instances(f).values():
            auth = instance.one("authentication")
            assert auth.value("auth_type") == "PASS"
            assert auth.value("auth_pass") == secrets[spec.name]
            assert instance.value("advert_int") == "1"


def test_haproxy_death_releases_the_vip_within_the_budget() -> None:
    plan = demo_with("  failover: {target_seconds: 6}")
    budget = make_budget(plan.cloud)
    for f in render(plan):
        root = parse(str(f.content))
        script = root.one("vrrp_script")
        assert int(script.value("interval")) == budget.vrrp_track_interval_s
        assert int(script.value("fall")) == budget.vrrp_track_fall
        assert script.value("weight") == "0"   # FAULT, not a lower priority (nopreempt)
        for instance in instances(f).values():
            assert [b.words[0] for b in instance.one("track_script").children] == [
                script.words[1]
            ]


def test_vrrp_is_accepted_only_from_the_peers_of_each_node() -> None:
    plan = example_plan("demo")
    ctx = RenderContext(plan, make_budget(plan.cloud),
                        complete({}, keepalived.secrets_needed(plan)))
    for node in plan.nodes_running("keepalived"):
        text = keepalived.vrrp_filter(ctx, node)
        peers = [str(plan.cloud.node(n).ip) for n in plan.nodes_running("keepalived")
                 if n != node]
        assert f"ip saddr {{ {', '.join(peers)} }} accept" in text
        assert str(plan.cloud.node(node).ip) not in text.split("accept")[0].split("{ ")[-1]
        assert "ip protocol vrrp jump vrrp" in text and text.rstrip().endswith("}")


@pytest.mark.validator
@pytest.mark.parametrize("name", [n for n in EXAMPLE_NAMES
                                  if example_plan(n).runs("keepalived")])
def test_nft_accepts_the_rendered_vrrp_filter_and_rejects_a_broken_one(
        name: str, tmp_path: Path) -> None:
    nft, unshare = require_program("nft"), require_program("unshare")
    if os.geteuid() != 0:
        pytest.skip("nft -c needs root (a private network namespace)")
    plan = example_plan(name)
    files = [f for f in render_all(plan) if f.path == keepalived.VRRP_FILTER]
    assert len(files) == len(plan.nodes_running("keepalived"))
    for f in files:
        path = tmp_path / f"{f.node}.nft"
        path.write_text(str(f.content))
        # Twice into one namespace: the file replaces its own table.
        script = f'"$0" -f "$1" && "$0" -f "$1" && "$0" list table inet {keepalived.VRRP_TABLE}'
        done = subprocess.run([unshare, "--net", "sh", "-c", script, nft, str(path)],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("ip protocol vrrp jump vrrp") == 1, done.stdout
    broken = tmp_path / "broken.nft"
    broken.write_text(str(files[0].content).replace("drop\n", "dropp\n"))
    rejected = subprocess.run([unshare, "--net", nft, "-c", "-f", str(broken)],
                              capture_output=True, text=True, timeout=30)
    assert rejected.returncode != 0 and "dropp" in rejected.stderr
