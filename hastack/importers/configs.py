"""`hastack import configs DIR`: the files collected from an existing cloud's hosts, one
sub-directory per host (DIR/ctl1/etc/haproxy/haproxy.cfg, ... — `hastack render` writes
the same layout), turned into CloudFacts.

Each host's role comes from what it runs (haproxy.cfg or keepalived.conf: a load balancer;
a Galera my.cnf: a database node; rabbitmq.conf: messaging; L3/DHCP agent files: network;
keystone.conf or an API's database: a controller; nova.conf with a virt driver only:
compute); its address from the files that bind to it. Files are found by name anywhere
under the host's directory.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from hastack.errors import ImportFileError, Problem
from hastack.importers import (
    Backend,
    CloudFacts,
    Imported,
    NodeFact,
    Server,
    ServerList,
    Setting,
    VrrpInstance,
    finish,
    upstream_default,
    upstream_source,
)
from hastack.importers.parsers import (
    HaproxyConfig,
    HaproxySection,
    IniFile,
    KeepalivedConfig,
    KeepalivedNode,
    KeyValueFile,
    Origin,
    haproxy_time_ms,
    parse_haproxy,
    parse_keepalived,
    parse_mysql_options,
    parse_oslo_ini,
    parse_rabbitmq_conf,
    read_text,
    server_options,
)
from hastack.model.cloud import CLOUD_NAME_PATTERN, NODE_NAME_PATTERN, SERVICES

# File name -> the OpenStack service whose configuration it is.
SERVICE_FILES: dict[str, str] = {
    "keystone.conf": "keystone", "glance-api.conf": "glance", "nova.conf": "nova",
    "neutron.conf": "neutron", "cinder.conf": "cinder", "heat.conf": "heat",
    "ceilometer.conf": "ceilometer", "proxy-server.conf": "swift", "trove.conf": "trove",
    "sahara.conf": "sahara", "local_settings.py": "horizon", "local_settings": "horizon",
}
MYSQL_FILES = ("my.cnf", "galera.cnf", "server.cnf", "mariadb.cnf", "50-server.cnf",
               "60-galera.cnf", "wsrep.cnf")
NEUTRON_AGENT_FILES = ("l3_agent.ini", "dhcp_agent.ini")
GALERA_GROUPS = ("galera", "mysqld", "mariadb", "mariadbd", "server", "mysqld_safe")
GALERA_PORT = 3306
# The linter's fixes in the files' own terms.
CONFIG_FIXES = {
    "dhcp-agents-per-network": "dhcp_agents_per_network = 2 in [DEFAULT] of every "
                               "neutron-server's neutron.conf",
    "l3-ha": "l3_ha = true (and max_l3_agents_per_router = 3) in [DEFAULT] of every "
             "neutron-server's neutron.conf",
    "galera-multiple-writers": "mark every Galera server but one `backup` in each HAProxy "
                               "back end (and `stick on dst` with peers so all agree)",
    "quorum-too-small": "run the cluster on at least 3 hosts (an odd number)",
    "rabbitmq-mirrored-queues": "rabbit_quorum_queue = true in [oslo_messaging_rabbit] "
                                "(and drop rabbit_ha_queues)",
}


@dataclass
class _Host:
    name: str
    directory: Path
    files: dict[str, list[Path]] = field(default_factory=dict)
    haproxy: HaproxyConfig | None = None
    keepalived: KeepalivedConfig | None = None
    mysql: list[IniFile] = field(default_factory=list)
    rabbitmq: KeyValueFile | None = None
    # Every copy of every OpenStack file (Kolla-Ansible keeps one per container, e.g.
    # /etc/kolla/neutron-server/neutron.conf and /etc/kolla/neutron-l3-agent/neutron.conf).
    oslo: list[tuple[str, IniFile]] = field(default_factory=list)

    def oslo_file(self, name: str) -> IniFile | None:
        return next((ini for file_name, ini in self.oslo if file_name == name), None)

    def has_file(self, name: str) -> bool:
        return self.oslo_file(name) is not None
    memcached: Path | None = None
    address: tuple[ipaddress.IPv4Interface, Origin] | None = None
    interface: str = "eth0"
    roles: list[str] = field(default_factory=list)


def import_configs(directory: Path, name: str | None = None,
                   target_s: float = 2.0) -> Imported:
    return finish(read_configs(directory, name, target_s))


def read_configs(directory: Path, name: str | None = None, target_s: float = 2.0) -> CloudFacts:
    if not directory.is_dir():
        raise ImportFileError([Problem(str(directory), None, "", "not a directory (expected "
                                       "one sub-directory per host)")])
    hosts = [_read_host(d) for d in sorted(directory.iterdir()) if d.is_dir()
             and not d.name.startswith(".")]
    hosts = [h for h in hosts if h.files]
    if not hosts:
        raise ImportFileError([Problem(str(directory), None, "", "no host sub-directory holds "
                                       "a file hastack reads (haproxy.cfg, keepalived.conf, "
                                       "my.cnf, rabbitmq.conf, neutron.conf, ...)")])
    facts = CloudFacts(_cloud_name(name or directory.resolve().name, directory),
                       Origin(str(directory)), failover_target_s=target_s,
                       fixes=dict(CONFIG_FIXES))
    for host in hosts:
        _addresses(host)
    by_address = {str(h.address[0].ip): h.name for h in hosts if h.address}
    for host in hosts:
        _roles(host)
        _services(host, facts)
        if host.address is None:
            facts.note(Origin(str(host.directory)), f"{host.name}: no file names its address; "
                                                    "left out of the model")
            continue
        if not host.roles:
            facts.note(Origin(str(host.directory)), f"{host.name}: runs nothing hastack models; "
                                                    "left out of the model")
            continue
        address, origin = host.address
        facts.nodes.append(NodeFact(host.name, address, tuple(host.roles), host.interface,
                                    origin))
        facts.origins[f"node.{host.name}"] = origin
    for host in hosts:
        _keepalived_facts(host, facts)
        _haproxy_facts(host, facts, by_address)
        _galera_facts(host, facts)
        _rabbitmq_facts(host, facts)
        _memcached_facts(host, facts)
        _oslo_facts(host, facts)
    _vips(facts, hosts)
    return facts


def _cloud_name(raw: str, directory: Path) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")[:16].strip("-")
    if not re.match(CLOUD_NAME_PATTERN, name):
        name = "imported"
    return name


def _read_host(directory: Path) -> _Host:
    name = directory.name.lower()
    if not re.match(NODE_NAME_PATTERN, name):
        raise ImportFileError([Problem(str(directory), None, "", f"'{directory.name}' is not "
                                       "a usable node name (lower case letters, digits and "
                                       "'-', starting with a letter)")])
    host = _Host(name, directory)
    wanted = {"haproxy.cfg", "keepalived.conf", "rabbitmq.conf", "memcached.conf",
              *MYSQL_FILES, *SERVICE_FILES, *NEUTRON_AGENT_FILES}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name in wanted:
            host.files.setdefault(path.name, []).append(path)
    haproxy_files = host.files.get("haproxy.cfg", [])[:1]
    if haproxy_files:
        # Kolla-Ansible splits its HAProxy configuration: haproxy.cfg and services.d/*.cfg.
        fragments = sorted((haproxy_files[0].parent / "services.d").glob("*.cfg"))
        parsed = [parse_haproxy(read_text(p), str(p)) for p in [haproxy_files[0], *fragments]]
        host.haproxy = HaproxyConfig(parsed[0].file,
                                     tuple(s for c in parsed for s in c.sections))
    for path in host.files.get("keepalived.conf", [])[:1]:
        host.keepalived = parse_keepalived(read_text(path), str(path))
    for file_name in MYSQL_FILES:
        for path in host.files.get(file_name, []):
            host.mysql.append(parse_mysql_options(read_text(path), str(path)))
    for path in host.files.get("rabbitmq.conf", [])[:1]:
        host.rabbitmq = parse_rabbitmq_conf(read_text(path), str(path))
    for file_name in (*SERVICE_FILES, *NEUTRON_AGENT_FILES):
        if file_name.endswith((".conf", ".ini")):
            for path in host.files.get(file_name, []):
                host.oslo.append((file_name, parse_oslo_ini(read_text(path), str(path))))
    host.memcached = next(iter(host.files.get("memcached.conf", [])), None)
    return host


# --- the host: its address, roles and services --------------------------------------------------

def _addresses(host: _Host) -> None:
    """The host's own address: the first file that binds to or announces from it."""
    candidates: list[tuple[str, Origin]] = []
    for mysql in host.mysql:
        for group in GALERA_GROUPS:
            for key in ("wsrep_node_address", "bind_address"):
                value = mysql.get(group, key)
                if value:
                    candidates.append((value.value.split(":")[0], Origin(mysql.file, value.line)))
    if host.keepalived:
        for instance in host.keepalived.root.all("vrrp_instance"):
            src = instance.child("unicast_src_ip")
            if src and len(src.words) > 1:
                candidates.append((src.words[1], Origin(host.keepalived.file, src.line)))
            interface = instance.child("interface")
            if interface and len(interface.words) > 1:
                host.interface = interface.words[1]
    if host.rabbitmq:
        listener = host.rabbitmq.values.get("listeners.tcp.default")
        if listener and ":" in listener.value:
            candidates.append((listener.value.rsplit(":", 1)[0],
                               Origin(host.rabbitmq.file, listener.line)))
    for _, ini in host.oslo:
        for key in ("bind_host", "my_ip", "local_ip"):
            value = ini.get("DEFAULT", key)
            if value:
                candidates.append((value.value, Origin(ini.file, value.line)))
    if host.memcached:
        for number, line in enumerate(read_text(host.memcached).splitlines(), start=1):
            match = re.match(r"\s*-l\s+([0-9.]+)", line)
            if match:
                candidates.append((match.group(1), Origin(str(host.memcached), number)))
    for text, origin in candidates:
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        if address.is_loopback or address.is_unspecified:
            continue
        host.address = (ipaddress.IPv4Interface(f"{address}/24"), origin)
        return


