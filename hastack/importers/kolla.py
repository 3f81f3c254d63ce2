"""`hastack import kolla`: a Kolla-Ansible multinode inventory and globals.yml (and,
optionally, passwords.yml) turned into CloudFacts.

Inventory groups become roles (control, network, compute, storage, loadbalancer, mariadb,
rabbitmq); globals.yml gives the VIPs, the services (`enable_*`), the VRRP router id and
what Kolla-Ansible renders from them (`enable_neutron_agent_ha` decides whether neutron.conf
gets `dhcp_agents_per_network` and `l3_ha` at all). A setting left commented out in
globals.yml, as the sample ships them, is Kolla-Ansible's default: the finding points at that
commented line. Defaults that globals.yml does not list come from
hastack/catalog/upstream_defaults.yaml.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from hastack.errors import ImportFileError, Problem
from hastack.importers import (
    Backend,
    CloudFacts,
    Imported,
    NodeFact,
    Server,
    VrrpInstance,
    finish,
    upstream_default,
)
from hastack.importers.parsers import (
    Inventory,
    Origin,
    haproxy_time_ms,
    parse_inventory,
    read_text,
    server_options,
    split_words,
)
from hastack.model.cloud import NODE_NAME_PATTERN, SERVICES

KOLLA = "kolla-ansible"
# Inventory group -> hastack role, in the order roles are listed on a node.
GROUP_ROLES: tuple[tuple[str, str], ...] = (
    ("control", "controller"), ("loadbalancer", "loadbalancer"), ("mariadb", "database"),
    ("rabbitmq", "messaging"), ("network", "network"), ("storage", "storage"),
    ("compute", "compute"),
)
# Quorum clusters and the inventory group their members come from.
CLUSTER_GROUPS = {"galera": "mariadb", "rabbitmq": "rabbitmq", "keepalived": "loadbalancer",
                  "memcached": "memcached"}
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0", ""})
TEMPLATE = re.compile(r"^\{\{\s*([a-z_][a-z0-9_]*)\s*(\|\s*bool\s*)?\}\}$")
COMMENTED_KEY = re.compile(r"^#\s?([a-z_][a-z0-9_]*):\s*(.*)$")


@dataclass(frozen=True)
class Value:
    """A globals.yml setting: its value, where it was read, and whether it is a default."""

    value: Any
    origin: Origin
    how: str            # "set" | "commented" (the sample's default, commented out) | "default"

    @property
    def default(self) -> bool:
        return self.how != "set"

    def describe(self, key: str) -> str:
        if self.how == "set":
            return f"{key}: {self.value}"
        shown = str(self.value).lower() if isinstance(self.value, bool) else self.value
        return f"{key} not set (Kolla-Ansible's default {shown})"


class KollaGlobals:
    """globals.yml with its lines: set keys via ruamel, commented-out defaults by pattern."""

    def __init__(self, text: str, file: str):
        self.file = file
        try:
            data = YAML(typ="rt").load(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise ImportFileError([Problem(file, mark.line + 1 if mark else None, "",
                                           f"malformed YAML: {exc.problem or exc.context}")]) \
                from None
        except YAMLError as exc:
            raise ImportFileError([Problem(file, None, "", f"malformed YAML: {exc}")]) from None
        if data is None:
            data = CommentedMap()
        if not isinstance(data, CommentedMap):
            raise ImportFileError([Problem(file, 1, "", "expected a mapping of settings")])
        self.data = data
        self.commented: dict[str, tuple[Any, int]] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            match = COMMENTED_KEY.match(line)
            if match and match.group(1) not in self.commented:
                self.commented[match.group(1)] = (_yaml_scalar(match.group(2)), number)

    def get(self, key: str, _seen: tuple[str, ...] = ()) -> Value:
        if key in self.data:
            line = self.data.lc.key(key)[0] + 1
            return Value(self._resolve(self.data[key], _seen + (key,)),
                         Origin(self.file, line), "set")
        default = self._default(key)
        if key in self.commented:
            return Value(default, Origin(self.file, self.commented[key][1]), "commented")
        return Value(default, Origin(self.file), "default")

    def is_set(self, key: str) -> bool:
        return key in self.data

    def flag(self, key: str) -> Value:
        value = self.get(key)
        return Value(_truthy(value.value, value.origin, key), value.origin, value.how)

    def _default(self, key: str) -> Any:
        try:
            return upstream_default(KOLLA, key)
        except KeyError:
            if key in self.commented:
                return self._resolve(self.commented[key][0], (key,))
            return None

    def _resolve(self, value: Any, seen: tuple[str, ...]) -> Any:
        """`{{ other }}` and `{{ other | bool }}` follow the other setting; richer Jinja
        expressions are Kolla-Ansible's own, taken as its default for the key."""
        if not isinstance(value, str) or "{{" not in value:
            return value
        match = TEMPLATE.match(value.strip())
        if match is None or match.group(1) in seen:
            try:
                return upstream_default(KOLLA, seen[-1])
            except KeyError:
                return value
        return self.get(match.group(1), seen).value


