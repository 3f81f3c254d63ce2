"""Which secrets a rendered cloud needs, and how each kind is generated.

Renderers declare the secrets they use (`SecretSpec`); values are generated once, kept in the
output's `secrets.yaml` (mode 0600, written by `hastack.deploy.files`) and reused on every
re-render, so an unchanged cloud renders byte-identical files. There are no default passwords.
"""

from __future__ import annotations

import base64
import secrets as _random
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

SecretKind = Literal["password", "vrrp", "cookie", "key"]
_ALPHANUMERIC = string.ascii_letters + string.digits


@dataclass(frozen=True)
class SecretSpec:
    name: str
    kind: SecretKind = "password"
    purpose: str = ""


def generate(kind: SecretKind) -> str:
    """A fresh value of one kind of secret."""
    if kind == "vrrp":
        # VRRP PASS authentication uses at most 8 characters.
        return "".join(_random.choice(_ALPHANUMERIC) for _ in range(8))
    if kind == "cookie":
        # Erlang cookies: upper-case letters, as rabbitmq-server generates them.
        return "".join(_random.choice(string.ascii_uppercase) for _ in range(32))
    if kind == "key":
        # 128 random bytes (a corosync authkey), base64 so that secrets.yaml stays text.
        return base64.b64encode(_random.token_bytes(128)).decode()
    return "".join(_random.choice(_ALPHANUMERIC) for _ in range(32))


def complete(existing: Mapping[str, str], specs: Iterable[SecretSpec]) -> dict[str, str]:
    """Existing secrets, plus a new value for every declared secret that has none yet."""
    values = dict(existing)
    for spec in specs:
        if not values.get(spec.name):
            values[spec.name] = generate(spec.kind)
    return values
