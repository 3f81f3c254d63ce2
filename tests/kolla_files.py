"""Where pip puts the files the kolla-ansible package ships (its sample globals.yml,
passwords.yml and multinode inventory, its group_vars): `<prefix>/share/kolla-ansible`.
The `test` extra installs it; a missing package fails the tests that need it."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest


def kolla_share() -> Path:
    share = Path(sysconfig.get_paths()["data"]) / "share" / "kolla-ansible"
    if not (share / "etc_examples" / "kolla" / "globals.yml").is_file():
        pytest.fail(f"kolla-ansible's files are not in {share}: install the test extra "
                    "(pip install -e '.[test]', or scripts/setup.sh)")
    return share
