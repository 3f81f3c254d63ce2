"""`hastack import configs DIR` on files hastack itself renders (the demo cloud, one
directory per host), each mutated the way a hand-kept cloud drifts: every problem gives a
finding at the mutated file and line, and the unmutated files give none of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hastack.errors import ImportFileError
from hastack.importers import Imported
from hastack.importers.configs import import_configs
from hastack.model import load_cloud
from tests.conftest import example_cloud, render_example, write_rendered

ENV = {**os.environ, "COLUMNS": "200"}
HAPROXY = "etc/haproxy/haproxy.cfg"
KEEPALIVED = "etc/keepalived/keepalived.conf"
NEUTRON = "etc/neutron/neutron.conf"
NOVA = "etc/nova/nova.conf"
KEYSTONE = "etc/keystone/keystone.conf"


@pytest.fixture(scope="module")
def rendered_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rendered(render_example("demo"), tmp_path_factory.mktemp("rendered"))


@pytest.fixture
def collected(rendered_demo: Path, tmp_path: Path) -> Path:
    """A fresh copy of the rendered demo, as if collected from its three hosts."""
    target = tmp_path / "collected"
    subprocess.run(["cp", "-a", str(rendered_demo), str(target)], check=True)
    return target


def mutate(path: Path, old: str, new: str, count: int = 1) -> int:
    """Replace text in a file; the 1-based line the (first) change lands on."""
    text = path.read_text()
    assert text.count(old) >= count, f"{old!r} not in {path}"
    at = text.index(old)
    path.write_text(text.replace(old, new, count))
    return text[:at].count("\n") + 1 + old[:len(old) - len(old.lstrip("\n"))].count("\n")


def line_of(path: Path, text: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


def findings(imported: Imported, rule: str) -> list[tuple[str, int | None, str]]:
    return [(f.origin.file, f.origin.line, f.finding.severity) for f in imported.findings
            if f.finding.rule == rule]


def rules_of(imported: Imported) -> set[str]:
    return {f.finding.rule for f in imported.findings}


# --- the unmutated files ----------------------------------------------------------------------

def test_rendered_demo_imports_as_the_cloud_it_was_rendered_from(collected: Path) -> None:
    imported = import_configs(collected)
    demo = example_cloud("demo")
    assert [n.name for n in imported.cloud.nodes] == ["cmp1", "ctl1", "ctl2", "ctl3"]
    assert {n.name: n.ip for n in imported.cloud.nodes} == {n.name: n.ip for n in demo.nodes}
    assert imported.cloud.vips == demo.vips
    assert set(imported.cloud.services) <= set(demo.services)
    assert imported.cloud.settings.neutron == demo.settings.neutron
    assert imported.cloud.settings.galera.writers == 1
    assert imported.cloud.settings.rabbitmq.queues == "quorum"
    assert not imported.has_errors(), [str(f) for f in imported.findings]
    # Every finding names a file under the directory and a line in it.
    for f in imported.findings:
        assert f.origin.file.startswith(str(collected)) and f.origin.line, str(f)


# --- Galera behind HAProxy --------------------------------------------------------------------

def test_mysql_check_on_the_galera_back_end(collected: Path) -> None:
    haproxy = collected / "ctl1" / HAPROXY
    line = mutate(haproxy, "    option httpchk GET /\n    http-check expect status 200-399\n"
                           "    option tcpka\n    timeout client 90m",
                  "    option mysql-check user haproxy\n    timeout client 90m")
    imported = import_configs(collected)
    assert findings(imported, "galera-backend-check") == [(str(haproxy), line, "error")]
    assert imported.has_errors()


def test_a_bare_tcp_check_on_the_galera_back_end(collected: Path) -> None:
    haproxy = collected / "ctl2" / HAPROXY
    mutate(haproxy, "    option httpchk GET /\n    http-check expect status 200-399\n"
                    "    option tcpka\n    timeout client 90m", "    timeout client 90m")
    first_server = line_of(haproxy, "server ctl1 198.18.0.11:3306")
    assert findings(import_configs(collected), "galera-backend-check") == [
        (str(haproxy), first_server, "error")]


def test_an_http_checked_galera_back_end_passes(collected: Path) -> None:
    assert findings(import_configs(collected), "galera-backend-check") == []


def test_more_than_one_active_galera_server(collected: Path) -> None:
    haproxy = collected / "ctl3" / HAPROXY
    mutate(haproxy, "server ctl2 198.18.0.12:3306 backup check",
           "server ctl2 198.18.0.12:3306 check")
    imported = import_configs(collected)
    assert imported.cloud.settings.galera.writers == 2
    assert findings(imported, "galera-multiple-writers") == [
        (str(haproxy), line_of(haproxy, "server ctl2 198.18.0.12:3306"), "error")]


def test_one_active_galera_server_passes(collected: Path) -> None:
    assert findings(import_configs(collected), "galera-multiple-writers") == []


# --- HAProxy check timings ------------------------------------------------------------------

def test_slow_inter_fall_rise(collected: Path) -> None:
    haproxy = collected / "ctl1" / HAPROXY
    text = haproxy.read_text()
    haproxy.write_text(text.replace("server ctl1 198.18.0.11:5000 check inter 500ms fall 2 rise 3",
                                    "server ctl1 198.18.0.11:5000 check inter 2000 rise 2 fall 5"))
    imported = import_configs(collected)
    slow = [f for f in imported.findings if f.finding.rule == "haproxy-slow-checks"]
    assert [(f.origin.file, f.origin.line, f.finding.subject) for f in slow] == [
        (str(haproxy), line_of(haproxy, "server ctl1 198.18.0.11:5000"), "keystone")]
    assert "10 s" in slow[0].finding.message
    # Judged against the failover target: a 20 s target accepts 10 s.
    assert findings(import_configs(collected, target_s=20), "haproxy-slow-checks") == []


def test_unset_check_timings_are_haproxys_defaults(collected: Path) -> None:
    haproxy = collected / "ctl1" / HAPROXY
    mutate(haproxy, "server ctl2 198.18.0.12:9292 check inter 500ms fall 2 rise 3",
           "server ctl2 198.18.0.12:9292 check")
    slow, = [f for f in import_configs(collected).findings
             if f.finding.rule == "haproxy-slow-checks"]
    assert slow.origin.line == line_of(haproxy, "server ctl2 198.18.0.12:9292")
    assert "6 s" in slow.finding.message and "not set" in slow.finding.message


def test_fast_checks_pass(collected: Path) -> None:
    assert findings(import_configs(collected), "haproxy-slow-checks") == []


# --- keepalived -------------------------------------------------------------------------------

def test_vrrp_without_nopreempt(collected: Path) -> None:
    keepalived = collected / "ctl2" / KEEPALIVED
    mutate(keepalived, "    nopreempt\n", "")
    instance = line_of(keepalived, "vrrp_instance demo-internal")
    assert findings(import_configs(collected), "vrrp-preempt") == [
        (str(keepalived), instance, "warning")]


def test_nopreempt_with_state_master_is_ignored_by_keepalived(collected: Path) -> None:
    keepalived = collected / "ctl3" / KEEPALIVED
    mutate(keepalived, "    state BACKUP\n", "    state MASTER\n")
    instance = line_of(keepalived, "vrrp_instance demo-internal")
    found = [f for f in import_configs(collected).findings if f.finding.rule == "vrrp-preempt"]
    assert [(f.origin.file, f.origin.line) for f in found] == [(str(keepalived), instance)]
    assert "ignored with state MASTER" in found[0].finding.message


def test_vrrp_with_nopreempt_passes(collected: Path) -> None:
    assert findings(import_configs(collected), "vrrp-preempt") == []


def test_vrid_clash_on_one_segment(collected: Path) -> None:
    # The public VIP's instance takes the internal one's VRID on every node.
    for node in ("ctl1", "ctl2", "ctl3"):
        mutate(collected / node / KEEPALIVED, "virtual_router_id 17", "virtual_router_id 188")
    imported = import_configs(collected)
    clashes = [f for f in imported.findings if f.finding.rule == "vrrp-vrid-clash"]
    assert clashes and all(f.finding.severity == "error" for f in clashes)
    ctl1 = collected / "ctl1" / KEEPALIVED
    second = [i for i, line in enumerate(ctl1.read_text().splitlines(), start=1)
              if "virtual_router_id 188" in line][1]
    assert (str(ctl1), second) in [(f.origin.file, f.origin.line) for f in clashes]


def test_kolla_default_vrid_51(collected: Path) -> None:
    keepalived = collected / "ctl1" / KEEPALIVED
    line = mutate(keepalived, "virtual_router_id 17", "virtual_router_id 51")
    kolla = [f for f in import_configs(collected).findings
             if f.finding.rule == "vrrp-vrid-clash"]
    assert [(f.origin.file, f.origin.line, f.finding.severity) for f in kolla] == [
        (str(keepalived), line, "warning")]
    assert "Kolla-Ansible" in kolla[0].finding.message


def test_distinct_vrids_pass(collected: Path) -> None:
    assert findings(import_configs(collected), "vrrp-vrid-clash") == []


# --- OpenStack clients ------------------------------------------------------------------------

def test_transport_url_naming_one_rabbitmq_node(collected: Path) -> None:
    nova = collected / "ctl2" / NOVA
    text = nova.read_text()
    url = next(line for line in text.splitlines() if line.startswith("transport_url"))
    single = url.split(",")[0] + "/"
    nova.write_text(text.replace(url, single))
    found = [f for f in import_configs(collected).findings
             if f.finding.rule == "transport-url-single-node"]
    assert [(f.origin.file, f.origin.line) for f in found] == [
        (str(nova), line_of(nova, "transport_url"))]
    assert "3-node cluster" in found[0].finding.message


def test_transport_urls_listing_every_node_pass(collected: Path) -> None:
    assert findings(import_configs(collected), "transport-url-single-node") == []


def test_memcached_list_missing_a_node(collected: Path) -> None:
    neutron = collected / "ctl1" / NEUTRON
    line = mutate(neutron, "memcached_servers = 198.18.0.11:11211,198.18.0.12:11211,"
                           "198.18.0.13:11211",
                  "memcached_servers = 198.18.0.11:11211,198.18.0.12:11211")
    missing = [f for f in import_configs(collected).findings
               if f.finding.rule == "memcached-list-incomplete"]
    assert [(f.origin.file, f.origin.line) for f in missing] == [(str(neutron), line)]
    assert "198.18.0.13:11211" in missing[0].finding.message


def test_full_memcached_lists_pass(collected: Path) -> None:
    assert findings(import_configs(collected), "memcached-list-incomplete") == []


def test_oslo_cache_timeouts_that_stall_clients(collected: Path) -> None:
    keystone = collected / "ctl3" / KEYSTONE
    timeout = mutate(keystone, "memcache_socket_timeout = 0.5", "memcache_socket_timeout = 3")
    mutate(keystone, "backend = dogpile.cache.pymemcache", "backend = oslo_cache.memcache_pool")
    text = keystone.read_text()
    keystone.write_text(text.replace("hashclient_dead_timeout = 40",
                                     "hashclient_dead_timeout = 40\nmemcache_dead_retry = 5"))
    nova = collected / "ctl1" / NOVA
    pool_timeout = line_of(nova, "memcache_pool_socket_timeout = 1")
    mutate(nova, "memcache_pool_socket_timeout = 1\n", "")
    stalls = {(f.origin.file, f.origin.line) for f in import_configs(collected).findings
              if f.finding.rule == "memcached-client-stall"}
    assert stalls == {
        (str(keystone), timeout),
        (str(keystone), line_of(keystone, "memcache_dead_retry = 5")),
        # Unset: keystonemiddleware's default 3 s, at the section it belongs in.
        (str(nova), line_of(nova, "[keystone_authtoken]")),
    }
    assert pool_timeout > line_of(nova, "[keystone_authtoken]")


def test_short_cache_timeouts_pass(collected: Path) -> None:
    assert findings(import_configs(collected), "memcached-client-stall") == []


# --- Neutron agents ---------------------------------------------------------------------------

def test_one_dhcp_agent_per_network(collected: Path) -> None:
    neutron = collected / "ctl2" / NEUTRON
    line = mutate(neutron, "dhcp_agents_per_network = 2", "dhcp_agents_per_network = 1")
    imported = import_configs(collected)
    assert findings(imported, "dhcp-agents-per-network") == [(str(neutron), line, "error")]
    fix, = [f.finding.fix for f in imported.findings
            if f.finding.rule == "dhcp-agents-per-network"]
    assert "neutron.conf" in fix


def test_unset_dhcp_agents_per_network_is_neutrons_default(collected: Path) -> None:
    for node in ("ctl1", "ctl2", "ctl3"):
        mutate(collected / node / NEUTRON, "dhcp_agents_per_network = 2\n", "")
    found = findings(import_configs(collected), "dhcp-agents-per-network")
    assert len(found) == 1 and found[0][1] == line_of(collected / "ctl1" / NEUTRON,
                                                      "[DEFAULT]")


def test_two_dhcp_agents_pass(collected: Path) -> None:
    assert findings(import_configs(collected), "dhcp-agents-per-network") == []


def test_l3_ha_false(collected: Path) -> None:
    neutron = collected / "ctl1" / NEUTRON
    line = mutate(neutron, "l3_ha = true", "l3_ha = False")
    assert findings(import_configs(collected), "l3-ha") == [(str(neutron), line, "error")]


def test_l3_ha_true_passes(collected: Path) -> None:
    assert findings(import_configs(collected), "l3-ha") == []


# --- malformed input and the command line ---------------------------------------------------

def test_a_malformed_file_is_refused_at_its_line(collected: Path) -> None:
    keepalived = collected / "ctl1" / KEEPALIVED
    keepalived.write_text(keepalived.read_text() + "vrrp_instance broken {\n")
    with pytest.raises(ImportFileError) as exc:
        import_configs(collected)
    problem = exc.value.problems[0]
    assert (problem.file, problem.line) == (str(keepalived),
                                            line_of(keepalived, "vrrp_instance broken"))


def run_import(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hastack.cli", "import", *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=60)


def test_command_line_prints_file_line_findings_and_writes_the_model(
        collected: Path, tmp_path: Path) -> None:
    neutron = collected / "ctl1" / NEUTRON
    line = mutate(neutron, "l3_ha = true", "l3_ha = false")
    cloud_file = tmp_path / "cloud.yaml"
    result = run_import("configs", collected, "-o", cloud_file)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{neutron}:{line}: error l3-ha neutron-l3-agent:" in result.stdout
    written = load_cloud(cloud_file)
    assert written.settings.neutron.l3_ha is False
    assert f"# from {neutron}:{line}" in cloud_file.read_text()


def test_command_line_exit_codes(collected: Path, tmp_path: Path) -> None:
    clean = run_import("configs", collected, "--format", "json")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    report = json.loads(clean.stdout)
    assert report["findings"] and all(f["file"].startswith(str(collected)) and f["line"]
                                      for f in report["findings"])
    assert "monitoring-required" in report["not_judged"]
    (collected / "ctl1" / HAPROXY).write_text("  maxconn 10\n")
    broken = run_import("configs", collected)
    assert broken.returncode == 2
    assert f"{collected / 'ctl1' / HAPROXY}:1:" in broken.stderr




def test_kolla_ansibles_split_haproxy_configuration(collected: Path) -> None:
    """Kolla-Ansible keeps each service's HAProxy section in haproxy/services.d/*.cfg."""
    haproxy = collected / "ctl1" / HAPROXY
    text = haproxy.read_text()
    start = text.index("# galera (mariadb-galera)")
    end = text.index("# keystone on")
    services = haproxy.parent / "services.d"
    services.mkdir()
    fragment = services / "mariadb.cfg"
    fragment.write_text(text[start:end].replace("    option httpchk GET /\n",
                                                "    option mysql-check user haproxy\n"))
    haproxy.write_text(text[:start] + text[end:])
    assert findings(import_configs(collected), "galera-backend-check") == [
        (str(fragment), line_of(fragment, "option mysql-check"), "error")]
