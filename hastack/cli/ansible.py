"""`hastack inventory` and `hastack deploy`: real hosts through Ansible.

Thin click commands over `hastack.deploy.ansible`; `hastack.cli` loads them on first use.
Expected failures (an inventory that does not match the cloud, an unreachable host, a
missing sudo right) reach hastack.cli's HastackGroup: one line each, exit 2.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from hastack.deploy.ansible.inventory import inventory_yaml
from hastack.model import load_cloud
from hastack.plan import make_plan


@click.command("inventory")
@click.argument("cloud_file", metavar="CLOUD", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="write the inventory to this file (default: print it)")
def inventory(cloud_file: Path, out_file: Path | None) -> None:
    """Write a standard Ansible inventory (YAML) of a cloud's nodes.

    Hosts are the cloud's nodes (ansible_host: the node's address), grouped by their roles
    in the cloud file (controller, database, ...) and by the system hastack deploys on
    them (galera, rabbitmq, haproxy, keepalived, ...). Edit ansible_host and add
    ansible_user to reach your servers; keep the host names.

    \b
    Example:
      hastack inventory examples/demo.yaml -o inventory.yaml
      hastack deploy examples/demo.yaml --inventory inventory.yaml --check
    """
    text = inventory_yaml(make_plan(load_cloud(cloud_file)))
    if out_file is None:
        click.echo(text, nl=False)
        return
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(text, encoding="utf-8")
    Console(stderr=True, highlight=False).print(f"inventory written to {out_file}")