def _yaml_scalar(text: str) -> Any:
    try:
        return YAML(typ="safe").load(text)
    except YAMLError:
        return text


def _truthy(value: Any, origin: Origin, key: str) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImportFileError([Problem(origin.file, origin.line, key,
                                   f"'{value}' is not a boolean (yes/no, true/false)")])


def import_kolla(inventory: Path, globals_file: Path, passwords: Path | None = None,
                 name: str | None = None, target_s: float = 2.0) -> Imported:
    return finish(read_kolla(inventory, globals_file, passwords, name, target_s))


# The linter's fixes in globals.yml and inventory terms.
KOLLA_FIXES = {
    "dhcp-agents-per-network": "enable_neutron_agent_ha: true in globals.yml (Kolla-Ansible "
                               "then writes dhcp_agents_per_network: 2, its default)",
    "l3-ha": "enable_neutron_agent_ha: true in globals.yml (Kolla-Ansible then writes l3_ha = "
             "true and max_l3_agents_per_router)",
    "monitoring-required": "enable_prometheus: true in globals.yml, with alerts on every "
                           "service's health",
    "quorum-too-small": "put at least 3 hosts in the group (an odd number)",
    "quorum-even": "put an odd number of hosts in the group",
    "single-node-role": "add hosts to that host's inventory groups",
}


def read_kolla(inventory_file: Path, globals_file: Path, passwords: Path | None = None,
               name: str | None = None, target_s: float = 2.0) -> CloudFacts:
    inventory = parse_inventory(read_text(inventory_file), str(inventory_file))
    settings = KollaGlobals(read_text(globals_file), str(globals_file))
    facts = CloudFacts(name or "kolla", Origin(str(globals_file)), failover_target_s=target_s,
                       fixes=dict(KOLLA_FIXES))
    internal, external = _vips(settings, facts)
    _nodes(inventory, settings, facts, internal)
    _services(settings, facts)
    _neutron(settings, facts)
    _other_settings(settings, facts)
    _vrrp(settings, inventory, facts, internal, external)
    _health_checks(settings, facts)
    if passwords is not None:
        _passwords(passwords, facts)
    return facts


def _vips(settings: KollaGlobals, facts: CloudFacts
          ) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address | None]:
    vip = settings.get("kolla_internal_vip_address")
    if not settings.is_set("kolla_internal_vip_address"):
        raise ImportFileError([Problem(vip.origin.file, vip.origin.line,
                                       "kolla_internal_vip_address",
                                       "not set (commented out): Kolla-Ansible needs the VIP "
                                       "keepalived moves between the loadbalancer hosts")])
    internal = _address(vip, "kolla_internal_vip_address")
    facts.vips["internal"] = (internal, vip.origin)
    external_value = settings.get("kolla_external_vip_address")
    external = None
    if external_value.value not in (None, "") and not external_value.default:
        external = _address(external_value, "kolla_external_vip_address")
        if external != internal:
            facts.vips["public"] = (external, external_value.origin)
    return internal, external if external != internal else None


def _address(value: Value, key: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value.value))
    except ValueError:
        raise ImportFileError([Problem(value.origin.file, value.origin.line, key,
                                       f"'{value.value}' is not an IPv4 address")]) from None


