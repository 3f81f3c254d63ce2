"""Parsers for the files an existing cloud is made of, each keeping the line of every fact.

HAProxy and keepalived have their own grammars, written here after their documentation
(HAProxy's configuration manual, section 2 "Configuring HAProxy"; keepalived.conf(5)):
sections and keyword lines for HAProxy, nested `{ }` blocks for keepalived. OpenStack's INI
files go through oslo.config's own parser (`oslo_config.iniparser`, what every service reads
them with); MySQL option files, RabbitMQ's sysctl-style rabbitmq.conf and Ansible's INI
inventory have small grammars of their own. Every parse error is an ImportFileError naming
the file and line.

Pure apart from reading the file it is given: text in, typed records out.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from oslo_config import iniparser

from hastack.errors import ImportFileError, Problem


@dataclass(frozen=True)
class Origin:
    """Where a fact was read: a file and its 1-based line (None: the file as a whole)."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ImportFileError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) \
            from None


def _fail(file: str, line: int | None, message: str) -> ImportFileError:
    return ImportFileError([Problem(file, line, "", message)])


# --- words, as HAProxy and keepalived split a line ---------------------------------------------

def split_words(text: str, comment_chars: str = "#") -> list[str]:
    """A line's words: whitespace separates them, double and single quotes group them (a
    backslash escapes the next character outside single quotes), and an unquoted comment
    character ends the line."""
    words: list[str] = []
    current: list[str] = []
    in_word = False
    quote = ""
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == quote:
                quote = ""
            elif char == "\\" and quote == '"' and i + 1 < len(text):
                i += 1
                current.append(text[i])
            else:
                current.append(char)
        elif char in "\"'":
            quote, in_word = char, True
        elif char == "\\" and i + 1 < len(text):
            i += 1
            current.append(text[i])
            in_word = True
        elif char in comment_chars:
            break
        elif char.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(char)
            in_word = True
        i += 1
    if in_word:
        words.append("".join(current))
    return words


# --- HAProxy -----------------------------------------------------------------------------------

HAPROXY_SECTIONS = frozenset({
    "global", "defaults", "frontend", "backend", "listen", "peers", "resolvers", "userlist",
    "mailers", "program", "http-errors", "ring", "cache", "log-forward", "crt-store", "traces",
})
# Proxies: the sections that carry servers and health checks.
HAPROXY_PROXIES = frozenset({"defaults", "frontend", "backend", "listen"})


@dataclass(frozen=True)
class Directive:
    words: tuple[str, ...]
    line: int

    @property
    def keyword(self) -> str:
        return self.words[0]


@dataclass(frozen=True)
class HaproxySection:
    kind: str
    name: str
    line: int
    directives: tuple[Directive, ...]
    file: str = ""          # a configuration may be split over files (haproxy -f DIR)

    def find(self, *words: str) -> Iterator[Directive]:
        """Directives starting with these words (`find("option", "mysql-check")`)."""
        for d in self.directives:
            if d.words[:len(words)] == words:
                yield d


@dataclass(frozen=True)
class HaproxyConfig:
    file: str
    sections: tuple[HaproxySection, ...]

    def proxies(self) -> Iterator[tuple[HaproxySection, HaproxySection | None]]:
        """Each listen/backend section with the defaults section in force above it."""
        defaults: HaproxySection | None = None
        for section in self.sections:
            if section.kind == "defaults":
                defaults = section
            elif section.kind in ("listen", "backend"):
                yield section, defaults