def _is_galera(mysql: Iterable[IniFile]) -> bool:
    return any(m.get(g, "wsrep_cluster_address") or m.get(g, "wsrep_on")
               for m in mysql for g in GALERA_GROUPS)


def _roles(host: _Host) -> None:
    roles: list[str] = []
    nova = host.oslo_file("nova.conf")
    controller = host.has_file("keystone.conf") or any(
        ini.get("database", "connection") for name, ini in host.oslo
        if name != "nova.conf") or bool(nova and nova.get("api_database", "connection"))
    if controller:
        roles.append("controller")
    if host.haproxy or host.keepalived:
        roles.append("loadbalancer")
    if _is_galera(host.mysql):
        roles.append("database")
    if host.rabbitmq:
        roles.append("messaging")
    if any(host.has_file(name) for name in NEUTRON_AGENT_FILES):
        roles.append("network")
    if nova and not controller and (nova.get("DEFAULT", "compute_driver") or "libvirt"
                                    in nova.sections):
        roles.append("compute")
    host.roles = roles


def _services(host: _Host, facts: CloudFacts) -> None:
    for file_name, service in SERVICE_FILES.items():
        if service in SERVICES and file_name in host.files and service not in facts.services:
            facts.services[service] = Origin(str(host.files[file_name][0]))


