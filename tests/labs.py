"""Labs for the acceptance tests: a private lab for one test module (a copy of a bundled
example under its own name and subnet, in its own state root), and one demo lab shared by
the modules that can share it; always torn down (also after a failure or Ctrl-C)."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hastack.deploy import lab
from hastack.deploy.deployer import Summary
from hastack.model import Cloud, load_cloud

EXAMPLES = Path(__file__).resolve().parent.parent / "hastack" / "examples"


@contextlib.contextmanager
def _state_root(root: str) -> Iterator[None]:
    saved = os.environ.get("HASTACK_STATE_DIR")
    os.environ["HASTACK_STATE_DIR"] = root
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("HASTACK_STATE_DIR", None)
        else:
            os.environ["HASTACK_STATE_DIR"] = saved


@contextlib.contextmanager
def private_lab(example: str, name: str, subnet: str) -> Iterator[tuple[Cloud, str, Summary]]:
    """`examples/<example>.yaml` as cloud `name` on `subnet` (e.g. "198.18.62."), brought up:
    (cloud, cloud file, the summary of `up`)."""
    root = tempfile.mkdtemp(prefix=f"hastack-{name}-")
    text = (EXAMPLES / f"{example}.yaml").read_text()
    old_name = re.search(r"^name:\s*(\S+)", text, re.M)
    old_net = re.search(r"address:\s*(\d+\.\d+\.\d+\.)", text)
    assert old_name and old_net, f"{example}.yaml: no name or node address"
    text = text.replace(f"name: {old_name.group(1)}", f"name: {name}", 1)
    cloud_file = Path(root) / "cloud.yaml"
    cloud_file.write_text(text.replace(old_net.group(1), subnet))
    cloud = load_cloud(cloud_file)
    with _state_root(root):
        try:
            yield cloud, str(cloud_file), lab.up(cloud, str(cloud_file))
        finally:
            lab.down(cloud.name, purge=True)
            with contextlib.suppress(OSError):
                os.remove(cloud_file)
                os.rmdir(root)


# --- one demo lab shared by the modules that only use it (chaos, Keystone, the demo's own) ---
# A demo bring-up costs over two minutes of the CI budget; these modules leave the lab
# healthy (every scenario heals), so they share one. The lab stays up between them; each
# module points HASTACK_STATE_DIR at its root only while it runs.

@dataclass
class SharedDemo:
    root: str
    cloud: Cloud
    cloud_file: str
    summary: Summary | None = None


_shared: SharedDemo | None = None


@contextlib.contextmanager
def shared_demo_lab() -> Iterator[SharedDemo]:
    """The demo cloud (examples/demo.yaml), up in a private state root: brought up by the
    first module that asks, kept for the next ones, torn down by `down_shared_demo` (the
    demo module's down test, or the end of the session). A failed bring-up keeps its logs
    in the root and fails every module that asks."""
    global _shared
    if _shared is None:
        cloud_file = str(EXAMPLES / "demo.yaml")
        _shared = SharedDemo(tempfile.mkdtemp(prefix="hastack-demo-"), load_cloud(cloud_file),
                             cloud_file)
    with _state_root(_shared.root):
        if _shared.summary is None:
            try:
                _shared.summary = lab.up(_shared.cloud, _shared.cloud_file)
            except BaseException:
                lab.down(_shared.cloud.name, purge=False)
                print(f"\nbring-up failed; logs kept in {_shared.root}")
                raise
        yield _shared


def down_shared_demo() -> None:
    """Tear the shared demo lab down (whether or not it is up) and forget it."""
    global _shared
    if _shared is None:
        return
    with _state_root(_shared.root):
        lab.down(_shared.cloud.name, purge=True)
    with contextlib.suppress(OSError):
        os.rmdir(_shared.root)
    _shared = None
