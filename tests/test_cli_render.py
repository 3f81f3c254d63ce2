"""`hastack render`: writes the tree and secrets (0600), re-renders byte-identically,
refuses a cloud with check errors unless --force, and prints the timing budget."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.conftest import EXAMPLES

ENV = {**os.environ, "COLUMNS": "200"}


def render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hastack.cli", "render", *args],
                          capture_output=True, text=True, env=ENV)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_writes_every_node_and_private_secrets(tmp_path: Path) -> None:
    result = render(str(EXAMPLES / "demo.yaml"), "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for node in ("ctl1", "ctl2", "ctl3"):
        assert (tmp_path / node / "etc/haproxy/haproxy.cfg").is_file()
        assert (tmp_path / node / "etc/hosts").is_file()
    secrets = tmp_path / "secrets.yaml"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    # secrets are never printed
    for line in secrets.read_text().splitlines()[1:]:
        value = line.split(": ", 1)[1].strip("'")
        assert value not in result.stdout
    assert "HA timing budget" in result.stdout
    assert "keepalived VRRP" in result.stdout


def test_re_render_changes_no_file(tmp_path: Path) -> None:
    assert render(str(EXAMPLES / "demo.yaml"), "-o", str(tmp_path)).returncode == 0
    before = snapshot(tmp_path)
    second = render(str(EXAMPLES / "demo.yaml"), "-o", str(tmp_path))
    assert second.returncode == 0
    assert snapshot(tmp_path) == before          # same bytes and untouched mtimes
    assert "0 file(s) written" in second.stdout


def test_render_refuses_a_cloud_with_errors_unless_forced(tmp_path: Path) -> None:
    refused = render(str(EXAMPLES / "broken.yaml"), "-o", str(tmp_path / "a"))
    assert refused.returncode == 2
    assert "check error" in refused.stderr and "--force" in refused.stderr
    assert not (tmp_path / "a").exists()
    forced = render(str(EXAMPLES / "broken.yaml"), "-o", str(tmp_path / "b"), "--force")
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "b" / "ctl1" / "etc/haproxy/haproxy.cfg").is_file()