# --- keepalived ---------------------------------------------------------------------------------

def _keepalived_facts(host: _Host, facts: CloudFacts) -> None:
    config = host.keepalived
    if config is None:
        return
    unicast = False
    for instance in config.root.all("vrrp_instance"):
        origin = Origin(config.file, instance.line)
        name = instance.words[1] if len(instance.words) > 1 else "?"
        vrid_node = instance.child("virtual_router_id")
        if vrid_node is None or len(vrid_node.words) < 2 or not vrid_node.words[1].isdigit():
            raise ImportFileError([Problem(config.file, instance.line, name,
                                           "vrrp_instance without a numeric virtual_router_id")])
        state = instance.child("state")
        interface = instance.child("interface")
        unicast = unicast or instance.child("unicast_peer") is not None
        facts.vrrp.append(VrrpInstance(
            name=name, node=host.name,
            interface=interface.words[1] if interface and len(interface.words) > 1 else "",
            vrid=int(vrid_node.words[1]),
            state=(state.words[1].upper() if state and len(state.words) > 1 else "BACKUP"),
            nopreempt=instance.child("nopreempt") is not None,
            vips=tuple(_vip_addresses(instance.child("virtual_ipaddress"))),
            origin=origin, vrid_origin=Origin(config.file, vrid_node.line),
        ))
        facts.origins.setdefault("cluster.keepalived", origin)
    if config.root.all("vrrp_instance"):
        mode = "unicast" if unicast else "multicast"
        if "settings.keepalived.mode" not in facts.settings or mode == "multicast":
            facts.set("settings.keepalived.mode", mode,
                      Origin(config.file, config.root.all("vrrp_instance")[0].line))


