"""A standard Ansible inventory of a cloud: written from the cloud file, read back and checked.

Stage 5 (deploy). `inventory_yaml(plan)` is pure: the cloud's nodes as hosts (`ansible_host`
their address), grouped by their roles in the cloud file and by the hastack role (system) they
run. `read_inventory(path)` reads a YAML or INI inventory an operator wrote or edited, keeping
each host's line, and `check_inventory` says, one line per problem with its place, where it
and the cloud disagree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from hastack.catalog.hosts import load_host_catalog
from hastack.deploy.ansible.roles import COMMON, role_groups
from hastack.errors import HastackError, Problem
from hastack.model.cloud import Cloud
from hastack.plan import Plan

# Group names a hastack role group owns in the inventory; an operator's group of that name
# must list exactly the hosts the plan puts there.
_RANGE = re.compile(r"\[(\d+):(\d+)\]")


class InventoryError(HastackError):
    """The inventory cannot be read, or does not match the cloud; one line per problem."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


def cloud_groups(plan: Plan) -> dict[str, tuple[str, ...]]:
    """Groups hastack puts in an inventory: the cloud file's roles, then the hastack roles."""
    groups: dict[str, list[str]] = {}
    for node in plan.cloud.nodes:
        for role in node.roles:
            groups.setdefault(role.value, []).append(node.name)
    by_role = {role: nodes for role, nodes in role_groups(plan).items() if role != COMMON}
    clash = set(groups) & set(by_role)
    if clash:     # a catalog bug: the two namings must stay apart
        raise HastackError(f"inventory: group names both a cloud role and a system: {clash}")
    return {**{g: tuple(n) for g, n in groups.items()}, **by_role}


def inventory_yaml(plan: Plan) -> str:
    """The inventory, as YAML an operator reads and edits (comments say what to change)."""
    cloud = plan.cloud
    lines = [
        f"# Ansible inventory of cloud {cloud.name}, written by `hastack inventory`.",
        "# Host names are the cloud's nodes and must stay so. To reach your servers, change",
        "# ansible_host and add ansible_user / ansible_become_password (or use ssh_config);",
        "# `hastack deploy` rebuilds the role groups below from the cloud file.",
        "all:",
        "  vars:",
        f"    hastack_cloud: {cloud.name}",
        "    ansible_become: true",
        "  hosts:",
    ]
    for node in cloud.nodes:
        lines += [f"    {node.name}:", f"      ansible_host: {node.ip}"]
    lines.append("  children:")
    role_names = {role.value for node in cloud.nodes for role in node.roles}
    catalog = load_host_catalog()
    for group, nodes in cloud_groups(plan).items():
        if group in role_names:
            what = "role in the cloud file"
        else:
            role = next(r for r in catalog.roles if r.role == group)
            what = "runs " + ", ".join(p for p in role.processes if plan.runs(p))
        lines += [f"    {group}:  # {what}", "      hosts:"]
        lines += [f"        {node}:" for node in nodes]
    return "\n".join(lines) + "\n"


@dataclass
class Inventory:
    """What hastack needs of an inventory: its hosts and groups, each with its line."""

    path: Path
    hosts: dict[str, int | None] = field(default_factory=dict)            # host -> line
    groups: dict[str, dict[str, int | None]] = field(default_factory=dict)  # direct hosts

    def place(self, line: int | None) -> tuple[str, int | None]:
        return str(self.path), line


def read_inventory(path: Path) -> Inventory:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")])\
            from None
    if path.suffix in (".yml", ".yaml") or text.lstrip().startswith(("all:", "---")):
        return _read_yaml(path, text)
    return _read_ini(path, text)


def _read_yaml(path: Path, text: str) -> Inventory:
    try:
        data = YAML(typ="rt").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InventoryError([Problem(str(path), line, "", "not valid YAML")]) from None
    inventory = Inventory(path)
    if not isinstance(data, CommentedMap):
        raise InventoryError([Problem(str(path), 1, "", "expected a mapping of groups "
                                      "(all: {hosts: ..., children: ...})")])

    def walk(name: str, group: Any) -> None:
        if not isinstance(group, CommentedMap):
            return
        members = inventory.groups.setdefault(name, {})
        hosts = group.get("hosts")
        if isinstance(hosts, CommentedMap):
            for host in hosts:
                line = hosts.lc.key(host)[0] + 1
                for expanded in _expand(str(host)):
                    members[expanded] = line
                    inventory.hosts.setdefault(expanded, line)
        children = group.get("children")
        if isinstance(children, CommentedMap):
            for child, child_group in children.items():
                walk(str(child), child_group)

    for name, group in data.items():
        walk(str(name), group)
    return inventory


def _read_ini(path: Path, text: str) -> Inventory:
    inventory = Inventory(path)
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip() if not raw.lstrip().startswith(
            ("#", ";")) else ""
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section, _, kind = line[1:-1].partition(":")
            kind = kind or "hosts"
            inventory.groups.setdefault(section, {})
            continue
        if kind != "hosts":
            continue
        for host in _expand(line.split()[0]):
            inventory.groups[section][host] = number
            inventory.hosts.setdefault(host, number)
    return inventory


def _expand(pattern: str) -> Iterator[str]:
    """Ansible's numeric host ranges: ctl[1:3] -> ctl1, ctl2, ctl3."""
    match = _RANGE.search(pattern)
    if not match:
        yield pattern
        return
    low, high = match.group(1), match.group(2)
    width = len(low) if low.startswith("0") else 0
    for i in range(int(low), int(high) + 1):
        yield from _expand(pattern[:match.start()] + str(i).zfill(width) + pattern[match.end():])


def check_inventory(inventory: Inventory, plan: Plan) -> None:
    """Raise one line per disagreement between the inventory and the cloud."""
    cloud: Cloud = plan.cloud
    nodes = [n.name for n in cloud.nodes]
    problems: list[Problem] = []
    for host, line in inventory.hosts.items():
        if host not in nodes:
            problems.append(Problem(*inventory.place(line), "",
                                    f"host '{host}' is not a node of cloud {cloud.name} "
                                    f"(its nodes: {', '.join(nodes)})"))
    missing = [n for n in nodes if n not in inventory.hosts]
    if missing:
        problems.append(Problem(str(inventory.path), None, "",
                                f"cloud {cloud.name}'s node(s) {', '.join(missing)} are not in "
                                "the inventory (`hastack inventory` writes a complete one)"))
    for group, planned in cloud_groups(plan).items():
        listed = inventory.groups.get(group)
        if listed is None or set(listed) <= set(planned):
            continue
        extra = [h for h in listed if h not in planned]
        problems.append(Problem(*inventory.place(listed[extra[0]]), "",
                                f"group '{group}' lists {', '.join(extra)}, but the plan runs "
                                f"{group} on {', '.join(planned)} only"))
    if problems:
        raise InventoryError(problems)
