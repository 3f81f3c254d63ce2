"""The CIB as the lab loads it: the rendered one, with the resource classes lab nodes can run.

Stage 5 (deploy), lab only; pure (text in, text out). Real hosts load the rendered CIB as it
is (`systemd:haproxy`, `systemd:cinder-volume`, ...). A lab node's init is supervisord, not
systemd, so each `systemd:<unit>` primitive becomes `ocf:hastack:supervised` with
`program=<the lab program>`: the same resource, the same operations and constraints, driven
through the node's supervisor (`cluster_agents/ocf/hastack/supervised`). A primitive whose
program the lab does not run is left out with every constraint that names it, and reported.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from hastack.errors import LabError

PROVIDER, AGENT = "hastack", "supervised"
_CONSTRAINT_REFS = ("rsc", "with-rsc", "first", "then")


@dataclass(frozen=True)
class LabCib:
    xml: str
    left_out: tuple[str, ...]     # primitives (and their clones) the lab does not run


def lab_cib(rendered: str, programs: Collection[str],
            unit_programs: Mapping[str, str] | None = None) -> LabCib:
    """`rendered` with every systemd primitive made an `ocf:hastack:supervised` one.

    `programs`: what the lab's nodes can run; `unit_programs`: unit name -> lab program where
    they differ (default: the same name)."""
    try:
        root = ET.fromstring(rendered)
    except ET.ParseError as exc:
        raise LabError(f"rendered CIB is not XML: {exc}") from None
    resources = root.find("./configuration/resources")
    constraints = root.find("./configuration/constraints")
    if resources is None:
        raise LabError("rendered CIB has no <configuration><resources>")
    unit_programs = unit_programs or {}
    gone: list[str] = []
    for parent in [resources, *resources.iterfind("clone"), *resources.iterfind("group")]:
        for primitive in list(parent.iterfind("primitive")):
            if primitive.get("class") != "systemd":
                continue
            unit = primitive.get("type", "")
            program = unit_programs.get(unit, unit)
            if program not in programs:
                parent.remove(primitive)
                gone.append(primitive.get("id", unit))
                continue
            _as_supervised(primitive, program)
    # A clone or group left empty goes too.
    for wrapper in list(resources):
        if wrapper.tag in ("clone", "group") and wrapper.find("primitive") is None:
            resources.remove(wrapper)
            gone.append(wrapper.get("id", ""))
    if constraints is not None and gone:
        for constraint in list(constraints):
            if any(constraint.get(ref) in gone for ref in _CONSTRAINT_REFS):
                constraints.remove(constraint)
    return LabCib(ET.tostring(root, encoding="unicode"), tuple(gone))


def _as_supervised(primitive: ET.Element, program: str) -> None:
    primitive.set("class", "ocf")
    primitive.set("provider", PROVIDER)
    primitive.set("type", AGENT)
    rsc = primitive.get("id", program)
    attributes = primitive.find("instance_attributes")
    if attributes is None:
        attributes = ET.Element("instance_attributes", id=f"{rsc}-instance_attributes")
        primitive.insert(0, attributes)
    ET.SubElement(attributes, "nvpair", id=f"{rsc}-instance_attributes-program",
                  name="program", value=program)
