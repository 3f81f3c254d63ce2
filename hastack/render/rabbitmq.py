"""RabbitMQ: rabbitmq.conf, the definitions file, rabbitmq-env.conf and the Erlang cookie of
every messaging node.

Stage 4 (render). Pure: the plan, the timing budget and the secrets in, files out.
- Cluster formation is static (classic_config: every member by its Erlang node name).
- The only account is `openstack` (the OpenStack renderer's RABBIT_USER), created by importing
  the definitions file at boot; with definitions to import RabbitMQ creates no default `guest`.
  Its password hash is RabbitMQ's own sha256 scheme with a salt derived from the secret, so an
  unchanged cloud renders byte-identical files.
- Queue replication follows settings.rabbitmq.queues: quorum (the vhost's default queue type)
  or classic mirrored queues (an ha-mode policy).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile
from hastack.render.openstack import RABBIT_SECRET, RABBIT_USER
from hastack.render.secrets import SecretSpec
from hastack.render.templating import render_template

SYSTEM = "rabbitmq"
PROCESS = "rabbitmq"
COOKIE_SECRET = "rabbitmq_cookie"
VHOST = "/"
HASHING = "rabbit_password_hashing_sha256"

CONF = "etc/rabbitmq/rabbitmq.conf"
DEFINITIONS = "etc/rabbitmq/definitions.json"
ENV_CONF = "etc/rabbitmq/rabbitmq-env.conf"
COOKIE = "var/lib/rabbitmq/.erlang.cookie"

# Policies per queue mode (rows, not ifs). Quorum queues take their type from the vhost's
# default queue type (RabbitMQ 3.10 applies it to durable, non-exclusive queues only, so
# OpenStack's transient reply/fanout queues stay classic); mirrored mode mirrors every
# non-exclusive classic queue on every member.
QUEUE_MODES: dict[str, dict[str, Any]] = {
    "quorum": {
        "vhost_metadata": {"default_queue_type": "quorum"},
        "policies": [],
    },
    "mirrored": {
        "vhost_metadata": {},
        "policies": [
            {"name": "ha-all", "pattern": "^(?!amq\\.).*", "apply-to": "queues",
             "priority": 0,
             "definition": {"ha-mode": "all", "ha-sync-mode": "automatic"}},
        ],
    },
}


def node_name(node: str) -> str:
    return f"rabbit@{node}"


def password_hash(password: str, salt_key: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password)),
    with the 4-byte salt derived from `salt_key` (re-rendering is byte-identical)."""
    salt = hmac.new(salt_key.encode(), b"hastack rabbitmq salt", hashlib.sha256).digest()[:4]
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode()


def verify_password(password: str, encoded: str) -> bool:
    """What RabbitMQ does at login: split off the salt, rehash, compare."""
    raw = base64.b64decode(encoded)
    salt, digest = raw[:4], raw[4:]
    return hmac.compare_digest(hashlib.sha256(salt + password.encode("utf-8")).digest(), digest)


def secrets_needed(plan: Plan) -> list[SecretSpec]:
    if not plan.runs(PROCESS):
        return []
    return [
        SecretSpec(RABBIT_SECRET, purpose=f"RabbitMQ user '{RABBIT_USER}' of every service"),
        SecretSpec(COOKIE_SECRET, kind="cookie", purpose="Erlang cookie of the RabbitMQ cluster"),
    ]


def render(ctx: RenderContext) -> list[RenderedFile]:
    plan = ctx.plan
    members = plan.nodes_running(PROCESS)
    if not members:
        return []
    definitions = _definitions(ctx)
    cookie = ctx.secret(COOKIE_SECRET)
    files: list[RenderedFile] = []
    for node in members:
        files += [
            RenderedFile(node, CONF, _conf(ctx, node, members), SYSTEM),
            RenderedFile(node, DEFINITIONS, definitions, SYSTEM, mode=0o640, owner="rabbitmq"),
            RenderedFile(node, ENV_CONF, _env_conf(ctx, node), SYSTEM),
            # Erlang refuses a cookie readable by anyone but its owner.
            RenderedFile(node, COOKIE, cookie, SYSTEM, mode=0o400, owner="rabbitmq"),
        ]
    return files


def _conf(ctx: RenderContext, node: str, members: tuple[str, ...]) -> str:
    plan = ctx.plan
    return render_template(
        SYSTEM, "rabbitmq.conf.j2",
        cloud=plan.cloud.name,
        node=node,
        address=ctx.address(node),
        amqp_port=plan.port(PROCESS, "amqp"),
        dist_port=plan.port(PROCESS, "erlang-distribution"),
        peers=[node_name(m) for m in members],
        partition_handling=plan.cloud.settings.rabbitmq.partition_handling,
        net_ticktime=ctx.budget.rabbit_net_ticktime_s,
        definitions="/" + DEFINITIONS,
    )


def _env_conf(ctx: RenderContext, node: str) -> str:
    return render_template(
        SYSTEM, "rabbitmq-env.conf.j2",
        node=node,
        nodename=node_name(node),
        address=ctx.address(node),
        amqp_port=ctx.plan.port(PROCESS, "amqp"),
        dist_port=ctx.plan.port(PROCESS, "erlang-distribution"),
        erl_args=ctx.sizing.rabbitmq_erl_args,
        config_file="/" + CONF.removesuffix(".conf"),
    )


def _definitions(ctx: RenderContext) -> str:
    mode = QUEUE_MODES[ctx.plan.cloud.settings.rabbitmq.queues]
    password = ctx.secret(RABBIT_SECRET)
    definitions = {
        "users": [{
            "name": RABBIT_USER,
            "password_hash": password_hash(password, salt_key=password),
            "hashing_algorithm": HASHING,
            "tags": [],
        }],
        "vhosts": [{"name": VHOST, "metadata": mode["vhost_metadata"],
                    **mode["vhost_metadata"]}],
        "permissions": [{"user": RABBIT_USER, "vhost": VHOST,
                         "configure": ".*", "write": ".*", "read": ".*"}],
        "topic_permissions": [],
        "parameters": [],
        "global_parameters": [],
        "policies": [{"vhost": VHOST, **policy} for policy in mode["policies"]],
        "queues": [],
        "exchanges": [],
        "bindings": [],
    }
    return json.dumps(definitions, indent=2, sort_keys=True) + "\n"
