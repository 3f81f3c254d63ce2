"""Every command teaches: its --help has an example, and the top-level help lists them all."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hastack.cli import cli

COMMANDS = sorted(cli.commands)


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
