"""Stage 3: the HA linter. Every limitation and rule of the reference documents is a named
rule that reads the plan and yields findings (rule, severity, subject, message, fix).

Pure: a Plan in, findings out. Rules live in `rules.py`, one function each, registered with
`@rule`; their ids, severities and sources are listed by `hastack check --rules`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Literal

from hastack.plan import Plan

Severity = Literal["error", "warning", "info"]
# "control-plane" rules run on each region's plan (their subjects prefixed with the region when
# there are several); "cloud" rules run once, on the whole cloud (regions, cells, segments).
Scope = Literal["control-plane", "cloud"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    subject: str       # the process, component, cluster or node concerned
    message: str       # what is wrong and why (citing the limitation)
    fix: str
    source: str = ""   # where the rule comes from (documents by title, a measured lab fact)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    summary: str
    source: str
    check: Callable[[Plan, Rule], Iterator[Finding]]
    scope: Scope = "control-plane"

    def finding(self, subject: str, message: str, fix: str,
                severity: Severity | None = None) -> Finding:
        return Finding(self.id, severity or self.severity, subject, message, fix, self.source)


RULES: list[Rule] = []


def rule(id: str, severity: Severity, summary: str, source: str,
         scope: Scope = "control-plane"
         ) -> Callable[[Callable[[Plan, Rule], Iterator[Finding]]],
                       Callable[[Plan, Rule], Iterator[Finding]]]:
    def register(check: Callable[[Plan, Rule], Iterator[Finding]]
                 ) -> Callable[[Plan, Rule], Iterator[Finding]]:
        if any(r.id == id for r in RULES):
            raise ValueError(f"rule {id} registered twice")
        RULES.append(Rule(id, severity, summary, source, check, scope))
        return check
    return register


def run_checks(plan: Plan) -> list[Finding]:
    """Every finding of every rule, errors first: the control-plane rules on every region's
    plan, the cloud rules once."""
    _register()
    several = len(plan.control_planes) > 1
    findings: list[Finding] = []
    for r in RULES:
        if r.scope == "cloud":
            findings += r.check(plan, r)
            continue
        for control in plan.control_planes:
            for f in r.check(control, r):
                findings.append(replace(f, subject=f"{control.region}/{f.subject}")
                                if several else f)
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.rule, f.subject))


def _register() -> None:
    from hastack.checks import rules as _rules  # noqa: F401  (registers the rules)
    from hastack.checks import scale as _scale  # noqa: F401


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def all_rules() -> list[Rule]:
    _register()
    return list(RULES)
