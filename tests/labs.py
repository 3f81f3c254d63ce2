"""A private lab for one test module: a copy of a bundled example under its own name and
subnet, in its own state root, always torn down (also after a failure or Ctrl-C)."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hastack.deploy import lab
from hastack.deploy.deployer import Summary
from hastack.model import Cloud, load_cloud

EXAMPLES = Path(__file__).resolve().parent.parent / "hastack" / "examples"


@contextlib.contextmanager
def private_lab(example: str, name: str, subnet: str) -> Iterator[tuple[Cloud, str, Summary]]:
    """`examples/<example>.yaml` as cloud `name` on `subnet` (e.g. "198.18.62."), brought up:
    (cloud, cloud file, the summary of `up`)."""
    saved = os.environ.get("HASTACK_STATE_DIR")
    root = tempfile.mkdtemp(prefix=f"hastack-{name}-")
    os.environ["HASTACK_STATE_DIR"] = root
    text = (EXAMPLES / f"{example}.yaml").read_text()
    old_name = re.search(r"^name:\s*(\S+)", text, re.M)
    old_net = re.search(r"address:\s*(\d+\.\d+\.\d+\.)", text)
    assert old_name and old_net, f"{example}.yaml: no name or node address"
    text = text.replace(f"name: {old_name.group(1)}", f"name: {name}", 1)
    cloud_file = Path(root) / "cloud.yaml"
    cloud_file.write_text(text.replace(old_net.group(1), subnet))
    cloud = load_cloud(cloud_file)
    try:
        yield cloud, str(cloud_file), lab.up(cloud, str(cloud_file))
    finally:
        lab.down(cloud.name, purge=True)
        if saved is None:
            os.environ.pop("HASTACK_STATE_DIR", None)
        else:
            os.environ["HASTACK_STATE_DIR"] = saved
        with contextlib.suppress(OSError):
            os.remove(cloud_file)
            os.rmdir(root)
