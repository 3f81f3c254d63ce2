"""Reading `cloud.yaml` into a Cloud, with every problem reported at its file and line.

Two passes: pydantic checks shape and types; `semantic_problems` checks what spans keys
(duplicates, VIP subnets, the arbitrator); a user-supplied TLS certificate and key are read
and checked (`tls_file_problems`). All produce `Problem`s pointing at the user's line.
"""

from __future__ import annotations

import difflib
import gc
import ipaddress
import re
import ssl
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from hastack.errors import CloudFileError, Problem
from hastack.model.cloud import Cloud, Role

# The roles a Nova cell's own nodes may carry (its conductors run on its controllers).
CELL_ROLES = frozenset({Role.compute, Role.database, Role.messaging, Role.controller})

Loc = tuple[str | int, ...]


def load_cloud(path: str | Path) -> Cloud:
    """Read and validate a cloud file; raise CloudFileError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = Problem(str(path), None, "", f"cannot read: {exc.strerror}")
        raise CloudFileError([problem]) from None
    cloud = parse_cloud(text, str(path))
    if cloud.settings.tls.certificate is None:
        return cloud
    cloud = _with_absolute_tls_paths(cloud, path.parent)
    problems = tls_file_problems(cloud)
    if problems:
        lines = _LineIndex(_parse_yaml(text, str(path)))
        raise CloudFileError([Problem(str(path), lines.line(loc), _dotted(loc), message)
                              for loc, message in problems])
    return cloud


def _with_absolute_tls_paths(cloud: Cloud, base: Path) -> Cloud:
    """The user's certificate and key paths, relative to the cloud file's directory."""
    tls = cloud.settings.tls
    assert tls.certificate is not None and tls.key is not None
    tls = tls.model_copy(update={"certificate": base / tls.certificate, "key": base / tls.key})
    settings = cloud.settings.model_copy(update={"tls": tls})
    return cloud.model_copy(update={"settings": settings})


def tls_file_problems(cloud: Cloud) -> list[tuple[Loc, str]]:
    """A user-supplied certificate and key that HAProxy could not load: unreadable, not PEM,
    or a key that is not the certificate's. Checked with the standard library's OpenSSL."""
    tls = cloud.settings.tls
    if tls.certificate is None or tls.key is None:
        return []
    cert_loc: Loc = ("settings", "tls", "certificate")
    key_loc: Loc = ("settings", "tls", "key")
    problems: list[tuple[Loc, str]] = []
    for loc, file, marker, what in ((cert_loc, tls.certificate, "-----BEGIN CERTIFICATE-----",
                                     "a PEM certificate"),
                                    (key_loc, tls.key, "PRIVATE KEY-----", "a PEM private key")):
        try:
            text = file.read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            problems.append((loc, f"{file}: cannot read: {exc.strerror}"))
            continue
        if marker not in text:
            problems.append((loc, f"{file}: not {what}"))
    if problems:
        return problems
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.certificate, tls.key)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            problems.append((key_loc, f"{tls.key}: not the private key of {tls.certificate}"))
        else:
            problems.append((cert_loc, f"{tls.certificate} with {tls.key}: OpenSSL cannot "
                                       f"load them ({exc.reason or exc})"))
        return problems
    return [(cert_loc, f"{tls.certificate}: {message}")
            for message in _certificate_name_problems(cloud, tls.certificate)]


def _certificate_name_problems(cloud: Cloud, certificate: Path) -> list[str]:
    """A certificate TLS clients would refuse: expired, or naming neither the public VIP's
    address nor (when set) its hostname."""
    import datetime

    from cryptography import x509

    # The first certificate of the file is the server's (intermediates follow it).
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    not_after = cert.not_valid_after_utc
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
        names += sans.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not_after < datetime.datetime.now(datetime.UTC):
        return [f"expired on {not_after:%Y-%m-%d}"]
    wanted = [cloud.settings.tls.hostname] if cloud.settings.tls.hostname else []
    wanted += [str(cloud.vips.public)] if cloud.vips.public is not None else []
    if not wanted or any(w in names for w in wanted):
        return []
    return [f"names {', '.join(names) or 'nothing (no subject alternative names)'}, not "
            f"{' or '.join(wanted)}: clients of the public VIP would refuse it"]


def parse_cloud(text: str, filename: str = "cloud.yaml") -> Cloud:
    # Fast path: libyaml parses a 1,000-node file ~15x faster than the round-trip parser.
    # Line numbers are only needed when something is wrong; then the file is parsed again
    # with ruamel's round-trip loader, which keeps every key's line.
    with _collector_paused():
        fast = _fast_parse(text)
        if fast is not None:
            try:
                cloud = Cloud.model_validate(fast)
            except ValidationError:
                pass
            else:
                if not semantic_problems(cloud):
                    return cloud
    data = _parse_yaml(text, filename)
    lines = _LineIndex(data)
    try:
        cloud = Cloud.model_validate(_plain(data))
    except ValidationError as exc:
        errors = _innermost(exc.errors())
        problems = [_problem_from_pydantic(err, filename, lines) for err in errors]
        raise CloudFileError(_unique(problems)) from None
    semantic = [
        Problem(filename, lines.line(loc), _dotted(loc), message)
        for loc, message in semantic_problems(cloud)
    ]
    if semantic:
        raise CloudFileError(semantic)
    return cloud


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Building a 50,000-node model allocates millions of objects that all live on, and the
    cyclic garbage collector would walk them again and again (a third of the load time):
    pause it while the model is built."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def semantic_problems(cloud: Cloud) -> list[tuple[Loc, str]]:
    """Rules that span several keys; each problem carries the location of the offending key."""
    problems: list[tuple[Loc, str]] = []
    seen_names: dict[str, int] = {}
    seen_addresses: dict[ipaddress.IPv4Address, int] = {}
    for index, node in enumerate(cloud.nodes):
        if node.name in seen_names:
            first = seen_names[node.name]
            problems.append((("nodes", index, "name"),
                             f"duplicate node name '{node.name}' (also nodes[{first}])"))
        seen_names.setdefault(node.name, index)
        if node.ip in seen_addresses:
            first = seen_addresses[node.ip]
            problems.append((("nodes", index, "address"),
                             f"duplicate address {node.ip} (also nodes[{first}])"))
        seen_addresses.setdefault(node.ip, index)
        if len(set(node.roles)) != len(node.roles):
            problems.append((("nodes", index, "roles"), "a role is listed twice"))

    subnets = {node.address.network for node in cloud.nodes}
    vip_seen: dict[ipaddress.IPv4Address, str] = {}
    for vip_name, vip in cloud.vips.items():
        loc: Loc = ("vips", vip_name)
        if vip in seen_addresses:
            owner = cloud.nodes[seen_addresses[vip]].name
            problems.append((loc, f"VIP {vip} is the address of node '{owner}'; "
                                  "a VIP must be free"))
        elif not any(vip in subnet for subnet in subnets):
            listed = ", ".join(sorted(str(s) for s in subnets))
            problems.append((loc, f"VIP {vip} is outside every node's subnet ({listed})"))
        if vip in vip_seen:
            problems.append((loc, f"VIP {vip} is also the {vip_seen[vip]} VIP"))
        vip_seen.setdefault(vip, vip_name)
        if any(vip == subnet.network_address or vip == subnet.broadcast_address
               for subnet in subnets):
            problems.append((loc, f"VIP {vip} is a network or broadcast address"))

    if len(set(cloud.services)) != len(cloud.services):
        problems.append((("services",), "a service is listed twice"))

    arbitrator = cloud.settings.galera.arbitrator
    if arbitrator is not None and arbitrator not in seen_names:
        hint = _did_you_mean(arbitrator, seen_names)
        problems.append((("settings", "galera", "arbitrator"),
                         f"arbitrator '{arbitrator}' is not a node{hint}"))

    neutron = cloud.settings.neutron
    if neutron.min_l3_agents_per_router > neutron.max_l3_agents_per_router > 0:
        problems.append((("settings", "neutron", "min_l3_agents_per_router"),
                         f"min_l3_agents_per_router ({neutron.min_l3_agents_per_router}) is above "
                         f"max_l3_agents_per_router ({neutron.max_l3_agents_per_router})"))
    for vip_name in cloud.settings.keepalived.virtual_router_ids:
        if vip_name not in dict(cloud.vips.items()):
            problems.append((("settings", "keepalived", "virtual_router_ids", vip_name),
                             f"no VIP called '{vip_name}' (the VIPs are "
                             f"{', '.join(n for n, _ in cloud.vips.items())})"))
    return problems + _placement_problems(cloud, set(vip_seen))


def _placement_problems(cloud: Cloud, home_vips: set[ipaddress.IPv4Address]
                        ) -> list[tuple[Loc, str]]:
    """Regions, cells, racks and zones: every name a node uses is declared, once."""
    problems: list[tuple[Loc, str]] = []

    def declared(kind: str, items: Sequence[Any], reserved: set[str]) -> dict[str, int]:
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            if item.name in seen or item.name in reserved:
                also = f"nodes of the home region '{cloud.region}'" if item.name in reserved \
                    else f"{kind}[{seen[item.name]}]"
                problems.append(((kind, index, "name"),
                                 f"'{item.name}' is declared twice (also {also})"))
            seen.setdefault(item.name, index)
        return seen

    regions = declared("regions", cloud.regions, {cloud.region})
    declared("cells", cloud.cells, {"cell0"})
    declared("racks", cloud.racks, set())
    zones = declared("zones", cloud.zones, set())
    region_names = {cloud.region, *regions}

    def unknown(loc: Loc, kind: str, name: str, known: Iterable[str]) -> None:
        names = sorted(known)
        listed = f"; declared: {', '.join(names)}" if names else f"; declare it under {kind}:"
        problems.append((loc, f"unknown {kind[:-1]} '{name}'{_did_you_mean(name, names)}"
                              f"{listed}"))

    for index, cell in enumerate(cloud.cells):
        if cell.region is not None and cell.region not in region_names:
            unknown(("cells", index, "region"), "regions", cell.region, region_names)
    for index, rack in enumerate(cloud.racks):
        if rack.zone is not None and rack.zone not in zones:
            unknown(("racks", index, "zone"), "zones", rack.zone, zones)

    cell_region = {c.name: c.region or cloud.region for c in cloud.cells}
    rack_zone = {r.name: r.zone for r in cloud.racks}
    cell_roles: dict[str, set[Role]] = {c.name: set() for c in cloud.cells}
    regions_with_cells = set(cell_region.values())
    subnets_of: dict[str, set[ipaddress.IPv4Network]] = {}
    for index, node in enumerate(cloud.nodes):
        region = cloud.region_of(node)
        if node.region is not None and node.region not in region_names:
            unknown(("nodes", index, "region"), "regions", node.region, region_names)
        subnets_of.setdefault(region, set()).add(node.address.network)
        if node.cell is not None:
            if node.cell not in cell_region:
                unknown(("nodes", index, "cell"), "cells", node.cell, cell_region)
            else:
                cell_roles[node.cell].update(node.roles)
                if cell_region[node.cell] != region:
                    problems.append((("nodes", index, "cell"),
                                     f"cell '{node.cell}' is in region "
                                     f"'{cell_region[node.cell]}', the node in '{region}'"))
            outside = set(node.roles) - CELL_ROLES
            if outside:
                problems.append((("nodes", index, "roles"),
                                 f"a cell holds compute, database, messaging and conductor "
                                 f"(controller) nodes, not {', '.join(sorted(outside))}"))
        elif node.has_role(Role.compute) and region in regions_with_cells:
            choices = sorted(c for c, r in cell_region.items() if r == region)
            problems.append((("nodes", index),
                             f"compute node '{node.name}' has no cell, and region '{region}' "
                             f"has cells ({', '.join(choices)}): add `cell:`"))
        if node.rack is not None and node.rack not in rack_zone:
            unknown(("nodes", index, "rack"), "racks", node.rack, rack_zone)
        if node.zone is not None:
            if node.zone not in zones:
                unknown(("nodes", index, "zone"), "zones", node.zone, zones)
            rack_in = rack_zone.get(node.rack or "")
            if rack_in is not None and rack_in != node.zone:
                problems.append((("nodes", index, "zone"),
                                 f"zone '{node.zone}' differs from its rack '{node.rack}''s "
                                 f"zone '{rack_in}'"))
    for index, cell in enumerate(cloud.cells):
        roles = cell_roles[cell.name]
        for needs, what in (({Role.database, Role.controller}, "database"),
                            ({Role.messaging, Role.controller}, "message bus")):
            if not roles & needs:
                problems.append((("cells", index),
                                 f"cell '{cell.name}' has no node for its own {what}: give "
                                 f"it nodes with `cell: {cell.name}` and role "
                                 f"{' or '.join(sorted(r.value for r in needs))}"))

    taken = set(home_vips)
    for index, other in enumerate(cloud.regions):
        subnets = subnets_of.get(other.name, set())
        if not subnets:
            problems.append((("regions", index),
                             f"region '{other.name}' has no nodes: give its control plane "
                             f"`region: {other.name}`"))
        for vip_name, vip in other.vips.items():
            loc: Loc = ("regions", index, "vips", vip_name)
            if vip in taken:
                problems.append((loc, f"VIP {vip} is already a VIP of another region"))
            elif subnets and not any(vip in s for s in subnets):
                listed = ", ".join(sorted(str(s) for s in subnets))
                problems.append((loc, f"VIP {vip} is outside region '{other.name}''s "
                                      f"subnets ({listed})"))
            taken.add(vip)
        if "glance" in other.shares and "keystone" not in other.shares:
            problems.append((("regions", index, "shares"),
                             "a shared Glance needs the shared Keystone too (its images "
                             "belong to that Keystone's projects)"))
        if len(set(other.shares)) != len(other.shares):
            problems.append((("regions", index, "shares"), "a service is listed twice"))
        for vip_name in other.virtual_router_ids:
            if vip_name not in dict(other.vips.items()):
                problems.append((("regions", index, "virtual_router_ids", vip_name),
                                 f"no VIP called '{vip_name}' in region '{other.name}'"))
    return problems


# --- YAML with line numbers -------------------------------------------------------------------

# YAML 1.2 core-schema plain scalars, as ruamel (the careful path) reads them. Anything else
# a plain scalar could mean in YAML 1.1 (0o17, 1_000, .inf, yes/no) makes the fast path give
# up, so both paths always agree.
_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_AMBIGUOUS = re.compile(r"[-+]?(0[0-9xob]|\.(inf|nan|Inf|NaN|INF|NAN)$|[0-9][0-9_:]*[_:])")
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False,
          "FALSE": False}
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})


class _Unusual(Exception):
    """Something the fast path does not handle: let the careful path read the file."""


def _fast_parse(text: str) -> dict[str, Any] | None:
    """The document as plain data from libyaml's event stream, or None when anything is
    unusual (a syntax error, a duplicate key, a tag, an anchor, an ambiguous scalar, no
    libyaml): the careful path then reads it, reporting problems with their line.

    Why events and not yaml.load: PyYAML's constructor and resolver are Python code run once
    per scalar and dominate a 10,000-node file (about 1.8 s of 2); building the data here
    from the C parser's events takes about a tenth of that."""
    try:
        import yaml
        from yaml import events
        parser = yaml.CSafeLoader(text)
    except (ImportError, AttributeError):
        return None
    try:
        return _from_events(parser, events)
    except (yaml.YAMLError, _Unusual):
        return None
    finally:
        parser.dispose()


