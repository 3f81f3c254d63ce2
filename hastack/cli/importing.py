"""`hastack import kolla|configs`: lint a cloud that already exists.

Thin commands over hastack.importers: read the files, print every finding at the file and
line its fact came from, optionally write the cloud model they describe.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import click
from rich.text import Text

from hastack.cli import SEVERITY_STYLE, console
from hastack.importers import Imported, cloud_yaml

output_option = click.option(
    "-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path),
    help="also write the imported cloud model here (a cloud.yaml `hastack check` reads)")
format_option = click.option(
    "--format", "output_format", type=click.Choice(["text", "json"]), default="text",
    show_default=True, help="text for people, json for programs")
long_option = click.option("-l", "--long", "long_form", is_flag=True,
                           help="also show how to fix each finding and where its rule comes "
                                "from, and what was assumed")
target_option = click.option(
    "--target", "target_s", type=click.FloatRange(0.1, 60), default=2.0, show_default=True,
    help="failover target in seconds that check and client timings are judged against")
name_option = click.option("--name", help="the cloud's name in the model (default: derived)")


@click.group("import")
def import_group() -> None:
    """Lint a cloud that already exists: read its files, turn them into a cloud model, run
    the checks, and point every finding at the file and line it came from.

    \b
    Example:
      hastack import kolla --inventory multinode --globals /etc/kolla/globals.yml
      hastack import configs collected/ -o cloud.yaml
    """


@import_group.command("kolla")
@click.option("--inventory", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="the Kolla-Ansible inventory (INI, e.g. multinode)")
@click.option("--globals", "globals_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="globals.yml (settings left commented out are Kolla-Ansible's defaults)")
@click.option("--passwords", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="passwords.yml (optional: only whether keepalived_password is set)")
@output_option
@format_option
@long_option
@target_option
@name_option
def kolla(inventory: Path, globals_file: Path, passwords: Path | None, output: Path | None,
          output_format: str, long_form: bool, target_s: float, name: str | None) -> None:
    """Lint a Kolla-Ansible deployment from its inventory and globals.yml.

    Inventory groups become roles (control, network, compute, storage, loadbalancer,
    mariadb, rabbitmq); globals.yml gives the VIPs, the enabled services and what
    Kolla-Ansible renders from its settings. Exit status: 1 when a finding is an error,
    0 otherwise, 2 when a file cannot be read.

    \b
    Example:
      hastack import kolla --inventory multinode --globals globals.yml
      hastack import kolla --inventory multinode --globals globals.yml \\
          --passwords passwords.yml -o cloud.yaml --long
    """
    from hastack.importers.kolla import import_kolla

    report(import_kolla(inventory, globals_file, passwords, name, target_s), output,
           output_format, long_form)


@import_group.command("configs")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@output_option
@format_option
@long_option
@target_option
@name_option
def configs(directory: Path, output: Path | None, output_format: str, long_form: bool,
            target_s: float, name: str | None) -> None:
    """Lint the configuration files collected from a cloud's hosts.

    DIRECTORY holds one sub-directory per host (the layout `hastack render` writes);
    haproxy.cfg, keepalived.conf, my.cnf/galera.cnf, rabbitmq.conf, memcached.conf,
    neutron.conf, l3_agent.ini, dhcp_agent.ini, keystone.conf, nova.conf, ... are found by
    name anywhere below each. Exit status: 1 when a finding is an error, 0 otherwise, 2 when
    a file cannot be parsed.

    \b
    Example:
      mkdir -p collected/ctl1 && scp -r ctl1:/etc collected/ctl1/
      hastack import configs collected/
      hastack import configs collected/ -o cloud.yaml --format json
    """
    from hastack.importers.configs import import_configs

    report(import_configs(directory, name, target_s), output, output_format, long_form)


def report(imported: Imported, output: Path | None, output_format: str,
           long_form: bool) -> None:
    if output is not None:
        output.write_text(cloud_yaml(imported), encoding="utf-8")
    if output_format == "json":
        click.echo(json.dumps({
            "cloud": imported.cloud.name,
            "findings": [f.as_dict() for f in imported.findings],
            "not_judged": [f.rule for f in imported.unplaced],
            "notes": [{"file": o.file, "line": o.line, "note": n}
                      for o, n in imported.facts.notes],
        }, indent=2))
    else:
        print_imported(imported, long_form)
        if output is not None:
            console.print(f"cloud model written to {output}", highlight=False)
    sys.exit(1 if imported.has_errors() else 0)


def print_imported(imported: Imported, long_form: bool) -> None:
    """One unwrapped line per finding, FILE:LINE first (as compilers print, so editors jump
    to it); the long form adds fixes, sources and what was assumed."""
    cloud = imported.cloud
    console.print(f"[bold]{cloud.name}[/bold]: {len(cloud.nodes)} nodes, "
                  f"{len(cloud.services)} services, VIPs "
                  + ", ".join(f"{n} {a}" for n, a in cloud.vips.items()), highlight=False)
    width = max(40, console.width)
    for placed in imported.findings:
        f = placed.finding
        line = Text(f"{placed.origin}: ")
        line.append(f.severity, style=SEVERITY_STYLE[f.severity])
        line.append(f" {f.rule} ")
        line.append(f.subject, style="bold")
        line.append(f": {f.message}")
        console.print(line, soft_wrap=True, highlight=False)
        if long_form:
            for label, text in (("fix", f.fix), ("source", f.source)):
                if text:
                    console.print(Text(textwrap.fill(
                        f"{label}: {text}", width=width, initial_indent="    ",
                        subsequent_indent="      ", break_on_hyphens=False), style="dim"),
                        soft_wrap=True, highlight=False)
    counts = {s: sum(1 for f in imported.findings if f.finding.severity == s)
              for s in SEVERITY_STYLE}
    summary = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items())
    if not imported.findings:
        summary = "no findings"
    console.print(summary + ("" if long_form else " (--long shows fixes, sources and "
                                                   "assumptions)"), highlight=False)
    if imported.unplaced:
        rules = sorted({f.rule for f in imported.unplaced})
        console.print(Text(f"not judged from these files (nothing in them says): "
                           f"{', '.join(rules)}", style="dim"), soft_wrap=True)
    if long_form:
        for origin, note in imported.facts.notes:
            console.print(Text(textwrap.fill(f"assumed: {origin}: {note}", width=width,
                                             subsequent_indent="  ", break_on_hyphens=False),
                               style="dim"), soft_wrap=True, highlight=False)
