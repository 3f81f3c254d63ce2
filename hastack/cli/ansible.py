"""`hastack inventory` and `hastack deploy`: real hosts through Ansible.

Thin click commands over `hastack.deploy.ansible`; `hastack.cli` loads them on first use.
Expected failures (an inventory that does not match the cloud, an unreachable host, a
missing sudo right) reach hastack.cli's HastackGroup: one line each, exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from hastack.deploy.ansible.inventory import inventory_yaml
from hastack.model import load_cloud
from hastack.plan import make_plan

if TYPE_CHECKING:
    from hastack.deploy.ansible.driver import DeploySummary


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


def default_state(cloud_name: str) -> Path:
    return Path.home() / ".hastack" / "hosts" / cloud_name


@click.command("deploy")
@click.argument("cloud_file", metavar="CLOUD", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-i", "--inventory", "inventory_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Ansible inventory (YAML or INI) whose hosts are the cloud's nodes")
@click.option("--check", is_flag=True, help="ask Ansible what would change, change nothing")
@click.option("--diff", is_flag=True, help="show the changes of every file (secrets hidden)")
@click.option("--limit", metavar="HOSTS", help="only these hosts (Ansible's --limit pattern)")
@click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path),
              help="where the cloud's secrets, keys and staged files stay "
                   "(default ~/.hastack/hosts/<cloud>)")
@click.option("--force", is_flag=True, help="deploy even when `hastack check` finds errors")
def deploy(cloud_file: Path, inventory_file: Path, check: bool, diff: bool, limit: str | None,
           state_dir: Path | None, force: bool) -> None:
    """Put the cloud on real hosts with Ansible: packages, rendered files, services in order.

    Renders the cloud, stages it, and runs the playbook hastack ships (one role per system)
    with ansible-playbook over SSH. Services start in protocol order: Galera's first member
    bootstraps and the others join one at a time, each waiting for Synced; RabbitMQ's first
    node, then the others; the caches, Keystone, HAProxy; the VIPs (keepalived) last. A second
    deploy of an unchanged cloud reports changed=0 on every host; a changed setting changes
    only its files and restarts only the services they configure, one host at a time.

    Secrets and keys stay in the state directory (reuse it: new secrets would change every
    host). An inventory that does not match the cloud, an unreachable host or a missing sudo
    right each give one line, exit 2, and a summary of which hosts changed.

    \b
    Example:
      hastack inventory examples/demo.yaml -o inventory.yaml
      hastack deploy examples/demo.yaml -i inventory.yaml --check --diff
      hastack deploy examples/demo.yaml -i inventory.yaml
      hastack deploy examples/demo.yaml -i inventory.yaml --limit ctl2
    """
    from hastack.deploy.ansible.driver import AnsibleDeploy

    console = Console(highlight=False)
    cloud = load_cloud(cloud_file)
    state = state_dir or default_state(cloud.name)
    run = AnsibleDeploy(cloud, make_plan(cloud), inventory_file, state, check=check, diff=diff,
                        limit=limit, force=force, on_line=click.echo)
    summary = run.run()
    print_deploy_summary(summary, console)
    summary.raise_for_failures()


def print_deploy_summary(summary: DeploySummary, console: Console) -> None:
    if not summary.ok:
        what = "[red]not fully deployed[/red] (see below)"
    elif summary.check:
        what = "checked (nothing changed on the hosts)"
    else:
        what = "deployed"
    console.print(f"\nCloud [bold]{summary.cloud}[/bold] {what} in {summary.total_s:.0f} s")
    table = Table(show_header=True, box=None, padding=(0, 2))
    for column in ("host", "changed", "ok", "result"):
        table.add_column(column)
    failed = {f.host: f for f in summary.failures}
    for host in summary.hosts:
        recap = summary.recaps.get(host)
        if host in failed:
            result = f"[red]{failed[host].kind}[/red]"
        elif recap is None:
            result = "outside --limit" if summary.limit else "[yellow]not reached[/yellow]"
        elif recap.failed or recap.unreachable:
            result = "[red]failed[/red]"
        elif summary.check:
            result = "would change" if recap.changed else "unchanged"
        else:
            result = "changed" if recap.changed else "unchanged"
        table.add_row(host, str(recap.changed) if recap else "-",
                      str(recap.ok) if recap else "-", result)
    console.print(table)
    by_reason: dict[str, list[str]] = {}
    for item in summary.not_deployed:
        by_reason.setdefault(item.reason, []).append(item.process)
    for reason, processes in by_reason.items():
        console.print(f"[dim]not deployed ({reason}): {', '.join(processes)}[/dim]")
    console.print(f"[dim]state, secrets and staged files: {summary.state}[/dim]")
