"""Register one OpenStack service in Keystone: its user, its catalog entry, its endpoints.

    python -m hastack.agents.keystone_register < request.json

Runs where the admin can reach Keystone: the lab's client node (the admin's clouds.yaml,
`"cloud": NAME` in the request) or the first host of the service on real hosts (`"auth"`:
Keystone's URL and the admin's password). The request comes on stdin, so no password ever
appears in a process list. Idempotent: it finds before it creates and updates what differs,
so a second run changes nothing. Prints `ok`, or `changed` when it made or altered anything
(Ansible reads that).

The request: {"cloud" | "auth", "user", "password", "type", "description", "urls":
{interface: url}, "region"}; "auth" is {"auth_url", "password"} (user and project `admin` of
domain Default, as keystone-manage bootstrap makes them).
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
    changed = False
    domain = identity.find_domain("default") or identity.find_domain("Default")
    project = identity.find_project("service", domain_id=domain.id)
    if project is None:
        project = identity.create_project(name="service", domain_id=domain.id,
                                          description="Service users")
        changed = True
    user = identity.find_user(request["user"], domain_id=domain.id)
    if user is None:
        user = identity.create_user(name=request["user"], password=request["password"],
                                    domain_id=domain.id)
        changed = True
    else:
        # Keystone never tells whether a password differs: setting it again is the only way
        # to be sure, and it changes nothing a service sees.
        identity.update_user(user, password=request["password"])
    for name in ROLES:
        role = identity.find_role(name)
        if role is None:
            role = identity.create_role(name=name)
            changed = True
        if not identity.validate_user_has_project_role(project, user, role):
            identity.assign_project_role_to_user(project, user, role)
            changed = True
    service = next((s for s in identity.services() if s.type == request["type"]), None)
    if service is None:
        service = identity.create_service(name=request["user"], type=request["type"],
                                          description=request["description"])
        changed = True
    for interface, url in request["urls"].items():
        found = [e for e in identity.endpoints(service_id=service.id, interface=interface)
                 if e.region_id == request["region"]]
        if not found:
            identity.create_endpoint(service_id=service.id, interface=interface, url=url,
                                     region_id=request["region"])
            changed = True
        elif found[0].url != url:
            identity.update_endpoint(found[0], url=url)
            changed = True
    return changed


def main() -> int:
    print("changed" if register(json.load(sys.stdin)) else "ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
