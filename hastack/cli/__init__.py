"""The `hastack` command line: thin commands over the stages (model, plan, checks, render, lab).

Expected failures (HastackError) print one line each and exit 2; anything else is a bug: its
traceback goes to a debug log and the user gets a one-line pointer to it.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
import textwrap
import traceback
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hastack.checks import Finding, all_rules, has_errors, run_checks
from hastack.errors import HastackError, LabError, RenderError
from hastack.model import Cloud, load_cloud
from hastack.plan import Plan, make_plan

DEMO_CLOUD = "demo.yaml"
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}

console = Console()
err_console = Console(stderr=True)


def bundled_example(name: str = DEMO_CLOUD) -> Path:
    return Path(str(resources.files("hastack").joinpath("examples", name)))


def cloud_argument(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument(
        "cloud_file", required=False, type=click.Path(dir_okay=False, path_type=Path),
    )(func)


def load(cloud_file: Path | None) -> Cloud:
    if cloud_file is None:
        cloud_file = bundled_example()
        err_console.print(f"[dim]using the bundled demo cloud {cloud_file}[/dim]")
    return load_cloud(cloud_file)


format_option = click.option(
    "--format", "output_format", type=click.Choice(["text", "json"]), default="text",
    show_default=True, help="text for people, json for programs",
)


# The lab's commands live beside their stage (name -> module, attribute). They are imported
# only when used (or listed by --help), so that plan/check/render start without loading the lab
# and a plain install (no `lab` extra) runs them.
LAB_COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("hastack.cli.lab", "up"),
    "status": ("hastack.cli.lab", "status"),
    "down": ("hastack.cli.lab", "down"),
    "exec": ("hastack.cli.lab", "exec_cmd"),
    "recover": ("hastack.cli.recover", "recover_cmd"),
    "keys": ("hastack.cli.keys", "keys"),
    "chaos": ("hastack.cli.chaos", "chaos"),
    "demo": ("hastack.cli.chaos", "demo"),
    # Not lab commands, but they read chaos results: loaded on use like them.
    "report": ("hastack.cli.report", "report_cmd"),
    "availability": ("hastack.cli.report", "availability_cmd"),
}
# Other stages' commands, loaded the same way: `hastack import` reads existing clouds.
STAGE_COMMANDS: dict[str, tuple[str, str]] = {
    "import": ("hastack.cli.importing", "import_group"),
    # Real hosts through Ansible: ansible-core (the ansible extra) is needed only by deploy.
    "inventory": ("hastack.cli.ansible", "inventory"),
    "deploy": ("hastack.cli.ansible", "deploy"),
}


class HastackGroup(click.Group):
    """Turns expected errors into one-line messages (exit 2) and bugs into a debug log; loads
    the lab's commands on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAB_COMMANDS, *STAGE_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and (cmd_name in LAB_COMMANDS or cmd_name in STAGE_COMMANDS):
            command = _load_lab_command(cmd_name)
            self.add_command(command, cmd_name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HastackError as exc:
            for line in exc.lines():
                err_console.print(f"[bold red]error:[/bold red] {escape(line)}", highlight=False,
                                  soft_wrap=True)
            sys.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)
        except Exception:
            log = Path(tempfile.gettempdir()) / "hastack-debug.log"
            log.write_text(traceback.format_exc())
            err_console.print(f"[bold red]internal error[/bold red]: this is a hastack bug; the "
                              f"details are in {log} — please report them")
            sys.exit(70)


