"""HAProxy renderer: every rendered haproxy.cfg passes `haproxy -c`, and it does what a cloud
operator relies on (VIP binds, budget timings, one Galera writer without failback)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile, haproxy
from hastack.render.budget import make_budget
from hastack.render.secrets import complete
from tests.conftest import EXAMPLE_NAMES, example_plan, plan_from_text, require_program

DEMO = (Path(__file__).resolve().parent.parent / "hastack" / "examples" / "demo.yaml").read_text()


def render(plan: Plan) -> list[RenderedFile]:
    """Only this renderer, so other systems' renderers cannot break these tests."""
    ctx = RenderContext(plan, make_budget(plan.cloud), complete({}, haproxy.secrets_needed(plan)))
    return haproxy.render(ctx)


def sections(content: str) -> dict[str, list[str]]:
    """'listen keystone' -> its directive lines, without comments or blank lines."""
    result: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in content.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line[0].isspace():
            current = result.setdefault(line, [])
        else:
            current.append(line.strip())
    return result


def servers(lines: list[str]) -> list[list[str]]:
    return [line.split() for line in lines if line.startswith("server ")]


def run_haproxy_check(path: Path) -> subprocess.CompletedProcess[str]:
    # -dW: zero-warning mode, a warning fails the check as an error would.
    return subprocess.run([require_program("haproxy"), "-c", "-dW", "-f", str(path)],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def demo_files() -> list[RenderedFile]:
    return render(example_plan("demo"))


@pytest.mark.validator
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_haproxy_accepts_every_rendered_config(name: str, tmp_path: Path) -> None:
    files = render(example_plan(name))
    assert files
    for f in files:
        path = tmp_path / f.node / "haproxy.cfg"
        path.parent.mkdir()
        path.write_text(str(f.content))
        result = run_haproxy_check(path)
        assert result.returncode == 0, f"{name}/{f.node}: {result.stdout}{result.stderr}"


@pytest.mark.validator
def test_haproxy_check_rejects_a_corrupted_config(demo_files: list[RenderedFile],
                                                  tmp_path: Path) -> None:
    content = str(demo_files[0].content).replace("stick on dst", "stick on dst_nonsense")
    assert content != demo_files[0].content
    path = tmp_path / "haproxy.cfg"
    path.write_text(content)
    result = run_haproxy_check(path)
    assert result.returncode != 0
    assert "dst_nonsense" in result.stdout + result.stderr


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_one_file_per_haproxy_node(name: str) -> None:
    plan = example_plan(name)
    files = render(plan)
    assert [(f.node, f.path) for f in files] == [
        (node, "etc/haproxy/haproxy.cfg") for node in plan.nodes_running("haproxy")
    ]


def test_rendering_is_deterministic() -> None:
    assert render(example_plan("demo")) == render(example_plan("demo"))


def test_galera_has_one_writer_and_never_fails_back(demo_files: list[RenderedFile]) -> None:
    galera = sections(str(demo_files[0].content))["listen galera"]
    assert "mode tcp" in galera
    assert "stick-table type ip size 1 nopurge" in galera
    assert "stick on dst" in galera
    assert "option httpchk GET /" in galera
    rows = servers(galera)
    writers = [row for row in rows if "backup" not in row]
    assert [row[1] for row in writers] == ["ctl1"]
    assert len(rows) == 3
    for row in rows:
        line = " ".join(row)
        assert "check port 9200" in line
        assert "on-marked-down shutdown-sessions" in line
    # DB connections are pooled for long: longer idle timeouts than the API defaults
    assert "timeout client 90m" in galera and "timeout server 90m" in galera


def test_galera_writer_follows_the_plan_on_split_roles() -> None:
    plan = example_plan("split-roles")
    galera = sections(str(render(plan)[0].content))["listen galera"]
    frontend = next(f for f in plan.frontends if f.single_writer)
    assert [row[1] for row in servers(galera) if "backup" not in row] == [frontend.backends[0]]
    assert [row[2] for row in servers(galera)] == [
        f"{plan.cloud.node(n).ip}:3306" for n in frontend.backends
    ]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_frontend_binds_each_of_its_vips(name: str) -> None:
    plan = example_plan(name)
    vips = dict(plan.cloud.vips.items())
    for f in render(plan):
        parsed = sections(str(f.content))
        for frontend in plan.frontends:
            section = parsed[f"listen {frontend.name}"]
            binds = [line for line in section if line.startswith("bind ")]
            assert binds == [f"bind {vips[v]}:{frontend.port}" for v in frontend.vips]
            assert "internal" in frontend.vips


def test_api_frontends_bind_both_vips_when_there_is_a_public_one(
        demo_files: list[RenderedFile]) -> None:
    keystone = sections(str(demo_files[0].content))["listen keystone"]
    assert "bind 198.18.0.100:5000" in keystone and "bind 198.18.0.101:5000" in keystone


@pytest.mark.parametrize("target", [2.0, 5.0, 12.0])
def test_inter_times_fall_equals_the_budget(target: float) -> None:
    failover = f"  failover: {{target_seconds: {target}}}"
    text = DEMO.replace("  monitoring: {enabled: true}",
                        "  monitoring: {enabled: true}\n" + failover)
    plan = plan_from_text(text)
    budget = make_budget(plan.cloud)
    content = str(render(plan)[0].content)
    rows = [row for lines in sections(content).values() for row in servers(lines)]
    assert rows
    for row in rows:
        inter = int(row[row.index("inter") + 1].removesuffix("ms"))
        fall = int(row[row.index("fall") + 1])
        rise = int(row[row.index("rise") + 1])
        assert inter * fall == budget.haproxy_down_s * 1000
        assert (inter, fall, rise) == (budget.haproxy_inter_ms, budget.haproxy_fall,
                                       budget.haproxy_rise)
    assert f"timeout connect {budget.haproxy_connect_timeout_ms}ms" in content


def test_checks_follow_the_catalog(demo_files: list[RenderedFile]) -> None:
    parsed = sections(str(demo_files[0].content))
    assert "option httpchk GET /v3" in parsed["listen keystone"]
    assert "option httpchk GET /healthcheck" in parsed["listen glance-api"]
    # glance-registry has a TCP check: no HTTP check directives at all
    assert not [line for line in parsed["listen glance-registry"] if "httpchk" in line]


def test_back_ends_are_node_ips_on_the_process_port(demo_files: list[RenderedFile]) -> None:
    nova_metadata = sections(str(demo_files[0].content))["listen nova-metadata"]
    assert [row[1:3] for row in servers(nova_metadata)] == [
        ["ctl1", "198.18.0.11:8775"], ["ctl2", "198.18.0.12:8775"], ["ctl3", "198.18.0.13:8775"]
    ]


def test_admin_interface_is_only_a_root_socket(demo_files: list[RenderedFile]) -> None:
    content = str(demo_files[0].content)
    glob = sections(content)["global"]
    assert "stats socket /run/haproxy/admin.sock mode 600 level admin" in glob
    assert "pidfile /run/haproxy.pid" in glob
    assert "stats uri" not in content and "stats enable" not in content
    assert haproxy.secrets_needed(example_plan("demo")) == []