def _vip_addresses(block: KeepalivedNode | None) -> Iterable[ipaddress.IPv4Interface]:
    if block is None:
        return
    for entry in block.children:
        try:
            address = entry.words[0]
            yield ipaddress.IPv4Interface(address if "/" in address else f"{address}/32")
        except (ValueError, IndexError):
            continue


def _vips(facts: CloudFacts, hosts: list[_Host]) -> None:
    """The VIPs keepalived moves (else HAProxy binds on no node's address); internal is the
    one services reach the database or Keystone through."""
    found: dict[ipaddress.IPv4Address, Origin] = {}
    for v in facts.vrrp:
        for vip in v.vips:
            found.setdefault(vip.ip, v.origin)
    node_addresses = {n.address.ip for n in facts.nodes}
    if not found:
        for host in hosts:
            if host.haproxy is None:
                continue
            for section in host.haproxy.sections:
                for bind in section.find("bind"):
                    text = bind.words[1].rsplit(":", 1)[0] if len(bind.words) > 1 else ""
                    try:
                        address = ipaddress.IPv4Address(text)
                    except ValueError:
                        continue
                    if address not in node_addresses and not address.is_unspecified:
                        found.setdefault(address, Origin(host.haproxy.file, bind.line))
    if not found:
        raise ImportFileError([Problem(facts.source.file, None, "", "no VIP found: no "
                                       "keepalived.conf virtual_ipaddress and no HAProxy bind "
                                       "on an address that is not a host's")])
    used_by_clients: set[str] = set()
    for host in hosts:
        for _, ini in host.oslo:
            for group, key in (("database", "connection"), ("keystone_authtoken", "auth_url")):
                url = ini.get(group, key)
                if url:
                    used_by_clients.add(urlsplit(url.value).hostname or "")
    ordered = sorted(found, key=lambda a: (str(a) not in used_by_clients, list(found).index(a)))
    facts.vips["internal"] = (ordered[0], found[ordered[0]])
    if len(ordered) > 1:
        facts.vips["public"] = (ordered[1], found[ordered[1]])
    for extra in ordered[2:]:
        facts.note(found[extra], f"VIP {extra} is neither the internal nor the public VIP; "
                                 "the model keeps two")
    # Nodes on the VIP's subnet take its prefix, so the model sees one segment.
    vip_networks = [v.network for v in (vip for i in facts.vrrp for vip in i.vips)
                    if v.network.prefixlen < 32]
    for index, node in enumerate(facts.nodes):
        for network in vip_networks:
            if node.address.ip in network:
                facts.nodes[index] = NodeFact(
                    node.name, ipaddress.IPv4Interface(f"{node.address.ip}/{network.prefixlen}"),
                    node.roles, node.interface, node.origin)
                break


