"""TLS on the public VIP: the certificate HAProxy presents, and the CA its clients trust.

Stage 4 (render). With `settings.tls.public` (the default) and a public VIP, every HAProxy
node gets one PEM file (server certificate, then its key; 0600) that `haproxy.cfg` names on
each public bind. The certificate is the user's (`settings.tls.certificate`/`key`, read from
their files as a `file` secret) or one hastack makes per cloud, signed by the cloud's own CA
(`tls-ca`/`tls-server` secrets, see `hastack.render.secrets`); its names are the public VIP's
address and `Cloud.public_hostname`. Clients get the CA certificate from `ca_certificate()`.
Pure: secrets in, files out.
"""

from __future__ import annotations

from collections.abc import Mapping

from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile
from hastack.render.certificates import pem_blocks
from hastack.render.secrets import SecretSpec

SYSTEM = "tls"
CA_SECRET = "tls_ca"
PUBLIC_SECRET = "tls_public"
# Where HAProxy reads the public VIP's certificate and key (`bind ... ssl crt`).
HAPROXY_PEM = "etc/haproxy/tls/public.pem"


def enabled(plan: Plan) -> bool:
    return plan.cloud.public_tls and bool(plan.nodes_running("haproxy"))


def public_names(plan: Plan) -> tuple[str, ...]:
    """What the public certificate names: the public VIP's address, then its DNS name."""
    return (str(plan.cloud.vips.public), plan.cloud.public_hostname)


def secrets_needed(plan: Plan) -> list[SecretSpec]:
    if not enabled(plan):
        return []
    tls = plan.cloud.settings.tls
    if tls.certificate is not None and tls.key is not None:
        return [SecretSpec(PUBLIC_SECRET, "file", "the user's certificate and key of the "
                           "public VIP", files=(tls.certificate, tls.key))]
    return [
        SecretSpec(CA_SECRET, "tls-ca", f"the CA of cloud {plan.cloud.name}",
                   subject=(plan.cloud.name,)),
        SecretSpec(PUBLIC_SECRET, "tls-server", "HAProxy's certificate on the public VIP",
                   subject=public_names(plan), issuer=CA_SECRET),
    ]


def ca_certificate(plan: Plan, secrets: Mapping[str, str]) -> str | None:
    """The PEM certificate a client of the public VIP trusts: the cloud's CA, or (for a
    user's certificate) the last certificate of the user's chain; None without TLS."""
    if not enabled(plan):
        return None
    if plan.cloud.settings.tls.certificate is None:
        blocks = pem_blocks(secrets.get(CA_SECRET, ""), "CERTIFICATE")
    else:
        blocks = pem_blocks(secrets.get(PUBLIC_SECRET, ""), "CERTIFICATE")
    return blocks[-1] if blocks else None


def render(ctx: RenderContext) -> list[RenderedFile]:
    if not enabled(ctx.plan):
        return []
    value = ctx.secret(PUBLIC_SECRET)
    # Certificates first, then the key: HAProxy reads the chain in that order.
    pem = "".join(pem_blocks(value, "CERTIFICATE")) + "".join(pem_blocks(value, "PRIVATE KEY"))
    return [RenderedFile(node=node, path=HAPROXY_PEM, content=pem, system=SYSTEM, mode=0o600)
            for node in ctx.plan.nodes_running("haproxy")]
