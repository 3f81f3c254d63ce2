"""Stage 4: render — the plan turned into the real configuration files of every node.

Pure: `render_cloud(plan, secrets)` returns `RenderedFile`s (node, path, content); writing them
is `hastack.deploy.files`' job. One module per external system (`haproxy.py`, `keepalived.py`,
`galera.py`, ...), each exposing `secrets_needed(plan)` and `render(ctx)`; templates live in
`templates/<system>/`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType

from hastack.errors import RenderError
from hastack.model.cloud import Sizing
from hastack.plan import Plan
from hastack.render.budget import Budget, make_budget
from hastack.render.secrets import SecretSpec
from hastack.render.sizing import PROFILES, SizingProfile, profile

# Render order; each name is a module of this package named after the system it configures.
SYSTEMS: tuple[str, ...] = (
    "system", "tls", "haproxy", "keepalived", "galera", "rabbitmq", "memcached", "redis",
    "pacemaker", "openstack", "wsgi", "systemd",
)


@dataclass(frozen=True)
class RenderedFile:
    node: str
    path: str              # relative to the node's root, e.g. "etc/haproxy/haproxy.cfg"
    content: str | bytes   # bytes only for binary files (a corosync authkey)
    system: str
    mode: int = 0o644
    owner: str = "root"    # user the deployer gives the file to (e.g. rabbitmq's cookie)


@dataclass(frozen=True)
class RenderContext:
    plan: Plan
    budget: Budget
    secrets: Mapping[str, str]
    sizing: SizingProfile = PROFILES[Sizing.production]

    def secret(self, name: str) -> str:
        try:
            return self.secrets[name]
        except KeyError:
            raise RenderError(f"secret '{name}' was not generated (its renderer's "
                              "secrets_needed() does not declare it)") from None

    def address(self, node: str) -> str:
        return str(self.plan.cloud.node(node).ip)


def system_modules() -> list[ModuleType]:
    """The renderer modules that exist (systems are added one module at a time)."""
    modules = []
    for name in SYSTEMS:
        try:
            modules.append(importlib.import_module(f"hastack.render.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"hastack.render.{name}":
                raise
    return modules


def secret_specs(plan: Plan) -> list[SecretSpec]:
    """Every secret the renderers of this plan need."""
    specs: dict[str, SecretSpec] = {}
    for module in system_modules():
        for spec in module.secrets_needed(plan):
            specs.setdefault(spec.name, spec)
    return list(specs.values())


def render_cloud(plan: Plan, secrets: Mapping[str, str],
                 sizing: Sizing = Sizing.production) -> list[RenderedFile]:
    """Every node's files. `sizing` is the caller's default profile (the lab passes `lab`);
    a cloud file that pins `settings.sizing` wins."""
    whole = plan.full_cloud
    if whole.partitioned:
        what = " and ".join(part for part, present in (
            (f"{len(whole.regions) + 1} regions", whole.regions),
            (f"{len(whole.cells)} Nova cell(s)", whole.cells)) if present)
        raise RenderError(
            f"cloud '{whole.name}' has {what}: render writes one control plane with one "
            "database and message bus, and does not yet write per-region or per-cell "
            "configuration; `hastack plan` and `hastack check` cover it (render each region "
            "as its own cloud file)")
    ctx = RenderContext(plan, make_budget(plan.cloud), secrets,
                        profile(plan.cloud.settings.sizing, sizing))
    files: list[RenderedFile] = []
    for module in system_modules():
        files.extend(module.render(ctx))
    seen: set[tuple[str, str]] = set()
    for f in files:
        if (f.node, f.path) in seen:
            raise RenderError(f"two renderers wrote {f.node}:{f.path}")
        seen.add((f.node, f.path))
    return sorted(files, key=lambda f: (f.node, f.path))