# --- HAProxy ------------------------------------------------------------------------------------

def _haproxy_facts(host: _Host, facts: CloudFacts, by_address: dict[str, str]) -> None:
    config = host.haproxy
    if config is None:
        return
    galera_writers: list[Origin] = []
    for section, defaults in config.proxies():
        backend = _backend(section, defaults)
        if backend is None:
            continue
        facts.backends.append(backend)
        if backend.galera:
            active = [s for s in backend.servers if not s.backup]
            if len(active) > len(galera_writers):
                galera_writers = [s.origin for s in active]
    if galera_writers:
        origin = galera_writers[1] if len(galera_writers) > 1 else galera_writers[0]
        current = facts.settings.get("settings.galera.writers", (0, origin))[0]
        if len(galera_writers) >= current:
            facts.set("settings.galera.writers", len(galera_writers), origin)


def _backend(section: HaproxySection,
             defaults: HaproxySection | None) -> Backend | None:
    servers_lines = list(section.find("server"))
    if not servers_lines:
        return None
    default_server = server_options(
        [w for d in (defaults.find("default-server") if defaults else ()) for w in d.words[1:]]
        + [w for d in section.find("default-server") for w in d.words[1:]])
    check, check_origin = "tcp", Origin(section.file, servers_lines[0].line)
    for scope in (defaults, section):
        if scope is None:
            continue
        for d in scope.directives:
            if d.keyword == "option" and len(d.words) > 1 and d.words[1] in (
                    "httpchk", "mysql-check", "pgsql-check", "redis-check", "ssl-hello-chk",
                    "smtpchk", "ldap-check", "tcp-check", "external-check"):
                check, check_origin = d.words[1], Origin(scope.file, d.line)
            elif d.keyword == "no" and d.words[1:3] == ("option", check):
                check, check_origin = "tcp", Origin(scope.file, d.line)
    servers = []
    haproxy_defaults = upstream_source("haproxy")
    for d in servers_lines:
        if len(d.words) < 3:
            raise ImportFileError([Problem(section.file, d.line, section.name,
                                           "server needs a name and an address")])
        params = {**default_server, **server_options(list(d.words[3:]))}
        host, _, port = d.words[2].rpartition(":") if ":" in d.words[2] else (d.words[2], "", "")
        unset = [k for k in ("inter", "fall", "rise") if k not in params]
        try:
            inter = haproxy_time_ms(params.get("inter", str(upstream_default("haproxy",
                                                                            "inter_ms"))))
            fall = int(params.get("fall", upstream_default("haproxy", "fall")))
            rise = int(params.get("rise", upstream_default("haproxy", "rise")))
        except ValueError as exc:
            raise ImportFileError([Problem(section.file, d.line, section.name, str(exc))]) \
                from None
        servers.append(Server(
            name=d.words[1], address=host, port=int(port) if port.isdigit() else None,
            backup="backup" in params, checked="check" in params,
            inter_ms=inter, fall=fall, rise=rise, origin=Origin(section.file, d.line),
            timing_from_default=(f"{', '.join(unset)} not set: {haproxy_defaults}"
                                 if unset else ""),
        ))
    galera = _serves_galera(section, servers)
    return Backend(section.name, Origin(section.file, section.line), check, check_origin,
                   tuple(servers), galera)


def _serves_galera(section: HaproxySection, servers: list[Server]) -> bool:
    if any(word in section.name.lower() for word in ("galera", "mariadb", "mysql")):
        return True
    return bool(servers) and all(s.port == GALERA_PORT for s in servers)


# --- Galera, RabbitMQ, memcached --------------------------------------------------------------

def _galera_facts(host: _Host, facts: CloudFacts) -> None:
    for mysql in host.mysql:
        for group in GALERA_GROUPS:
            value = mysql.get(group, "wsrep_cluster_address")
            if value is not None:
                facts.origins.setdefault("cluster.galera", Origin(mysql.file, value.line))
            sst = mysql.get(group, "wsrep_sst_method")
            if sst is not None and sst.value in ("mariabackup", "rsync"):
                facts.set("settings.galera.sst_method", sst.value, Origin(mysql.file, sst.line))


