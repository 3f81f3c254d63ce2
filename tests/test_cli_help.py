"""Every command teaches: its --help has an example, and the top-level help lists them all.
Users never see the reference documents' internal ids ("seed 002"): sources are cited by
title, in every help text, the rule list and the catalog. The lab's commands are loaded only
when used."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hastack.cli import LAB_COMMANDS, cli
from tests.conftest import EXAMPLES

COMMANDS = cli.list_commands(click.Context(cli))


def command_paths() -> list[tuple[str, ...]]:
    """Every command and subcommand, e.g. ("check",), ("keys", "rotate")."""
    ctx = click.Context(cli)
    paths: list[tuple[str, ...]] = []
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        paths.append((name,))
        if isinstance(command, click.Group):
            paths += [(name, sub) for sub in command.list_commands(ctx)]
    return paths


def test_every_command_is_listed_including_the_lab() -> None:
    assert {"plan", "check", "catalog", "render", *LAB_COMMANDS} <= set(COMMANDS)


def test_top_level_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_an_example(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"hastack {name} --help shows no example"


def assert_no_seed(args: list[str], expect_exit: tuple[int, ...] = (0,)) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in expect_exit, (args, result.output)
    assert "Traceback" not in result.output
    assert "seed" not in result.output.lower(), (args, result.output)
    return result.output


@pytest.mark.parametrize("path", [(), *command_paths()], ids=lambda p: " ".join(p) or "hastack")
def test_no_help_mentions_seeds(path: tuple[str, ...]) -> None:
    assert_no_seed([*path, "--help"])


def test_rules_and_catalog_cite_documents_by_title() -> None:
    rules = assert_no_seed(["check", "--rules"])
    assert "OpenStack HA Guide" in rules
    rules_json = assert_no_seed(["check", "--rules", "--format", "json"])
    assert "RDO keepalived HA architecture" in rules_json
    catalog = assert_no_seed(["catalog"])
    assert "RDO keepalived" in catalog and "OpenStack for Architects" in catalog


def test_findings_plan_and_rendered_files_cite_no_seed(tmp_path: Path) -> None:
    long_form = assert_no_seed(["check", str(EXAMPLES / "broken.yaml"), "--long"],
                               expect_exit=(1,))
    assert "source: " in long_form
    assert_no_seed(["plan", str(EXAMPLES / "split-roles.yaml")])
    for example in ("demo", "pacemaker", "split-roles"):
        out = tmp_path / example
        assert_no_seed(["render", str(EXAMPLES / f"{example}.yaml"), "-o", str(out)])
        for path in out.rglob("*"):
            if path.is_file() and path.name != "secrets.yaml":
                text = path.read_text(errors="replace")
                assert not re.search(r"seed \d{3}", text, re.IGNORECASE), path


def test_check_plan_render_do_not_load_the_lab(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from hastack.cli import cli\n"
        f"demo = {str(EXAMPLES / 'demo.yaml')!r}\n"
        "for args in (['check', demo], ['plan', demo], "
        f"['render', demo, '-o', {str(tmp_path)!r}], ['catalog']):\n"
        "    result = CliRunner().invoke(cli, args)\n"
        "    assert result.exit_code == 0, (args, result.output)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('hastack.cli.', 'hastack.chaos'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_lab_command_without_its_packages_says_how_to_get_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hastack_test_needs_lab.py").write_text("import no_such_lab_package_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(LAB_COMMANDS, "fake", ("hastack_test_needs_lab", "fake"))
    monkeypatch.setattr(cli, "commands", dict(cli.commands))
    assert "fake" in CliRunner().invoke(cli, ["--help"]).output
    result = CliRunner().invoke(cli, ["fake", "--anything", "x"])
    assert result.exit_code == 2
    assert "no_such_lab_package_xyz" in result.output
    assert "hastack[lab]" in result.output and "Traceback" not in result.output


def test_scenario_list_fits_80_columns_with_every_name_whole() -> None:
    from hastack.chaos.scenarios import SCENARIOS

    result = subprocess.run([sys.executable, "-m", "hastack.cli", "chaos", "--list"],
                            capture_output=True, text=True, env={"COLUMNS": "80", "PATH": ""},
                            check=True)
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    first_column = {line.split()[0].rstrip("*") for line in lines if line[:1].isalpha()}
    assert {s.name for s in SCENARIOS} <= first_column


def test_rule_list_fits_80_columns_with_every_rule_id_whole() -> None:
    from hastack.checks import all_rules

    result = subprocess.run([sys.executable, "-m", "hastack.cli", "check", "--rules"],
                            capture_output=True, text=True, env={"COLUMNS": "80", "PATH": ""},
                            check=True)
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    first_column = {line.split()[0] for line in lines if line[:1].isalpha()}
    assert {r.id for r in all_rules()} <= first_column


def test_bring_up_steps_fit_80_columns_whatever_the_component_name() -> None:
    from io import StringIO

    from rich.console import Console

    from hastack.deploy.progress import RichReporter, StepTime

    out = StringIO()
    reporter = RichReporter(Console(file=out, width=80, no_color=True, highlight=False))
    for component, action in (("ceilometer-notification", "start"),
                              ("ceilometer-central", "members of tooz group central-global"),
                              ("nova", "nova-manage cell_v2 create_cell (on ctl1) --verbose")):
        reporter.step(StepTime("ctl1", component, action, 12.3, 100.0))
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and max(map(len, lines)) <= 80, lines
    assert "ceilometer-notification start" in lines[0]
    assert lines[1].rstrip().endswith("12.3s") and "central-global" in lines[1]