def _nodes(inventory: Inventory, settings: KollaGlobals, facts: CloudFacts,
           internal: ipaddress.IPv4Address) -> None:
    roles: dict[str, list[str]] = {}
    hosts: dict[str, Any] = {}
    for group, role in GROUP_ROLES:
        for host in inventory.hosts_of(group):
            roles.setdefault(host.name, [])
            if role not in roles[host.name]:
                roles[host.name].append(role)
            hosts.setdefault(host.name, host)
    if not hosts:
        raise ImportFileError([Problem(inventory.file, None, "", "no host in the control, "
                                       "network, compute or storage groups")])
    interface = str(settings.get("api_interface").value or settings.get("network_interface")
                    .value or "eth0")
    network = ipaddress.IPv4Network(f"{internal}/24", strict=False)
    spare = (a for a in network.hosts() if a != internal)
    assumed: list[str] = []
    for host_name, host in hosts.items():
        origin = Origin(inventory.file, host.line)
        node_name = host_name.split(".")[0].lower()
        if not re.match(NODE_NAME_PATTERN, node_name):
            raise ImportFileError([Problem(inventory.file, host.line, host_name,
                                           "not a usable node name (lower case letters, "
                                           "digits and '-', starting with a letter)")])
        address = _host_address(host)
        if address is None:
            address = next(spare)
            assumed.append(f"{node_name} {address}")
        facts.nodes.append(NodeFact(node_name, ipaddress.IPv4Interface(f"{address}/24"),
                                    tuple(roles[host_name]),
                                    host.variables.get("api_interface", interface), origin))
        facts.origins[f"node.{node_name}"] = origin
    if assumed:
        facts.note(Origin(inventory.file), "no ansible_host for " + ", ".join(
            a.split()[0] for a in assumed) + f"; placed on the VIP's subnet {network} "
            "(addresses change no finding)")
    for cluster, group in CLUSTER_GROUPS.items():
        if group in inventory.group_lines:
            facts.origins[f"cluster.{cluster}"] = Origin(inventory.file,
                                                         inventory.group_lines[group])
    skipped = sorted({h.name for g in inventory.hosts for h in inventory.hosts[g].values()}
                     - set(hosts))
    if skipped:
        facts.note(Origin(inventory.file), f"not in the model (no role hastack plans): "
                                           f"{', '.join(skipped)}")


def _host_address(host: Any) -> ipaddress.IPv4Address | None:
    for candidate in (host.variables.get("api_interface_address"),
                      host.variables.get("ansible_host"), host.name):
        try:
            return ipaddress.IPv4Address(candidate)
        except ValueError:
            continue
    return None


def _services(settings: KollaGlobals, facts: CloudFacts) -> None:
    for service in SERVICES:
        key = f"enable_{service}"
        if key not in settings.data and key not in settings.commented:
            try:
                upstream_default(KOLLA, key)
            except KeyError:
                continue
        enabled = settings.flag(key)
        if enabled.value:
            facts.services[service] = enabled.origin


def _neutron(settings: KollaGlobals, facts: CloudFacts) -> None:
    if "neutron" not in facts.services:
        return
    plugin = settings.get("neutron_plugin_agent")
    if str(plugin.value) == "ovn":
        facts.not_applicable.update({"l3-ha", "dhcp-agents-per-network"})
        facts.note(plugin.origin, "neutron_plugin_agent ovn: OVN routes and serves DHCP "
                                  "itself, so the L3 and DHCP agent rules do not apply")
        return
    agent_ha = settings.flag("enable_neutron_agent_ha")
    if agent_ha.value:
        dhcp = settings.get("dhcp_agents_per_network")
        maximum = settings.get("max_l3_agents_per_router")
        facts.set("settings.neutron.dhcp_agents_per_network", int(dhcp.value),
                  dhcp.origin if dhcp.how == "set" else agent_ha.origin)
        facts.set("settings.neutron.l3_ha", True, agent_ha.origin)
        facts.set("settings.neutron.max_l3_agents_per_router", int(maximum.value),
                  maximum.origin if maximum.how == "set" else agent_ha.origin)
        return
    # Kolla-Ansible writes dhcp_agents_per_network and l3_ha into neutron.conf only with
    # enable_neutron_agent_ha; without it neutron's own defaults apply.
    facts.set("settings.neutron.dhcp_agents_per_network",
              upstream_default("neutron", "dhcp_agents_per_network"), agent_ha.origin)
    facts.set("settings.neutron.l3_ha", upstream_default("neutron", "l3_ha"), agent_ha.origin)
    facts.set("settings.neutron.allow_automatic_l3agent_failover",
              upstream_default("neutron", "allow_automatic_l3agent_failover"), agent_ha.origin)
    facts.note(agent_ha.origin, f"{agent_ha.describe('enable_neutron_agent_ha')}: neutron.conf "
                                "gets neither dhcp_agents_per_network nor l3_ha (neutron's "
                                "defaults 1 and false)")


