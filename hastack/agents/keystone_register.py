"""Register one OpenStack service in Keystone: its user, its catalog entries, its endpoints.

    python -m hastack.agents.keystone_register < request.json

Runs where the admin can reach Keystone: the lab's client node (the admin's clouds.yaml,
`"cloud": NAME` in the request) or the first host of the service on real hosts (`"auth"`:
Keystone's URL and the admin's password). The request comes on stdin, so no password ever
appears in a process list. Idempotent: it finds before it creates and updates what differs,
so a second run changes nothing. Prints `ok`, or `changed` when it made or altered anything
(Ansible reads that).

The request: {"cloud" | "auth", "user", "password", "region", "services": [{"name", "type",
"description", "urls": {interface: url}}], "roles": [name], "domain": {"name", "description",
"admin"}, "domain_password"}; "auth" is {"auth_url", "password"} (user and project `admin` of
domain Default, as keystone-manage bootstrap makes them). "roles" (roles the service expects
to find) and "domain" (a domain of its own, with an admin user: Heat's stack users) are
optional.
"""

from __future__ import annotations

import json
import sys
from typing import Any

# A service's token passed along with a user's (X-Service-Token) is accepted by the other
# services' keystonemiddleware only with the `service` role.
ROLES = ("admin", "service")


def _connect(request: dict[str, Any]) -> Any:
    import openstack

    if "cloud" in request:
        return openstack.connect(cloud=request["cloud"])
    auth = request["auth"]
    return openstack.connect(auth_url=auth["auth_url"], username="admin",
                             password=auth["password"], project_name="admin",
                             user_domain_name="Default", project_domain_name="Default",
                             region_name=request["region"], interface="internal")


def register(request: dict[str, Any]) -> bool:
    """Make Keystone hold what the request says; True if anything changed."""
    identity = _connect(request).identity
    domain = identity.find_domain("default") or identity.find_domain("Default")
    project = identity.find_project("service", domain_id=domain.id)
    changed = project is None
    if project is None:
        project = identity.create_project(name="service", domain_id=domain.id,
                                          description="Service users")
    user, made = _user(identity, request["user"], request["password"], domain)
    changed |= made
    for name in (*ROLES, *request.get("roles", ())):
        role, made = _role(identity, name)
        changed |= made
        if name in ROLES and not identity.validate_user_has_project_role(project, user, role):
            identity.assign_project_role_to_user(project, user, role)
            changed = True
    for entry in request["services"]:
        changed |= _service(identity, entry, request["region"])
    if "domain" in request:
        changed |= _own_domain(identity, request["domain"], request["domain_password"])
    return changed


def _user(identity: Any, name: str, password: str, domain: Any) -> tuple[Any, bool]:
    user = identity.find_user(name, domain_id=domain.id)
    if user is None:
        return identity.create_user(name=name, password=password, domain_id=domain.id), True
    # Keystone never tells whether a password differs: setting it again is the only way to
    # be sure, and it changes nothing a service sees.
    identity.update_user(user, password=password)
    return user, False


def _role(identity: Any, name: str) -> tuple[Any, bool]:
    role = identity.find_role(name)
    if role is None:
        return identity.create_role(name=name), True
    return role, False


def _service(identity: Any, entry: dict[str, Any], region: str) -> bool:
    """One catalog entry and its endpoints in `region`; True if anything changed."""
    changed = False
    service = next((s for s in identity.services() if s.type == entry["type"]), None)
    if service is None:
        service = identity.create_service(name=entry["name"], type=entry["type"],
                                          description=entry["description"])
        changed = True
    for interface, url in entry["urls"].items():
        found = [e for e in identity.endpoints(service_id=service.id, interface=interface)
                 if e.region_id == region]
        if not found:
            identity.create_endpoint(service_id=service.id, interface=interface, url=url,
                                     region_id=region)
            changed = True
        elif found[0].url != url:
            identity.update_endpoint(found[0], url=url)
            changed = True
    return changed


def _own_domain(identity: Any, spec: dict[str, Any], password: str) -> bool:
    """A domain of the service's own and its admin (admin role on that domain only)."""
    domain = identity.find_domain(spec["name"])
    changed = domain is None
    if domain is None:
        domain = identity.create_domain(name=spec["name"], description=spec["description"])
    admin, made = _user(identity, spec["admin"], password, domain)
    changed |= made
    role, _ = _role(identity, "admin")
    if not identity.validate_user_has_domain_role(domain, admin, role):
        identity.assign_domain_role_to_user(domain, admin, role)
        changed = True
    return changed


def main() -> int:
    print("changed" if register(json.load(sys.stdin)) else "ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
