"""The one Jinja environment renderers share: strict (an undefined name is a bug, not an
empty string) and whitespace-stable (re-rendering gives byte-identical files)."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("hastack.render", "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render_template(system: str, name: str, **values: Any) -> str:
    return environment().get_template(f"{system}/{name}").render(**values)