def _other_settings(settings: KollaGlobals, facts: CloudFacts) -> None:
    prometheus = settings.flag("enable_prometheus")
    facts.set("settings.monitoring.enabled", prometheus.value, prometheus.origin)
    mode = settings.get("keepalived_traffic_mode")
    if str(mode.value) in ("unicast", "multicast"):
        # Unlisted in the sample globals.yml: the place keepalived is enabled stands for it.
        origin = mode.origin if mode.origin.line else settings.get("enable_keepalived").origin
        facts.set("settings.keepalived.mode", str(mode.value), origin)
    if "cinder" in facts.services:
        for key, backend in (("enable_cinder_backend_lvm", "lvm"),
                             ("enable_cinder_backend_nfs", "nfs"),
                             ("enable_cinder_backend_pure_iscsi", "pure")):
            flag = settings.flag(key) if key in settings.data or key in settings.commented \
                else None
            if flag is not None and flag.value:
                facts.set("settings.cinder.backend", backend, flag.origin)
                break
    quorum = settings.get("om_enable_rabbitmq_quorum_queues")
    if quorum.how == "set" and not _truthy(quorum.value, quorum.origin,
                                           "om_enable_rabbitmq_quorum_queues"):
        facts.set("settings.rabbitmq.queues", "mirrored", quorum.origin)
    proxysql = settings.flag("enable_proxysql")
    facts.set("settings.galera.writers", 1, proxysql.origin)
    facts.note(proxysql.origin, "Galera writes go to one node: "
               + ("ProxySQL's writer hostgroup (max_writers 1)" if proxysql.value else
                  "HAProxy's mariadb back end, every member but the first a backup"))


def _vrrp(settings: KollaGlobals, inventory: Inventory, facts: CloudFacts,
          internal: ipaddress.IPv4Address, external: ipaddress.IPv4Address | None) -> None:
    if not settings.flag("enable_keepalived").value:
        return
    vrid = settings.get("keepalived_virtual_router_id")
    try:
        number = int(str(vrid.value))
    except ValueError:
        raise ImportFileError([Problem(vrid.origin.file, vrid.origin.line,
                                       "keepalived_virtual_router_id",
                                       f"'{vrid.value}' is not a number")]) from None
    if not 1 <= number <= 255:
        raise ImportFileError([Problem(vrid.origin.file, vrid.origin.line,
                                       "keepalived_virtual_router_id",
                                       f"{number} is outside VRRP's 1-255")])
    vips = [ipaddress.IPv4Interface(f"{internal}/24")]
    if external is not None:
        vips.append(ipaddress.IPv4Interface(f"{external}/32"))
    group_line = inventory.group_lines.get("loadbalancer")
    # Kolla-Ansible's keepalived.conf.j2 renders state BACKUP with nopreempt.
    facts.vrrp.append(VrrpInstance(
        name=f"kolla_internal_vip_{number}", node="loadbalancer",
        interface=str(settings.get("api_interface").value or "eth0"), vrid=number,
        state="BACKUP", nopreempt=True, vips=tuple(vips),
        origin=Origin(inventory.file, group_line) if group_line else vrid.origin,
        vrid_origin=vrid.origin, default_vrid_of="" if vrid.how == "set" else "Kolla-Ansible"))


def _health_checks(settings: KollaGlobals, facts: CloudFacts) -> None:
    """Every HAProxy back end Kolla-Ansible renders checks its servers with
    `haproxy_health_check`; one back end stands for them all."""
    haproxy = settings.flag("enable_haproxy")
    if not haproxy.value:
        return
    check = settings.get("haproxy_health_check")
    params = server_options(split_words(str(check.value)))
    try:
        inter = haproxy_time_ms(params.get("inter", str(upstream_default("haproxy",
                                                                        "inter_ms"))))
        fall = int(params.get("fall", upstream_default("haproxy", "fall")))
        rise = int(params.get("rise", upstream_default("haproxy", "rise")))
    except ValueError:
        raise ImportFileError([Problem(check.origin.file, check.origin.line,
                                       "haproxy_health_check",
                                       f"cannot read inter/fall/rise in '{check.value}'")]) \
            from None
    origin = check.origin if check.how == "set" else haproxy.origin
    server = Server("every back end", "", None, False, "check" in params, inter, fall, rise,
                    origin, "" if check.how == "set" else
                    f"Kolla-Ansible's haproxy_health_check '{check.value}'")
    facts.backends.append(Backend("haproxy_health_check", origin, "httpchk", origin,
                                  (server,), galera=False))


def _passwords(path: Path, facts: CloudFacts) -> None:
    text = read_text(path)
    try:
        data = YAML(typ="rt").load(text) or {}
    except YAMLError as exc:
        raise ImportFileError([Problem(str(path), None, "", f"malformed YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise ImportFileError([Problem(str(path), 1, "", "expected a mapping of passwords")])
    if "keepalived_password" in data and not data["keepalived_password"]:
        line = data.lc.key("keepalived_password")[0] + 1 if isinstance(data, CommentedMap) \
            else None
        facts.note(Origin(str(path), line), "keepalived_password is empty: run kolla-genpwd "
                   "before deploying (VRRP adverts are authenticated with it)")
