"""The layering, checked by real tools: import-linter's contracts (pyproject.toml) and grimp.

Data flows one way (model -> plan -> checks -> render -> deploy -> chaos -> report, the
command line on top); inside deploy the deployers sit on the orchestrator and the systems on
the execution seam; only the lab deployer knows the lab; and deploy has no import cycle.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and result.stdout.count("KEPT") >= 3


def test_no_import_cycle_inside_deploy() -> None:
    graph = grimp.build_graph("hastack")
    modules = sorted(m for m in graph.modules if m.startswith("hastack.deploy"))
    cycles = []
    for module in modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if not imported.startswith("hastack.deploy") or imported == module:
                continue
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                cycles.append(" -> ".join([module, *back]))
    assert not cycles, "\n".join(cycles)