def _rabbitmq_facts(host: _Host, facts: CloudFacts) -> None:
    config = host.rabbitmq
    if config is None:
        return
    nodes = config.matching(r"cluster_formation\.classic_config\.nodes\.\d+")
    for _, value in nodes:
        facts.rabbitmq_nodes.setdefault(value.value.split("@")[-1], Origin(config.file,
                                                                           value.line))
    facts.rabbitmq_nodes.setdefault(host.name, Origin(config.file, 1))
    first = nodes[0][1].line if nodes else 1
    facts.origins.setdefault("cluster.rabbitmq", Origin(config.file, first))
    handling = config.values.get("cluster_partition_handling")
    if handling is not None and handling.value in ("pause_minority", "autoheal", "ignore"):
        facts.set("settings.rabbitmq.partition_handling", handling.value,
                  Origin(config.file, handling.line))


def _memcached_facts(host: _Host, facts: CloudFacts) -> None:
    if host.memcached is None:
        return
    address, port, line = None, "11211", 1
    for number, text in enumerate(read_text(host.memcached).splitlines(), start=1):
        listen = re.match(r"\s*-l\s+(\S+)", text)
        if listen:
            address, line = listen.group(1).split(",")[0], number
        port_match = re.match(r"\s*-p\s+(\d+)", text)
        if port_match:
            port = port_match.group(1)
    if address is None and host.address:
        address = str(host.address[0].ip)
    if address:
        facts.memcached_instances.setdefault(f"{address}:{port}",
                                             Origin(str(host.memcached), line))
    facts.origins.setdefault("cluster.memcached", Origin(str(host.memcached), line))


# --- OpenStack services (oslo.config files) -------------------------------------------------------

def _oslo_facts(host: _Host, facts: CloudFacts) -> None:
    for file_name, ini in host.oslo:
        for section in ("DEFAULT", "oslo_messaging_notifications"):
            url = ini.get(section, "transport_url")
            if url is not None:
                facts.transport_urls.append(ServerList(
                    f"{file_name} [{section}] transport_url", tuple(_url_hosts(url.value)),
                    Origin(ini.file, url.line)))
        _cache_facts(file_name, ini, facts)
        _rabbit_queue_facts(ini, facts)
        if file_name == "neutron.conf":
            _neutron_facts(ini, facts)


def _url_hosts(url: str) -> list[str]:
    """The hosts of an oslo.messaging URL, rabbit://u:p@h1:5672,u:p@h2:5672/vhost."""
    _, _, rest = url.partition("://")
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    return [part.rpartition("@")[2] for part in netloc.split(",") if part]


def _cache_facts(file_name: str, ini: IniFile, facts: CloudFacts) -> None:
    cache = ini.sections.get("cache")
    enabled = ini.get("cache", "enabled")
    if cache is not None and enabled is not None and enabled.value.lower() == "true":
        cache_servers = ini.get("cache", "memcache_servers")
        if cache_servers is not None:
            facts.memcached_lists.append(ServerList(
                f"{file_name} [cache] memcache_servers", _split_list(cache_servers.value),
                Origin(ini.file, cache_servers.line)))
        header = Origin(ini.file, ini.section_lines["cache"])
        timeout = _setting(ini, "cache", ("socket_timeout", "memcache_socket_timeout"),
                           "oslo.cache", "socket_timeout", header)
        dead = None
        backend = ini.get("cache", "backend")
        # pymemcache's HashClient skips dead servers by its own hashclient_* options.
        if backend is None or "pymemcache" not in backend.value:
            dead = _setting(ini, "cache", ("memcache_dead_retry",), "oslo.cache",
                            "memcache_dead_retry", header)
        facts.cache_timeouts.append((timeout, dead))
    servers = ini.first("keystone_authtoken", "memcached_servers", "memcache_servers")
    if servers is not None:
        option, value = servers
        facts.memcached_lists.append(ServerList(
            f"{file_name} [keystone_authtoken] {option}", _split_list(value.value),
            Origin(ini.file, value.line)))
        header = Origin(ini.file, ini.section_lines["keystone_authtoken"])
        facts.cache_timeouts.append((
            _setting(ini, "keystone_authtoken", ("memcache_pool_socket_timeout",),
                     "keystonemiddleware", "memcache_pool_socket_timeout", header),
            _setting(ini, "keystone_authtoken", ("memcache_pool_dead_retry",),
                     "keystonemiddleware", "memcache_pool_dead_retry", header)))