@click.group(cls=HastackGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hastack")
def cli() -> None:
    """hastack: plan, check, render, run and break the classic OpenStack HA control plane.

    \b
    The data flows one way:
      cloud.yaml -> plan -> check -> render -> lab (up/status/down)
    Start with:
      hastack check examples/demo.yaml
      hastack plan examples/demo.yaml
      hastack render examples/demo.yaml -o out/
    Every command takes --help.
    """


def _load_lab_command(name: str) -> click.Command:
    module_name, attribute = LAB_COMMANDS.get(name) or STAGE_COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        if missing.split(".")[0] == "hastack":
            raise
        return _needs_lab_extra(name, missing)
    command: click.Command = getattr(module, attribute)
    return command


def _needs_lab_extra(name: str, missing: str) -> click.Command:
    """Stands in for a lab command whose dependencies are not installed."""
    message = (f"`hastack {name}` needs the Python package {missing}: install the lab extra "
               "(pip install 'hastack[lab]', or scripts/setup.sh)")

    def refuse(**_: Any) -> None:
        raise LabError(message)

    return click.Command(
        name, callback=refuse, context_settings={"ignore_unknown_options": True},
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        help=f"(not installed) {message}.\n\n\b\nExample:\n  pip install 'hastack[lab]'",
        short_help="(needs the lab extra: pip install 'hastack[lab]')")


# --- plan -------------------------------------------------------------------------------------

@cli.command()
@cloud_argument
@format_option
@click.option("--capacity", "show_capacity", is_flag=True,
              help="show the load of every cell, message bus, database, frontend and "
                   "segment against its limit instead")
def plan(cloud_file: Path | None, output_format: str, show_capacity: bool) -> None:
    """Show where every process runs, its mode and HA strategy, and what guards it.

    A cloud with regions, cells or zones also gets tables of its regions (and what they
    share), Nova cells (conductors, database, message bus) and availability zones.
    --capacity prints how far each cluster is from its limit (the bundled limits and their
    sources are hastack/catalog/capacity.yaml; `hastack check --long` cites them; override
    any of them under `capacity:` in the cloud file).

    \b
    CLOUD_FILE defaults to the bundled 3-controller demo.
    Example:
      hastack plan examples/split-roles.yaml
      hastack plan examples/regions.yaml
      hastack plan examples/regions.yaml --capacity
      hastack plan examples/demo.yaml --format json | jq '.processes[0]'
    """
    the_plan = make_plan(load(cloud_file))
    if show_capacity:
        from hastack.cli.scale import print_capacity

        if output_format == "json":
            from hastack.plan.capacity import cluster_loads

            click.echo(json.dumps([
                {"cluster": c.scope, "limit_on": c.limit_id, "load": c.load, "limit": c.limit,
                 "used": round(c.used, 4), "state": c.state} for c in cluster_loads(the_plan)
            ], indent=2))
        else:
            print_capacity(console, the_plan)
        return
    if output_format == "json":
        click.echo(json.dumps(the_plan.as_dict(), indent=2))
        return
    for control in the_plan.control_planes:
        if len(the_plan.control_planes) > 1:
            console.print(f"[bold]region {control.region}[/bold]")
        print_plan(control)
    if the_plan.layered:
        from hastack.cli.scale import print_layout

        print_layout(console, the_plan)


def print_plan(the_plan: Plan) -> None:
    cloud = the_plan.cloud
    console.print(f"[bold]{cloud.name}[/bold]: {cloud.architecture.value} architecture, "
                  f"{len(cloud.nodes)} nodes, {len(the_plan.processes)} processes")
    table = Table(show_lines=False)
    for column in ("service", "process", "mode", "strategy", "nodes", "guarded by"):
        table.add_column(column, overflow="fold")
    for p in the_plan.processes:
        nodes = _short_list(p.nodes)
        if p.active_node:
            nodes = f"{nodes} (active {p.active_node})"
        table.add_row(p.service, p.process, p.mode, p.strategy, nodes, "\n".join(p.guards))
    console.print(table)
    vips = Table(title="VIPs")
    for column in ("VIP", "address", "moved by", "candidates", "frontends"):
        vips.add_column(column, overflow="fold")
    for v in the_plan.vips:
        vips.add_row(v.name, str(v.address), v.mechanism, ", ".join(v.candidates),
                     ", ".join(v.frontends))
    console.print(vips)
    for process, reason in the_plan.unplaced:
        console.print(f"[dim]not placed: {process} ({reason})[/dim]")


def _short_list(names: tuple[str, ...], limit: int = 6) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} … (+{len(names) - limit})"


# --- check ------------------------------------------------------------------------------------

