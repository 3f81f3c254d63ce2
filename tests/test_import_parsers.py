"""The grammars `hastack import` reads existing files with: every fact keeps its line, and
every malformed file is refused at its line. Fed hand-written snippets of each grammar's
corners, files hastack renders, and Kolla-Ansible's own multinode inventory."""

from __future__ import annotations

import pytest

from hastack.errors import ImportFileError
from hastack.importers.parsers import (
    haproxy_time_ms,
    parse_haproxy,
    parse_inventory,
    parse_keepalived,
    parse_mysql_options,
    parse_oslo_ini,
    parse_rabbitmq_conf,
    split_words,
)
from tests.conftest import render_example
from tests.kolla_files import kolla_share


def rendered(node: str, path: str) -> str:
    for f in render_example("demo"):
        if f.node == node and str(f.path) == path:
            assert isinstance(f.content, str)
            return f.content
    raise AssertionError(f"demo renders no {node}:{path}")


def refused_at(exc: pytest.ExceptionInfo[ImportFileError]) -> tuple[str, int | None]:
    problem = exc.value.problems[0]
    return problem.file, problem.line


# --- words ---------------------------------------------------------------------------------

def test_words_honour_quotes_escapes_and_comments() -> None:
    assert split_words('script "/usr/bin/pgrep -x haproxy"  # why') == [
        "script", "/usr/bin/pgrep -x haproxy"]
    assert split_words(r"errorfile 503 /a\ b 'c # d'") == ["errorfile", "503", "/a b", "c # d"]
    assert split_words("  # only a comment") == []
    assert split_words("vrid 51 ! keepalived comment", comment_chars="#!") == ["vrid", "51"]


# --- HAProxy -------------------------------------------------------------------------------

HAPROXY = """\
global
    maxconn 4096   # inline comment

defaults
    mode http
    default-server inter 3s fall 4

listen galera
    bind 10.0.0.100:3306
    option mysql-check user haproxy
    server db1 10.0.0.11:3306 check
    server db2 10.0.0.12:3306 check backup
"""


def test_haproxy_sections_directives_and_lines() -> None:
    config = parse_haproxy(HAPROXY, "haproxy.cfg")
    assert [(s.kind, s.name, s.line) for s in config.sections] == [
        ("global", "", 1), ("defaults", "", 4), ("listen", "galera", 8)]
    (galera, defaults), = config.proxies()
    assert galera.name == "galera" and defaults is not None and defaults.line == 4
    servers = list(galera.find("server"))
    assert [(s.words[1], s.line) for s in servers] == [("db1", 11), ("db2", 12)]
    assert next(galera.find("option", "mysql-check")).line == 10
    assert config.sections[0].directives[0].words == ("maxconn", "4096")


def test_haproxy_refuses_a_keyword_outside_sections_and_an_unnamed_backend() -> None:
    with pytest.raises(ImportFileError) as exc:
        parse_haproxy("# header\n\n  maxconn 10\n", "h.cfg")
    assert refused_at(exc) == ("h.cfg", 3)
    with pytest.raises(ImportFileError) as exc:
        parse_haproxy("global\nbackend\n  server a 1.2.3.4:80\n", "h.cfg")
    assert refused_at(exc) == ("h.cfg", 2)


def test_haproxy_times() -> None:
    assert haproxy_time_ms("2000") == 2000
    assert haproxy_time_ms("2s") == 2000
    assert haproxy_time_ms("500ms") == 500
    assert haproxy_time_ms("1m") == 60_000
    with pytest.raises(ValueError):
        haproxy_time_ms("fast")


def test_haproxy_reads_the_file_hastack_renders() -> None:
    config = parse_haproxy(rendered("ctl1", "etc/haproxy/haproxy.cfg"), "haproxy.cfg")
    names = [s.name for s, _ in config.proxies()]
    assert names[:2] == ["galera", "keystone"]
    galera = next(s for s, _ in config.proxies() if s.name == "galera")
    assert [d.words[1] for d in galera.find("server")] == ["ctl1", "ctl2", "ctl3"]
    assert any(d.words[:2] == ("option", "httpchk") for d in galera.directives)


# --- keepalived ----------------------------------------------------------------------------

KEEPALIVED = """\
global_defs {
    router_id lb1
}
vrrp_instance VI_1 {   # the internal VIP
    state BACKUP
    virtual_router_id 51
    virtual_ipaddress { 10.0.0.100/24 dev eth0 }
    unicast_peer
    {
        10.0.0.12
    }
}
"""


def test_keepalived_blocks_nest_on_one_line_or_the_next() -> None:
    config = parse_keepalived(KEEPALIVED, "keepalived.conf")
    instance, = config.root.all("vrrp_instance")
    assert instance.words == ("vrrp_instance", "VI_1") and instance.line == 4
    vrid = instance.child("virtual_router_id")
    assert vrid is not None and vrid.words[1] == "51" and vrid.line == 6
    vips = instance.child("virtual_ipaddress")
    assert vips is not None and [c.words for c in vips.children] == [
        ("10.0.0.100/24", "dev", "eth0")]
    peers = instance.child("unicast_peer")
    assert peers is not None and peers.is_block and peers.children[0].words == ("10.0.0.12",)
    assert peers.children[0].line == 10


