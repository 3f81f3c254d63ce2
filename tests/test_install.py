"""A plain `pip install .` (no extras) of a clone at a path with spaces gives working
`hastack check`, `plan` and `render`: nothing they import needs the `lab` extra.

Slow (a fresh venv, dependencies from the package index): under a minute. It runs in the
default `pytest`; `--deselect tests/test_install.py` leaves it out.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# What a clone does not have: environments, caches, build output, results of lab runs.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "results", "build", "dist", "*.egg-info", "__pycache__",
    ".pytest_cache", ".mypy_cache", ".ruff_cache",
)
LAB_ONLY = ("keystone", "oslo_messaging", "gunicorn")


def run(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_plain_install_from_a_path_with_spaces(tmp_path: Path) -> None:
    clone = tmp_path / "my clone"
    shutil.copytree(REPO, clone, ignore=NOT_IN_A_CLONE, symlinks=True)
    venv = tmp_path / "plain env"
    made = run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    python, hastack = venv / "bin" / "python", venv / "bin" / "hastack"

    install = run(python, "-m", "pip", "install", "--disable-pip-version-check", "-q", clone,
                  cwd=tmp_path, timeout=900)
    assert install.returncode == 0, install.stdout + install.stderr

    where = run(python, "-c", "import hastack; print(hastack.__file__)", cwd=tmp_path)
    assert str(venv) in where.stdout, where.stdout + where.stderr   # the installed copy
    present = run(python, "-c", "import importlib.util as u; print([m for m in "
                  f"{LAB_ONLY!r} if u.find_spec(m)])", cwd=tmp_path)
    assert present.stdout.strip() == "[]", f"not a plain install: {present.stdout}"

    demo = clone / "examples" / "demo.yaml"
    for args in (["check", demo], ["plan", demo], ["render", demo, "-o", tmp_path / "out dir"],
                 ["catalog"], ["--help"]):
        result = run(hastack, *args, cwd=tmp_path)
        output = result.stdout + result.stderr
        assert result.returncode == 0, (args, output)
        assert "Traceback" not in output and "internal error" not in output, (args, output)
    assert (tmp_path / "out dir" / "ctl1" / "etc" / "haproxy" / "haproxy.cfg").is_file()

    # The lab's commands are listed and explained too: their modules import without the extra
    # (what they run needs it, not what they are).
    for command in ("up", "keys", "chaos", "recover"):
        lab_help = run(hastack, command, "--help", cwd=tmp_path)
        output = lab_help.stdout + lab_help.stderr
        assert lab_help.returncode == 0 and "Example" in output, output
        assert "needs the Python package" not in output and "Traceback" not in output, output