def parse_haproxy(text: str, file: str) -> HaproxyConfig:
    sections: list[HaproxySection] = []
    kind = name = ""
    start = 0
    directives: list[Directive] = []

    def close() -> None:
        if kind:
            sections.append(HaproxySection(kind, name, start, tuple(directives), file))

    for number, raw in enumerate(text.splitlines(), start=1):
        try:
            words = split_words(raw)
        except IndexError:  # pragma: no cover - split_words never indexes past the end
            raise _fail(file, number, "cannot split the line into words") from None
        if not words:
            continue
        if words[0] in HAPROXY_SECTIONS:
            close()
            kind, start, directives = words[0], number, []
            name = words[1] if len(words) > 1 and words[1] != "from" else ""
            if kind in ("frontend", "backend", "listen") and not name:
                raise _fail(file, number, f"'{kind}' needs a name")
            continue
        if not kind:
            raise _fail(file, number, f"'{words[0]}' outside any section (global, defaults, "
                                      "frontend, backend, listen, ...)")
        directives.append(Directive(tuple(words), number))
    close()
    return HaproxyConfig(file, tuple(sections))


TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0,
                 "d": 86_400_000.0}


def haproxy_time_ms(value: str) -> float:
    """HAProxy's time format: a number with an optional unit, milliseconds by default."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms|s|m|h|d)?", value)
    if match is None:
        raise ValueError(f"'{value}' is not an HAProxy time (e.g. 2000, 2s, 500ms)")
    return float(match.group(1)) * TIME_UNITS_MS[match.group(2) or "ms"]


# Server options that take a value (the rest are flags): enough to read the ones HA needs.
_VALUED_SERVER_OPTIONS = frozenset({
    "inter", "fastinter", "downinter", "fall", "rise", "port", "addr", "weight", "maxconn",
    "on-marked-down", "on-marked-up", "on-error", "slowstart", "agent-port", "agent-inter",
    "cookie", "id", "init-addr", "resolvers", "observe", "error-limit", "pool-max-conn",
    "check-sni", "sni", "ca-file", "crt", "verify", "proto", "alpn", "source", "track",
    "maxqueue", "minconn", "redir", "resolve-prefer", "ws", "pool-purge-delay", "namespace",
})


def server_options(words: list[str]) -> dict[str, str]:
    """The options after `server NAME ADDRESS` (or `default-server`): flags map to ""."""
    options: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word in _VALUED_SERVER_OPTIONS and i + 1 < len(words):
            options[word] = words[i + 1]
            i += 2
        else:
            options[word] = ""
            i += 1
    return options


# --- keepalived --------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeepalivedNode:
    """One statement: its words, its line and, for a block, the statements inside it."""

    words: tuple[str, ...]
    line: int
    children: tuple[KeepalivedNode, ...] = ()
    is_block: bool = False

    @property
    def keyword(self) -> str:
        return self.words[0] if self.words else ""

    def child(self, keyword: str) -> KeepalivedNode | None:
        return next((c for c in self.children if c.keyword == keyword), None)

    def all(self, keyword: str) -> list[KeepalivedNode]:
        return [c for c in self.children if c.keyword == keyword]


@dataclass(frozen=True)
class KeepalivedConfig:
    file: str
    root: KeepalivedNode


@dataclass
class _OpenBlock:
    words: list[str]
    line: int
    children: list[KeepalivedNode] = field(default_factory=list)


def parse_keepalived(text: str, file: str) -> KeepalivedConfig:
    """keepalived.conf(5): `#` and `!` start comments; `{` opens a block after the words
    before it (on the same line or alone on the next); `}` closes it; several statements may
    share a line inside braces (`virtual_ipaddress { 10.0.0.1 }`)."""
    stack: list[_OpenBlock] = [_OpenBlock([], 0)]
    for number, raw in enumerate(text.splitlines(), start=1):
        words = split_words(raw, comment_chars="#!")
        pending: list[str] = []
        for word in _split_braces(words):
            if word == "{":
                head = pending
                if not head:
                    head = _reopen_previous(stack, file, number)
                stack.append(_OpenBlock(head, number))
                pending = []
            elif word == "}":
                if pending:
                    stack[-1].children.append(KeepalivedNode(tuple(pending), number))
                    pending = []
                if len(stack) == 1:
                    raise _fail(file, number, "'}' closes no block")
                block = stack.pop()
                stack[-1].children.append(KeepalivedNode(tuple(block.words), block.line,
                                                         tuple(block.children), True))
            else:
                pending.append(word)
        if pending:
            stack[-1].children.append(KeepalivedNode(tuple(pending), number))
    if len(stack) > 1:
        unclosed = stack[-1]
        raise _fail(file, unclosed.line, f"block '{' '.join(unclosed.words)}' is never closed")
    return KeepalivedConfig(file, KeepalivedNode((), 0, tuple(stack[0].children), True))


def _split_braces(words: list[str]) -> Iterator[str]:
    for word in words:
        while word:
            brace = min((i for i in (word.find("{"), word.find("}")) if i >= 0), default=-1)
            if brace < 0:
                yield word
                break
            if brace:
                yield word[:brace]
            yield word[brace]
            word = word[brace + 1:]


def _reopen_previous(stack: list[_OpenBlock], file: str, number: int) -> list[str]:
    """A `{` alone on its line opens a block for the statement on the line before."""
    siblings = stack[-1].children
    if not siblings or siblings[-1].is_block:
        raise _fail(file, number, "'{' without a keyword before it")
    previous = siblings.pop()
    return list(previous.words)


# --- INI files of OpenStack services (oslo.config's parser) ------------------------------------

@dataclass(frozen=True)
class IniValue:
    value: str
    line: int


@dataclass(frozen=True)
class IniFile:
    file: str
    sections: dict[str, dict[str, IniValue]]
    section_lines: dict[str, int]

    def get(self, section: str, key: str) -> IniValue | None:
        return self.sections.get(section, {}).get(key)

    def first(self, section: str, *keys: str) -> tuple[str, IniValue] | None:
        """The first of several names of one option that is set (new name, then old)."""
        for key in keys:
            value = self.get(section, key)
            if value is not None:
                return key, value
        return None


class _OsloIniReader(iniparser.BaseParser):
    def __init__(self, file: str):
        self.file = file
        self.section = ""
        self.sections: dict[str, dict[str, IniValue]] = {}
        self.section_lines: dict[str, int] = {}
        self._key_line = 0

    def _split_key_value(self, line: str) -> tuple[str, list[str]]:
        # The line an assignment starts on: oslo.config reports it only once a continuation
        # has been read, so it is remembered here.
        self._key_line = self.lineno
        return super()._split_key_value(line)

    def new_section(self, section: str) -> None:
        self.section = section
        self.sections.setdefault(section, {})
        self.section_lines.setdefault(section, self.lineno)

    def assignment(self, key: str, value: list[str]) -> None:
        if not self.section:
            raise iniparser.ParseError("option outside any [section]", self._key_line, key)
        self.sections[self.section][key] = IniValue("\n".join(value), self._key_line)


def parse_oslo_ini(text: str, file: str) -> IniFile:
    reader = _OsloIniReader(file)
    try:
        reader.parse(text.splitlines())
    except iniparser.ParseError as exc:
        raise _fail(file, exc.lineno, exc.msg) from None
    return IniFile(file, reader.sections, reader.section_lines)


# --- MySQL / MariaDB option files (my.cnf, galera.cnf) ------------------------------------------

def parse_mysql_options(text: str, file: str) -> IniFile:
    """MariaDB's option-file grammar: `[group]`, `name`, `name = value` (quotes stripped, `-`
    and `_` alike, `loose-` prefixes ignored), `#`/`;` comments, `!include` directives kept
    out of the options."""
    sections: dict[str, dict[str, IniValue]] = {}
    section_lines: dict[str, int] = {}
    group = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;" or line.startswith("!"):
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise _fail(file, number, f"malformed group header {line!r}")
            group = line[1:-1].strip()
            sections.setdefault(group, {})
            section_lines.setdefault(group, number)
            continue
        if not group:
            raise _fail(file, number, "option outside any [group]")
        name, _, value = line.partition("=")
        name = name.strip().lower().replace("-", "_").removeprefix("loose_")
        sections[group][name] = IniValue(_option_value(value.strip()), number)
    return IniFile(file, sections, section_lines)


def _option_value(value: str) -> str:
    if value and value[0] in "\"'":
        end = value.find(value[0], 1)
        return value[1:end] if end > 0 else value[1:]
    return re.split(r"\s+#", value, maxsplit=1)[0].strip()


# --- rabbitmq.conf (sysctl format) --------------------------------------------------------------

@dataclass(frozen=True)
class KeyValueFile:
    file: str
    values: dict[str, IniValue]

    def matching(self, pattern: str) -> list[tuple[str, IniValue]]:
        return [(k, v) for k, v in self.values.items() if re.fullmatch(pattern, k)]


def parse_rabbitmq_conf(text: str, file: str) -> KeyValueFile:
    """rabbitmq.conf: one `dotted.key = value` per line, `#` comments."""
    values: dict[str, IniValue] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise _fail(file, number, "expected 'key = value'")
        values[key.strip()] = IniValue(value.split(" #", 1)[0].strip(), number)
    return KeyValueFile(file, values)


# --- Ansible INI inventory ----------------------------------------------------------------------

@dataclass(frozen=True)
class InventoryHost:
    name: str
    line: int
    variables: dict[str, str]


@dataclass(frozen=True)
class Inventory:
    file: str
    hosts: dict[str, dict[str, InventoryHost]]     # group -> host name -> host
    children: dict[str, tuple[str, ...]]           # group -> child groups
    group_lines: dict[str, int]

    def hosts_of(self, group: str) -> list[InventoryHost]:
        """Every host of a group and of its children, in file order, each once."""
        seen: dict[str, InventoryHost] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in path:
                return
            for host in self.hosts.get(name, {}).values():
                seen.setdefault(host.name, host)
            for child in self.children.get(name, ()):
                visit(child, (*path, name))

        visit(group, ())
        return list(seen.values())


def parse_inventory(text: str, file: str) -> Inventory:
    """Ansible's INI inventory: `[group]` host lines (`name key=value ...`, ranges such as
    `control[01:03]`), `[group:children]` group lines, `[group:vars]` ignored here."""
    hosts: dict[str, dict[str, InventoryHost]] = {}
    children: dict[str, list[str]] = {}
    group_lines: dict[str, int] = {}
    group, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise _fail(file, number, f"malformed group header {line!r}")
            group, _, kind = line[1:-1].partition(":")
            kind = kind or "hosts"
            if kind not in ("hosts", "children", "vars"):
                raise _fail(file, number, f"unknown group section ':{kind}' "
                                          "(expected :children or :vars)")
            group_lines.setdefault(group, number)
            if kind == "children":
                children.setdefault(group, [])
            elif kind == "hosts":
                hosts.setdefault(group, {})
            continue
        if kind == "vars":
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise _fail(file, number, f"cannot split the line: {exc}") from None
        if kind == "children":
            children.setdefault(group, []).append(words[0])
            continue
        variables = {}
        for word in words[1:]:
            key, sep, value = word.partition("=")
            if not sep:
                raise _fail(file, number, f"'{word}' is not a key=value host variable")
            variables[key] = value
        for name in _expand_range(words[0], file, number):
            hosts.setdefault(group, {})[name] = InventoryHost(name, number, variables)
    return Inventory(file, hosts, {g: tuple(c) for g, c in children.items()}, group_lines)


def _expand_range(pattern: str, file: str, line: int) -> list[str]:
    match = re.search(r"\[([0-9a-z]+):([0-9a-z]+)\]", pattern)
    if match is None:
        return [pattern]
    start, end = match.group(1), match.group(2)
    head, tail = pattern[:match.start()], pattern[match.end():]
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        values = [str(i).zfill(width) for i in range(int(start), int(end) + 1)]
    elif len(start) == len(end) == 1:
        values = [chr(c) for c in range(ord(start), ord(end) + 1)]
    else:
        raise _fail(file, line, f"cannot expand the host range '{pattern}'")
    return [name for value in values for name in _expand_range(head + value + tail, file, line)]