def _from_events(parser: Any, events: Any) -> dict[str, Any] | None:
    scalar_event, alias_event = events.ScalarEvent, events.AliasEvent
    mapping_start, sequence_start = events.MappingStartEvent, events.SequenceStartEvent
    mapping_end, sequence_end = events.MappingEndEvent, events.SequenceEndEvent
    # Each open container with, for a mapping, the key waiting for its value.
    stack: list[list[Any]] = []
    root: Any = None
    documents = 0
    while True:
        event = parser.get_event()
        kind = type(event)
        if kind is scalar_event:
            if event.anchor is not None or event.tag is not None and event.tag != "!":
                raise _Unusual
            value: Any = _plain_scalar(event.value) if event.implicit[0] else event.value
        elif kind is mapping_start or kind is sequence_start:
            if event.anchor is not None or event.tag is not None:
                raise _Unusual
            stack.append([{} if kind is mapping_start else [], _NO_KEY])
            continue
        elif kind is mapping_end or kind is sequence_end:
            container, pending = stack.pop()
            if pending is not _NO_KEY:
                raise _Unusual
            value = container
        elif kind is alias_event:
            raise _Unusual
        elif kind is events.DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise _Unusual
            continue
        elif kind is events.StreamEndEvent:
            break
        else:
            continue
        if not stack:
            root = value
            continue
        top = stack[-1]
        container = top[0]
        if type(container) is list:
            container.append(value)
        elif top[1] is _NO_KEY:
            if isinstance(value, dict | list):
                raise _Unusual
            top[1] = value
        else:
            key = str(top[1])
            if key in container:
                raise _Unusual     # a duplicate key: the careful path names its line
            container[key] = value
            top[1] = _NO_KEY
    return root if isinstance(root, dict) else None


