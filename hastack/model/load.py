"""Reading `cloud.yaml` into a Cloud, with every problem reported at its file and line.

Two passes: pydantic checks shape and types; `semantic_problems` checks what spans keys
(duplicates, VIP subnets, the arbitrator); a user-supplied TLS certificate and key are read
and checked (`tls_file_problems`). All produce `Problem`s pointing at the user's line.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import ssl
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from hastack.errors import CloudFileError, Problem
from hastack.model.cloud import Cloud

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
    return problems


# --- YAML with line numbers -------------------------------------------------------------------

def _fast_parse(text: str) -> dict[str, Any] | None:
    """The document as plain data via libyaml, or None when anything is unusual (a syntax
    error, a duplicate key, no libyaml): the careful path then reports it with its line."""
    try:
        import yaml
        loader_base = yaml.CSafeLoader
    except (ImportError, AttributeError):
        return None

    class _StrictLoader(loader_base):  # type: ignore[misc, valid-type]
        pass

    def mapping(loader: Any, node: Any, deep: bool = False) -> dict[Any, Any]:
        keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
        if len(set(map(str, keys))) != len(keys):
            raise yaml.YAMLError("duplicate key")
        return {k: loader.construct_object(v, deep=deep) for k, (_, v) in zip(keys, node.value,
                                                                              strict=True)}

    # YAML 1.2 booleans only (as ruamel reads them): 'yes'/'no'/'on'/'off' stay strings.
    _StrictLoader.add_constructor("tag:yaml.org,2002:map", mapping)
    _StrictLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in loader_base.yaml_implicit_resolvers.items()
    }
    _StrictLoader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"))
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


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
