"""The `hastack` command line: thin commands over the stages (model, plan, checks, render, lab).

Expected failures (HastackError) print one line each and exit 2; anything else is a bug: its
traceback goes to a debug log and the user gets a one-line pointer to it.
"""

from __future__ import annotations

import json
import sys
import tempfile
import traceback
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from hastack.checks import Finding, all_rules, has_errors, run_checks
from hastack.errors import HastackError, RenderError
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


class HastackGroup(click.Group):
    """Turns expected errors into one-line messages (exit 2) and bugs into a debug log."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HastackError as exc:
            for line in exc.lines():
                err_console.print(f"[bold red]error:[/bold red] {line}", highlight=False,
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


# --- plan -------------------------------------------------------------------------------------

@cli.command()
@cloud_argument
@format_option
def plan(cloud_file: Path | None, output_format: str) -> None:
    """Show where every process runs, its mode and HA strategy, and what guards it.

    \b
    CLOUD_FILE defaults to the bundled 3-controller demo.
    Example:
      hastack plan examples/split-roles.yaml
      hastack plan examples/demo.yaml --format json | jq '.processes[0]'
    """
    the_plan = make_plan(load(cloud_file))
    if output_format == "json":
        click.echo(json.dumps(the_plan.as_dict(), indent=2))
        return
    print_plan(the_plan)


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
@click.option("--rules", "list_rules", is_flag=True, help="list every rule and exit")
def check(cloud_file: Path | None, output_format: str, list_rules: bool) -> None:
    """Lint a cloud's HA design: SPOFs, quorum, split brain, unsafe back ends, fencing...

    Exit status: 1 when any finding is an error, 0 otherwise (2 for a bad cloud file).

    \b
    Example:
      hastack check examples/broken.yaml
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
        print_findings(findings)
    sys.exit(1 if has_errors(findings) else 0)


def print_findings(findings: list[Finding]) -> None:
    if not findings:
        console.print("[green]no findings[/green]")
        return
    table = Table(show_lines=True)
    for column in ("severity", "rule", "subject", "finding", "fix"):
        table.add_column(column, overflow="fold")
    for f in findings:
        style = SEVERITY_STYLE[f.severity]
        table.add_row(f"[{style}]{f.severity}[/{style}]", f.rule, f.subject,
                      f"{f.message}\n[dim]{f.source}[/dim]", f.fix)
    console.print(table)
    counts = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITY_STYLE}
    console.print(", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items()))


def _print_rules(output_format: str) -> None:
    rules = all_rules()
    if output_format == "json":
        click.echo(json.dumps([{"rule": r.id, "severity": r.severity, "summary": r.summary,
                                "source": r.source} for r in rules], indent=2))
        return
    table = Table()
    for column in ("rule", "severity", "checks that", "source"):
        table.add_column(column, overflow="fold")
    for r in rules:
        table.add_row(r.id, r.severity, r.summary, r.source)
    console.print(table)


# --- catalog ----------------------------------------------------------------------------------

@cli.command()
@format_option
def catalog(output_format: str) -> None:
    """List every control-plane process of the seeds with its mode, strategy and ports.

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
    table = Table()
    for column in ("service", "process", "mode", "strategy", "roles", "ports", "seeds"):
        table.add_column(column, overflow="fold")
    for p in data.processes:
        seeds = "; ".join(
            f"{s.seed}: " + " ".join(x for x in (s.mode, s.strategy, s.note) if x)
            for s in p.seeds
        )
        table.add_row(p.service, p.process, p.mode, p.strategy,
                      ", ".join(r.value for r in p.roles),
                      ", ".join(str(port.port) for port in p.ports), seeds)
    console.print(table)


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
    unchanged cloud changes no file.

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


# The lab's commands live beside their stage; they are registered here, after `cli` exists.
from hastack.cli_chaos import chaos, demo  # noqa: E402
from hastack.cli_keys import keys  # noqa: E402
from hastack.cli_lab import down, exec_cmd, status, up  # noqa: E402
from hastack.cli_recover import recover_cmd  # noqa: E402

for _command in (up, status, down, exec_cmd, recover_cmd, keys, chaos, demo):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="hastack")


if __name__ == "__main__":
    main()