def test_keepalived_refuses_unbalanced_braces_at_their_line() -> None:
    with pytest.raises(ImportFileError) as exc:
        parse_keepalived("vrrp_instance A {\n  state BACKUP\n", "k.conf")
    assert refused_at(exc) == ("k.conf", 1)
    with pytest.raises(ImportFileError) as exc:
        parse_keepalived("global_defs {\n}\n}\n", "k.conf")
    assert refused_at(exc) == ("k.conf", 3)


def test_keepalived_reads_the_file_hastack_renders() -> None:
    config = parse_keepalived(rendered("ctl1", "etc/keepalived/keepalived.conf"), "k.conf")
    instances = config.root.all("vrrp_instance")
    assert [i.words[1] for i in instances] == ["demo-internal", "demo-public"]
    assert all(i.child("nopreempt") is not None for i in instances)


# --- INI -----------------------------------------------------------------------------------

def test_oslo_ini_keeps_the_first_line_of_a_continued_value() -> None:
    ini = parse_oslo_ini("[DEFAULT]\n# c\nl3_ha = False\nhosts = a,\n  b\n\n[cache]\n"
                         "enabled=true\n", "neutron.conf")
    l3_ha = ini.get("DEFAULT", "l3_ha")
    assert l3_ha is not None and (l3_ha.value, l3_ha.line) == ("False", 3)
    hosts = ini.get("DEFAULT", "hosts")
    assert hosts is not None and (hosts.value, hosts.line) == ("a,\nb", 4)
    assert ini.section_lines == {"DEFAULT": 1, "cache": 7}


def test_oslo_ini_refuses_an_option_outside_a_section() -> None:
    with pytest.raises(ImportFileError) as exc:
        parse_oslo_ini("\nl3_ha = true\n", "neutron.conf")
    assert refused_at(exc) == ("neutron.conf", 2)
    with pytest.raises(ImportFileError) as exc:
        parse_oslo_ini("[DEFAULT\n", "neutron.conf")
    assert refused_at(exc) == ("neutron.conf", 1)


def test_mysql_option_files() -> None:
    cnf = parse_mysql_options(
        "!includedir /etc/mysql/conf.d/\n[mysqld]\nskip-name-resolve\n"
        "loose-wsrep-on = ON\nwsrep_cluster_address = \"gcomm://a,b,c\"  # quoted\n"
        "bind-address = 10.0.0.11 # trailing\n", "my.cnf")
    assert cnf.get("mysqld", "skip_name_resolve") is not None
    wsrep_on = cnf.get("mysqld", "wsrep_on")
    assert wsrep_on is not None and (wsrep_on.value, wsrep_on.line) == ("ON", 4)
    address = cnf.get("mysqld", "wsrep_cluster_address")
    assert address is not None and address.value == "gcomm://a,b,c"
    bind = cnf.get("mysqld", "bind_address")
    assert bind is not None and bind.value == "10.0.0.11"
    with pytest.raises(ImportFileError) as exc:
        parse_mysql_options("wsrep_on = ON\n", "my.cnf")
    assert refused_at(exc) == ("my.cnf", 1)


def test_rabbitmq_conf() -> None:
    conf = parse_rabbitmq_conf(rendered("ctl1", "etc/rabbitmq/rabbitmq.conf"), "rabbitmq.conf")
    nodes = conf.matching(r"cluster_formation\.classic_config\.nodes\.\d+")
    assert [v.value for _, v in nodes] == ["rabbit@ctl1", "rabbit@ctl2", "rabbit@ctl3"]
    with pytest.raises(ImportFileError) as exc:
        parse_rabbitmq_conf("# ok\nnot a setting\n", "rabbitmq.conf")
    assert refused_at(exc) == ("rabbitmq.conf", 2)


# --- Ansible inventory ---------------------------------------------------------------------

def test_inventory_ranges_children_and_variables() -> None:
    inventory = parse_inventory(
        "[control]\ncontrol[01:03] ansible_user=kolla\n[network]\nnet1 ansible_host=10.0.0.21\n"
        "[loadbalancer:children]\nnetwork\n[all:vars]\nx=1\n", "multinode")
    assert [h.name for h in inventory.hosts_of("control")] == [
        "control01", "control02", "control03"]
    net1, = inventory.hosts_of("loadbalancer")
    assert net1.variables == {"ansible_host": "10.0.0.21"} and net1.line == 4
    assert inventory.group_lines["loadbalancer"] == 5
    with pytest.raises(ImportFileError) as exc:
        parse_inventory("[control]\nhost1 badvar\n", "multinode")
    assert refused_at(exc) == ("multinode", 2)


def test_inventory_reads_kolla_ansibles_multinode_sample() -> None:
    path = kolla_share() / "ansible" / "inventory" / "multinode"
    inventory = parse_inventory(path.read_text(), str(path))
    assert [h.name for h in inventory.hosts_of("mariadb")] == [
        "control01", "control02", "control03"]
    assert [h.name for h in inventory.hosts_of("loadbalancer")] == ["network01", "network02"]
    assert "compute01" in [h.name for h in inventory.hosts_of("openvswitch")]
