"""Shared test fixtures: the bundled examples, planned and rendered with fixed secrets."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hastack.model import Cloud, load_cloud, parse_cloud
from hastack.plan import Plan, make_plan
from hastack.render import RenderedFile, render_cloud, secret_specs
from hastack.render.secrets import complete

EXAMPLES = Path(__file__).resolve().parent.parent / "hastack" / "examples"
EXAMPLE_NAMES = ("demo", "pacemaker", "split-roles")


def example_cloud(name: str) -> Cloud:
    return load_cloud(EXAMPLES / f"{name}.yaml")


def example_plan(name: str) -> Plan:
    return make_plan(example_cloud(name))


def plan_from_text(text: str) -> Plan:
    return make_plan(parse_cloud(text))


def render_example(name: str) -> list[RenderedFile]:
    plan = example_plan(name)
    return render_cloud(plan, complete({}, secret_specs(plan)))


def write_rendered(files: list[RenderedFile], root: Path) -> Path:
    for f in files:
        path = root / f.node / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(f.content, bytes):
            path.write_bytes(f.content)
        else:
            path.write_text(f.content)
        path.chmod(f.mode)
    return root


def require_program(name: str) -> str:
    """The path of a validator program; the test fails (not skips) when it is missing,
    because the project's setup installs every validator."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/setup.sh")
    return path


@pytest.fixture(params=EXAMPLE_NAMES)
def example_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session", autouse=True)
def _shared_demo_lab_torn_down() -> Iterator[None]:
    """Whatever happens, the shared demo lab (tests.labs) does not outlive the session."""
    yield
    from tests.labs import down_shared_demo
    down_shared_demo()
