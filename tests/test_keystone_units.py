"""Keystone and RPC service pieces that need no lab: the key repositories (Keystone's layout
and rotation), the gunicorn settings, the RPC service's rendered config, the lab's programs."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography.fernet import Fernet

from hastack.deploy import fernet
from hastack.deploy.lab.programs import programs_on
from hastack.render import RenderContext, wsgi
from hastack.render.budget import make_budget
from tests.conftest import example_plan


def test_key_repository_is_private_and_rotates_like_keystone(tmp_path: Path) -> None:
    repo = tmp_path / "keystone" / "fernet-keys"
    assert fernet.ensure_repository(repo)
    assert not fernet.ensure_repository(repo)          # once
    assert sorted(fernet.read_keys(repo)) == [0, 1]
    assert stat.S_IMODE(repo.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in repo.iterdir())
    token = Fernet(fernet.read_keys(repo)[1]).encrypt(b"x")
    staged = fernet.read_keys(repo)[0]
    assert fernet.rotate(repo) == 2
    keys = fernet.read_keys(repo)
    assert keys[2] == staged                         # the staged key became the primary
    assert sorted(keys) == [0, 1, 2]
    assert Fernet(keys[1]).decrypt(token) == b"x"    # old tokens still decrypt
    fernet.rotate(repo)
    assert sorted(fernet.read_keys(repo)) == [0, 2, 3]   # max_active_keys = 3


def test_gunicorn_binds_each_node_address_with_its_socket_in_run() -> None:
    plan = example_plan("demo")
    ctx = RenderContext(plan, make_budget(plan.cloud), {})
    files = [f for f in wsgi.render(ctx) if f.path == wsgi.BY_PROGRAM["keystone"].conf]
    assert {f.node for f in files} == set(plan.nodes_running("keystone"))
    for f in files:
        settings: dict[str, object] = {}
        exec(compile(str(f.content), f.path, "exec"), {}, settings)  # gunicorn reads it so
        assert settings["bind"] == [f"{plan.cloud.node(f.node).ip}:5000"]
        assert str(settings["control_socket"]).startswith("/run/")
        assert settings["wsgi_app"] == wsgi.BY_PROGRAM["keystone"].wsgi_app


def test_every_controller_runs_keystone() -> None:
    plan = example_plan("demo")
    for node in ("ctl1", "ctl2", "ctl3"):
        assert "keystone" in [p.name for p in programs_on(plan, node)]
