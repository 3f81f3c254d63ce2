"""`hastack up / status / down / exec`: thin click commands over `hastack.deploy.lab`.

`hastack.cli` loads `up`, `status`, `down` and `exec_cmd` (named "exec") on first use.
Expected failures (LabError and other HastackErrors) reach hastack.cli's HastackGroup, which
prints them on one line and exits 2.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from hastack.deploy import lab
from hastack.deploy.deployer import print_summary
from hastack.deploy.progress import RichReporter
from hastack.model import Cloud, load_cloud

cloud_option = click.option(
    "--cloud", "cloud_file", type=click.Path(dir_okay=False, path_type=Path),
    default=None, help="cloud.yaml of the lab (default: the bundled demo).")


def _cloud(cloud_file: Path | None) -> tuple[Cloud, str]:
    path = cloud_file or lab.DEFAULT_CLOUD
    return load_cloud(path), str(path)


@click.command("up")
@click.argument("cloud_arg", metavar="[CLOUD]", required=False,
                type=click.Path(dir_okay=False, path_type=Path))
@cloud_option
def up(cloud_arg: Path | None, cloud_file: Path | None) -> None:
    """Bring up the lab: every node of the cloud as Linux namespaces running the real daemons.

    Idempotent: on a running lab it checks, repairs what is missing, and otherwise changes
    nothing. Needs root and the packages of scripts/setup.sh.

    \b
    Example:
      sudo hastack up
      sudo hastack up examples/split-roles.yaml
    """
    console = Console(highlight=False)

    def run() -> None:
        cloud, path = _cloud(cloud_arg or cloud_file)
        console.print(f"Lab [bold]{cloud.name}[/bold] from {path}")
        summary = lab.up(cloud, path, RichReporter(console))
        print_summary(summary, console)
        if not summary.healthy:
            sys.exit(1)
    run()


@click.command("status")
@cloud_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--watch", is_flag=True, help="Refresh every 2 s until Ctrl-C.")
def status(cloud_file: Path | None, fmt: str, watch: bool) -> None:
    """Show the lab per node and component: processes, VIP holders, Galera, RabbitMQ, anomalies.

    Exit status 0 when healthy, 1 when not.

    \b
    Example:
      sudo hastack status
      sudo hastack status --format json | jq .galera.writer
    """
    console = Console(highlight=False)

    def once() -> dict[str, Any]:
        cloud, _ = _cloud(cloud_file)
        return lab.status(cloud).to_json()

    def show(report: dict[str, Any]) -> None:
        if fmt == "json":
            click.echo(json.dumps(report, indent=2, sort_keys=True))
        else:
            _print_status(report, console)

    if not watch:
        report = once()
        show(report)
        sys.exit(0 if report["healthy"] else 1)
    try:
        while True:
            report = once()
            if fmt == "text":
                console.clear()
                console.print(f"[dim]{time.strftime('%H:%M:%S')}  (Ctrl-C to stop)[/dim]")
            show(report)
            time.sleep(2)
    except KeyboardInterrupt:
        pass


def _print_status(report: dict[str, Any], console: Console) -> None:
    verdict = "[green]healthy[/green]" if report["healthy"] else "[red]NOT healthy[/red]"
    console.print(f"Lab [bold]{report['cloud']}[/bold]: {verdict}")
    table = Table("node", "address", "processes")
    for name, node in report["nodes"].items():
        programs = "  ".join(
            f"{p}:[{'green' if s == 'RUNNING' else 'red'}]{s.lower()}[/]"
            for p, s in node["programs"].items())
        table.add_row(name, node.get("address", "-") if node["alive"] else "[red]down[/red]",
                      programs or "-")
    console.print(table)
    for name, holders in report["vip_holders"].items():
        console.print(f"VIP {name} {report['vips'][name]}: {', '.join(holders) or 'nobody'}")
    galera = report.get("galera")
    if galera:
        members = ", ".join(f"{n} {m['state'] or 'down'}" for n, m in galera["members"].items())
        console.print(f"Galera: size {galera['size']}, "
                      f"{'Primary' if galera['primary'] else 'NON-PRIMARY'}, writer "
                      f"{galera['writer']} ({members})")
    cluster = report.get("pacemaker")
    if cluster:
        _print_pacemaker(cluster, console)
    all_down = []
    for backend, servers in report["haproxy"].get("backends", {}).items():
        if servers and all(v["status"] == "DOWN" for v in servers.values()):
            all_down.append(backend)
            continue
        states = ", ".join(f"{s} {v['status']}{' (backup)' if v['backup'] else ''}"
                           for s, v in servers.items())
        console.print(f"HAProxy {backend}: {states}")
    if all_down:
        console.print(f"HAProxy, every back end DOWN: {', '.join(all_down)}")
    for service, rows in (report.get("services") or {}).items():
        if rows is None:
            console.print(f"{service.capitalize()} services: no Galera member answers")
            continue
        by_binary: dict[str, list[str]] = {}
        for s in rows:
            state = "up" if s["up"] else "DOWN"
            by_binary.setdefault(s["binary"], []).append(
                f"{s['host']} {state}{' (disabled)' if s['disabled'] else ''}")
        console.print(f"{service.capitalize()} services: " + "; ".join(
            f"{b} {', '.join(hosts)}" for b, hosts in by_binary.items()))
    rabbit = report.get("rabbitmq")
    if rabbit:
        console.print(f"RabbitMQ running: {', '.join(rabbit['running']) or 'none'}"
                      + (f"; partitions {rabbit['partitions']}" if rabbit["partitions"] else ""))
    if report.get("memcached"):
        console.print(f"memcached: {', '.join(report['memcached'])}")
    if report.get("redis"):
        console.print(f"Redis: master {report['redis']['master']}, sentinels "
                      f"{', '.join(report['redis']['sentinels'])}")
        for group, members in report["redis"].get("tooz_groups", {}).items():
            console.print(f"tooz group {group}: " + ("no answer" if members is None else
                                                     f"{len(members)} live members"))
    for anomaly in report["anomalies"]:
        console.print(f"[red]anomaly:[/red] {anomaly}")
    for row in report["skipped"]:
        console.print(f"[dim]skipped {row['process']} ({row['reason']})[/dim]")


def _print_pacemaker(cluster: dict[str, Any], console: Console) -> None:
    """crm_mon -1, as hastack reads it: nodes, quorum, where each resource runs, failures."""
    quorum = "quorate" if cluster["quorate"] else "[red]NO QUORUM[/red]"
    offline = f", offline {' '.join(cluster['offline'])}" if cluster["offline"] else ""
    console.print(f"Pacemaker ({cluster['reporter']}'s view): {quorum}, online "
                  f"{' '.join(cluster['online']) or 'none'}{offline}")
    placed: dict[str, list[str]] = {}
    for r in cluster["resources"]:
        key = f"{r['id'].split(':')[0]} ({r['agent']})"
        placed.setdefault(key, [])
        if r["role"] == "Started":
            placed[key] += r["nodes"]
    for key, nodes in placed.items():
        # emoji=False: "ocf:heartbeat:IPaddr2" is an agent, not ":heartbeat:".
        console.print(f"  {key}: {' '.join(sorted(nodes)) or '[red]stopped[/red]'}",
                      emoji=False)
    for action in cluster["failed_actions"]:
        console.print(f"  [red]failed:[/red] {action}")
    for event in cluster["fenced"]:
        console.print(f"  fenced: {event}")


@click.command("down")
@cloud_option
@click.option("--purge", is_flag=True,
              help="Also delete the state dir (data dirs, secrets, rendered files).")
def down(cloud_file: Path | None, purge: bool) -> None:
    """Remove every namespace, link, mount and process of the lab, also after a crash.

    Keeps the state dir (data, secrets) unless --purge.

    \b
    Example:
      sudo hastack down
      sudo hastack down --purge
    """
    def run() -> None:
        cloud, _ = _cloud(cloud_file)
        done = lab.down(cloud.name, purge)
        click.echo(f"lab {cloud.name}: " + ("; ".join(done) if done else "nothing to remove"))
    run()


@click.command("exec", context_settings={"ignore_unknown_options": True})
@cloud_option
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_cmd(cloud_file: Path | None, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside NODE's namespaces (like docker exec); its exit status is passed on.

    The node `client` is the lab's workload host.

    \b
    Example:
      sudo hastack exec ctl1 -- supervisorctl status
      sudo hastack exec client -- mariadb -h 198.18.0.100 -u keystone -p
    """
    def run() -> int:
        cloud, _ = _cloud(cloud_file)
        return lab.exec_in(cloud.name, node, command)
    sys.exit(run())