@cli.command()
@cloud_argument
@format_option
@click.option("-l", "--long", "long_form", is_flag=True,
              help="also show how to fix each finding and where its rule comes from")
@click.option("--rules", "list_rules", is_flag=True, help="list every rule and exit")
def check(cloud_file: Path | None, output_format: str, long_form: bool, list_rules: bool) -> None:
    """Lint a cloud's HA design: SPOFs, quorum, split brain, unsafe back ends, fencing...

    Prints one line per finding, `SEVERITY RULE SUBJECT: MESSAGE`, errors first; --long adds
    each finding's fix and source (the documents its rule comes from).
    Exit status: 1 when any finding is an error, 0 otherwise (2 for a bad cloud file).

    \b
    Example:
      hastack check examples/broken.yaml
      hastack check examples/broken.yaml --long
      hastack check examples/demo.yaml --format json
      hastack check --rules
    """
    if list_rules:
        _print_rules(output_format)
        return
    findings = run_checks(make_plan(load(cloud_file)))
    if output_format == "json":
        click.echo(json.dumps({"findings": [f.as_dict() for f in findings]}, indent=2))
    else:
        print_findings(findings, long_form)
    sys.exit(1 if has_errors(findings) else 0)


def finding_line(f: Finding) -> Text:
    """`error quorum-too-small galera: Galera has 2 voting member(s) ...`, as linters print."""
    line = Text(f.severity, style=SEVERITY_STYLE[f.severity])
    line.append(f" {f.rule} ")
    line.append(f.subject, style="bold")
    line.append(f": {f.message}")
    return line


def print_findings(findings: list[Finding], long_form: bool = False) -> None:
    """One unwrapped line per finding (a long message runs on: grep and less keep it whole);
    the long form adds the fix and the source, indented, wrapped to the terminal."""
    if not findings:
        console.print("[green]no findings[/green]")
        return
    for f in findings:
        console.print(finding_line(f), soft_wrap=True, highlight=False)
        if long_form:
            for label, text in (("fix", f.fix), ("source", f.source)):
                if text:
                    wrapped = textwrap.fill(f"{label}: {text}", width=max(40, console.width),
                                            initial_indent="    ", subsequent_indent="      ",
                                            break_on_hyphens=False)
                    console.print(Text(wrapped, style="dim"), soft_wrap=True, highlight=False)
    counts = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITY_STYLE}
    summary = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items())
    if not long_form:
        summary += " (--long shows fixes and sources)"
    console.print(summary, highlight=False)