_NO_KEY = object()


def _plain_scalar(text: str) -> Any:
    if text in _NULLS:
        return None
    boolean = _BOOLS.get(text)
    if boolean is not None:
        return boolean
    if _AMBIGUOUS.match(text):
        raise _Unusual
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _parse_yaml(text: str, filename: str) -> CommentedMap:
    yaml = YAML(typ="rt")
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or exc.context or "cannot parse"
        raise CloudFileError([Problem(filename, line, "", f"malformed YAML: {reason}")]) from None
    except YAMLError as exc:
        raise CloudFileError([Problem(filename, None, "", f"malformed YAML: {exc}")]) from None
    if not isinstance(data, CommentedMap):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        problem = Problem(filename, 1, "", f"expected a mapping at the top, got {kind}")
        raise CloudFileError([problem])
    return data


class _LineIndex:
    """Finds the 1-based line of a key path in a ruamel round-trip document."""

    def __init__(self, root: CommentedMap):
        self.root = root

    def line(self, loc: Loc) -> int | None:
        node: Any = self.root
        best: int | None = 1
        for part in loc:
            if isinstance(node, CommentedMap) and part in node:
                best = node.lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                best = node.lc.item(part)[0] + 1
                node = node[part]
            else:
                break
        return best


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# --- turning pydantic errors into user-facing problems ----------------------------------------

