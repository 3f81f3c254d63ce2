"""`hastack keys rotate`: rotate Keystone's Fernet token keys of a running lab.

`hastack.cli` loads `keys` (a click group) on first use. Rotation happens in the lab's
state dir (the one authoritative repository) and the result is copied whole to every
Keystone node; tokens issued before stay valid until their key is purged
(`max_active_keys` rotations later).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from hastack.cli.lab import _cloud, cloud_option
from hastack.errors import LabError


@click.group("keys")
def keys() -> None:
    """Keystone's Fernet keys of the lab (one key repository, identical on every controller).

    \b
    Example:
      sudo hastack keys rotate
    """


@keys.command("rotate")
@cloud_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def rotate(cloud_file: Path | None, fmt: str) -> None:
    """Rotate the Fernet token keys and copy them to every Keystone node.

    \b
    Example:
      sudo hastack keys rotate
    """
    def run() -> dict[str, object]:
        # Lab-only imports (cryptography, from the `lab` extra) only when a lab is used.
        from hastack.deploy.lab.lab import Lab
        from hastack.deploy.lab.preflight import require_root
        from hastack.deploy.systems.keystone import rotate_keys

        require_root()
        cloud, path = _cloud(cloud_file)
        lab = Lab(cloud, path)
        lab.render(write=False)
        missing = lab.attach_running()
        if not lab.nodes:
            raise LabError(f"lab {cloud.name} is not up: run `hastack up`")
        result = rotate_keys(lab.site())
        result["not_running"] = missing
        return result

    result = run()
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"new primary key {result['primary']} (keys {result['keys']}); copied to "
                   f"{', '.join(result['nodes'])}")  # type: ignore[arg-type]
        if result["not_running"]:
            click.echo(f"not running (copy at their next `hastack up`): "
                       f"{', '.join(result['not_running'])}", err=True)  # type: ignore[arg-type]
    sys.exit(0)
