"""Which secrets a rendered cloud needs, and how each kind is generated.

Renderers declare the secrets they use (`SecretSpec`); values are generated once, kept in the
output's `secrets.yaml` (mode 0600, written by `hastack.deploy.files`) and reused on every
re-render, so an unchanged cloud renders byte-identical files. There are no default passwords.

Certificates are secrets too: a cloud's CA (`tls-ca`) and a server certificate it signs
(`tls-server`, bound to its `subject` names and its `issuer`: made again when either changes
or it nears its end, and only then). A `file` secret is what the user keeps in files (a
certificate and key they supply): read again at every completion, so it follows the files.
"""

from __future__ import annotations

import base64
import secrets as _random
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hastack.errors import RenderError

SecretKind = Literal["password", "vrrp", "cookie", "key", "tls-ca", "tls-server", "file"]
_ALPHANUMERIC = string.ascii_letters + string.digits


@dataclass(frozen=True)
class SecretSpec:
    name: str
    kind: SecretKind = "password"
    purpose: str = ""
    # tls-ca: (cloud name,); tls-server: (address, DNS names...): what the certificate names.
    subject: tuple[str, ...] = ()
    issuer: str = ""                  # tls-server: the name of the tls-ca secret that signs it
    files: tuple[Path, ...] = ()      # file: the files whose contents, joined, are the value


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
    """Existing secrets, plus a new value for every declared secret that has none yet (or,
    for a certificate, none for its current names and issuer)."""
    values = dict(existing)
    for spec in specs:
        if spec.kind == "file":
            values[spec.name] = "".join(_read(path) for path in spec.files)
        elif spec.kind in ("tls-ca", "tls-server"):
            _complete_certificate(values, spec)
        elif not values.get(spec.name):
            values[spec.name] = generate(spec.kind)
    return values


def bound_to(name: str) -> str:
    """The secret that records what a certificate was made for."""
    return f"{name}_made_for"


def _complete_certificate(values: dict[str, str], spec: SecretSpec) -> None:
    # Imported here: certificates need `cryptography`, which nothing else at render does.
    from hastack.render import certificates

    made_for = " ".join(spec.subject)
    if spec.kind == "tls-server":
        made_for += f" issuer {certificates.fingerprint(values[spec.issuer])}"
    if (values.get(spec.name) and values.get(bound_to(spec.name)) == made_for
            and not certificates.expires_within(values[spec.name], certificates.RENEW_DAYS)):
        return
    if spec.kind == "tls-ca":
        values[spec.name] = certificates.new_ca(spec.subject[0])
    else:
        values[spec.name] = certificates.new_server(values[spec.issuer], spec.subject[0],
                                                    spec.subject[1:])
    values[bound_to(spec.name)] = made_for


def _read(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RenderError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}"
                          ) from None
    return text if text.endswith("\n") else text + "\n"