def _problem_from_pydantic(err: Any, filename: str, lines: _LineIndex) -> Problem:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        known = _field_names_at(Cloud, loc[:-1])
        message = f"unknown key '{loc[-1]}'{_did_you_mean(str(loc[-1]), known)}"
        if known:
            message += f"; known keys: {', '.join(sorted(known))}"
    elif kind in ("enum", "literal_error"):
        expected = re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", ""))
        what = _noun_for(loc)
        message = f"unknown {what} '{value}'{_did_you_mean(str(value), expected)}"
        if expected:
            message += f"; expected one of: {', '.join(expected)}"
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "string_pattern_mismatch":
        message = f"'{value}' is not a valid name (lower case letters, digits and '-', " \
                  "starting with a letter)"
    elif kind.startswith("ip_v4") or kind == "ip_any_address":
        message = f"'{value}' is not an IPv4 address"
    else:
        message = err["msg"].replace("Input should be", "should be")
        if value is not None and not isinstance(value, dict | list):
            message += f" (got {value!r})"
    return Problem(filename, lines.line(loc), _dotted(loc), message)


def _noun_for(loc: Loc) -> str:
    names = [p for p in loc if isinstance(p, str)]
    if not names:
        return "value"
    last = names[-1]
    singular = {"roles": "role", "services": "service", "nodes": "node"}
    return singular.get(last, last)


def _field_names_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The field names of the model found by walking `loc` down from `model`."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    """The BaseModel class inside an annotation like `tuple[Node, ...]` or `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is not None or isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _innermost(errors: list[Any]) -> list[Any]:
    """Drop an error on a container when one of its items has its own (the cause)."""
    locs = [tuple(e["loc"]) for e in errors]
    return [e for e, loc in zip(errors, locs, strict=True)
            if not any(len(o) > len(loc) and o[:len(loc)] == loc for o in locs)]


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    result = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            result.append(p)
    return result