def _setting(ini: IniFile, section: str, names: tuple[str, ...], project: str,
             default_name: str, header: Origin) -> Setting:
    found = ini.first(section, *names)
    label = f"[{section}] {names[0]}"
    if found is None:
        return Setting(label, float(upstream_default(project, default_name)), header, project)
    option, value = found
    try:
        number = float(value.value)
    except ValueError:
        raise ImportFileError([Problem(ini.file, value.line, option,
                                       f"'{value.value}' is not a number")]) from None
    return Setting(f"[{section}] {option}", number, Origin(ini.file, value.line))


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in re.split(r"[,\s]+", value) if s.strip())


def _rabbit_queue_facts(ini: IniFile, facts: CloudFacts) -> None:
    quorum = ini.get("oslo_messaging_rabbit", "rabbit_quorum_queue")
    mirrored = ini.get("oslo_messaging_rabbit", "rabbit_ha_queues")
    if mirrored is not None and mirrored.value.lower() == "true":
        facts.set("settings.rabbitmq.queues", "mirrored", Origin(ini.file, mirrored.line))
    elif quorum is not None and quorum.value.lower() == "true" \
            and "settings.rabbitmq.queues" not in facts.settings:
        facts.set("settings.rabbitmq.queues", "quorum", Origin(ini.file, quorum.line))


def _neutron_facts(ini: IniFile, facts: CloudFacts) -> None:
    """Neutron's scheduling options; when servers' files disagree, the least redundant value
    is the one some network gets, so it is the one kept."""
    header = Origin(ini.file, ini.section_lines.get("DEFAULT", 1))
    source = upstream_source("neutron")
    for option, kind in (("dhcp_agents_per_network", int), ("l3_ha", bool),
                         ("max_l3_agents_per_router", int),
                         ("allow_automatic_l3agent_failover", bool)):
        value = ini.get("DEFAULT", option)
        dotted = f"settings.neutron.{option}"
        parsed: int | bool
        if value is None:
            parsed, origin = upstream_default("neutron", option), header
        else:
            origin = Origin(ini.file, value.line)
            try:
                parsed = (value.value.strip().lower() in ("true", "1", "yes", "on")
                          if kind is bool else int(value.value))
            except ValueError:
                raise ImportFileError([Problem(ini.file, value.line, option,
                                               f"'{value.value}' is not a number")]) from None
        current = facts.settings.get(dotted)
        if current is None or parsed < current[0]:
            facts.set(dotted, parsed, origin)
            if value is None:
                facts.note(header, f"{option} not set: {source} default {parsed}")
    # min_l3_agents_per_router left neutron in Ocata; hastack's model keeps it (at most the
    # maximum), so it is read when a file still sets it and otherwise bounded by the maximum.
    minimum = ini.get("DEFAULT", "min_l3_agents_per_router")
    maximum = facts.settings["settings.neutron.max_l3_agents_per_router"]
    if minimum is not None and minimum.value.strip().isdigit():
        facts.set("settings.neutron.min_l3_agents_per_router", int(minimum.value),
                  Origin(ini.file, minimum.line))
    elif 0 < maximum[0] < 2:
        facts.set("settings.neutron.min_l3_agents_per_router", maximum[0], maximum[1])