def _print_rules(output_format: str) -> None:
    rules = all_rules()
    if output_format == "json":
        click.echo(json.dumps([{"rule": r.id, "severity": r.severity, "summary": r.summary,
                                "source": r.source} for r in rules], indent=2))
        return
    from hastack.report.tables import COMPACT

    # A rule id is what users type (in an ignore list, a search): never cut or wrapped.
    table = Table(**COMPACT)
    table.add_column("rule", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    for column in ("checks that", "source"):
        table.add_column(column, overflow="fold")
    for r in rules:
        table.add_row(r.id, r.severity, r.summary, r.source)
    console.print(table)


# --- catalog ----------------------------------------------------------------------------------

@cli.command()
@format_option
def catalog(output_format: str) -> None:
    """List every control-plane process with its mode, strategy, ports and what the references
    say about it (RDO keepalived HA architecture, OpenStack for Architects, the HA Guide).

    \b
    Example:
      hastack catalog
      hastack catalog --format json
    """
    from hastack.catalog import load_catalog

    data = load_catalog()
    if output_format == "json":
        click.echo(json.dumps(data.model_dump(mode="json", exclude_none=True), indent=2))
        return
    print_catalog(data)


def print_catalog(data: Any) -> None:
    """A listing rather than a table, to stay readable in 80 columns: per service, one line
    per process (mode, strategy, roles), then its ports and what each reference says, indented
    and wrapped."""
    from hastack.catalog import reference

    width = max(40, console.width)
    name_width = max(len(p.process) for p in data.processes)
    strategy_width = max(len(p.strategy) for p in data.processes)

    def dim(text: str, indent: str = "      ") -> None:
        console.print(Text(textwrap.fill(text, width=width, initial_indent=indent,
                                         subsequent_indent=indent + "  ",
                                         break_on_hyphens=False), style="dim"),
                      soft_wrap=True, highlight=False)

    def row(process: str, mode: str, strategy: str, roles: str) -> str:
        return f"  {process:<{name_width}}  {mode:<4}  {strategy:<{strategy_width}}  {roles}"

    console.print(Text(row("process", "mode", "strategy", "roles"), style="bold"),
                  soft_wrap=True)
    service = None
    for p in data.processes:
        if p.service != service:
            service = p.service
            console.print(Text(service, style="bold"))
        console.print(row(p.process, p.mode, p.strategy, ", ".join(r.value for r in p.roles)),
                      soft_wrap=True, highlight=False)
        if p.ports:
            dim("ports " + ", ".join(f"{port.port} {port.name}" for port in p.ports))
        for s in p.seeds:
            dim(f"{reference(s.seed).short}: "
                + " ".join(x for x in (s.mode, s.strategy, s.note) if x))
        if p.retired:
            dim(f"retired upstream: {p.retired}")


# --- render -----------------------------------------------------------------------------------

@cli.command()
@cloud_argument
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="directory to write OUT/<node>/<real path> files into")
@click.option("--force", is_flag=True, help="render even when `hastack check` finds errors")
def render(cloud_file: Path | None, out_dir: Path, force: bool) -> None:
    """Write the real configuration files of every node, and print the HA timing budget.

    Files land under OUT/<node>/ at their real paths (e.g. OUT/ctl1/etc/haproxy/haproxy.cfg).
    Secrets are generated once into OUT/secrets.yaml (mode 0600) and reused: re-rendering an
    unchanged cloud changes no file. They include the cloud's CA and the public VIP's TLS
    certificate (settings.tls), made again when the VIP's address or name changes or
    they near their end.

    \b
    Example:
      hastack render examples/demo.yaml -o out/
      hastack render examples/broken.yaml -o out/ --force
    """
    from hastack.deploy.files import read_secrets, write_secrets, write_tree
    from hastack.render import render_cloud, secret_specs
    from hastack.render.budget import make_budget
    from hastack.render.secrets import complete

    the_plan = make_plan(load(cloud_file))
    findings = run_checks(the_plan)
    if has_errors(findings) and not force:
        errors = [f for f in findings if f.severity == "error"]
        raise RenderError(
            f"{len(errors)} check error(s) ({', '.join(sorted({f.rule for f in errors}))}); "
            "run `hastack check` to see them, or pass --force to render anyway"
        )
    secrets = complete(read_secrets(out_dir), secret_specs(the_plan))
    files = render_cloud(the_plan, secrets)
    secrets_changed = write_secrets(out_dir, secrets)
    report = write_tree(out_dir, files)

    table = Table(title=f"rendered into {out_dir}")
    for column in ("node", "files", "changed", "systems"):
        table.add_column(column)
    by_node: dict[str, list[Any]] = {}
    for f in files:
        by_node.setdefault(f.node, []).append(f)
    written = {str(p) for p in report.written}
    for node, node_files in by_node.items():
        changed = sum(1 for f in node_files if str(out_dir / f.node / f.path) in written)
        table.add_row(node, str(len(node_files)), str(changed),
                      ", ".join(sorted({f.system for f in node_files})))
    console.print(table)
    print_budget(make_budget(the_plan.cloud))
    state = "written" if secrets_changed else "unchanged"
    console.print(f"{len(report.written)} file(s) written, {len(report.unchanged)} unchanged; "
                  f"secrets {state} in {out_dir / 'secrets.yaml'} (0600)")


def print_budget(budget: Any) -> None:
    table = Table(title=f"HA timing budget (target {budget.target_s:g} s)")
    for column in ("mechanism", "detects", "settings", "after"):
        table.add_column(column, overflow="fold")
    for t in budget.timings():
        table.add_row(t.mechanism, t.detects, t.settings, f"{t.detection_s:g} s")
    console.print(table)


def main() -> None:
    cli(prog_name="hastack")
