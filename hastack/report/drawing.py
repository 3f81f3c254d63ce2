"""The architecture drawn: an SVG of the plan, written by hastack itself.

Nodes grouped by host group (their roles; region and zone when declared), each with every
process planned on it as a chip coloured by HA strategy, its border solid for active/active
and dashed for active/passive; the VIPs above, a line to each node that may hold them
(thick to the holder). Hover a chip for its service, mode and what guards it.

Why hand-written SVG rather than Graphviz: no extra program or package, byte-identical output
for the same plan (Graphviz's layout and its SVG ids change between versions), and text that
stays text (searchable, printable, testable in a browser). The layout is a grid, which is
what the collapsed-controller and split-role clouds of the references look like anyway.

Pure: a plan (and who held each VIP, when a run saw it) in, SVG text out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape

from hastack.plan import Plan, PlannedProcess

STRATEGY_COLOURS: dict[str, tuple[str, str]] = {   # strategy -> (fill, text)
    "haproxy-vip": ("#4c72b0", "#ffffff"),
    "app-cluster": ("#dd8452", "#ffffff"),
    "keepalived": ("#55a868", "#ffffff"),
    "rpc": ("#c44e52", "#ffffff"),
    "client-list": ("#8172b3", "#ffffff"),
    "dhcp-agents": ("#937860", "#ffffff"),
    "l3-ha": ("#da8bc3", "#222222"),
    "tooz": ("#8c8c8c", "#ffffff"),
    "pacemaker": ("#ccb974", "#222222"),
    "per-node": ("#64b5cd", "#222222"),
    "none": ("#eeeeee", "#222222"),
}
STRATEGY_LABELS = {
    "haproxy-vip": "HAProxy VIP", "app-cluster": "app cluster", "keepalived": "keepalived",
    "rpc": "RPC", "client-list": "client-side list", "dhcp-agents": "DHCP agents",
    "l3-ha": "L3 HA (VRRP)", "tooz": "tooz", "pacemaker": "Pacemaker",
    "per-node": "per node", "none": "not guarded",
}

CHIP_W, CHIP_H, GAP, PAD = 168, 17, 3, 8
COLUMNS = 2
NODE_W = PAD * 2 + COLUMNS * CHIP_W + (COLUMNS - 1) * GAP
NODE_HEAD = 44
NODES_PER_ROW = 4
MARGIN = 16
VIP_W, VIP_H = 250, 54
GROUP_HEAD = 22
FONT = "font-family=\"DejaVu Sans, Verdana, sans-serif\""


@dataclass(frozen=True)
class _Box:
    x: int
    y: int
    w: int
    h: int


def host_groups(plan: Plan) -> list[tuple[str, list[str]]]:
    """Nodes grouped by their roles, and by region and availability zone when the cloud
    declares them ("phx / az2 / compute"), in the cloud file's order."""
    cloud = plan.cloud
    rack_zone = {rack.name: rack.zone for rack in cloud.racks}
    groups: dict[str, list[str]] = {}
    for node in cloud.nodes:
        place = []
        if cloud.regions:
            place.append(cloud.region_of(node))
        zone = node.zone or rack_zone.get(node.rack or "")
        if zone:
            place.append(zone)
        label = " + ".join(r.value for r in node.roles)
        groups.setdefault(" / ".join([*place, label]), []).append(node.name)
    return list(groups.items())


def architecture_svg(plan: Plan, holders: Mapping[str, str] | None = None) -> str:
    """The drawing; `holders` (VIP name -> node) when a run saw who held each VIP."""
    holders = holders or {}
    width = MARGIN * 2 + NODES_PER_ROW * NODE_W + (NODES_PER_ROW - 1) * MARGIN
    out: list[str] = []
    y = MARGIN
    vip_boxes: dict[str, _Box] = {}
    if plan.vips:
        span = len(plan.vips) * VIP_W + (len(plan.vips) - 1) * MARGIN * 2
        x = (width - span) // 2
        for vip in plan.vips:
            vip_boxes[vip.name] = _Box(x, y, VIP_W, VIP_H)
            x += VIP_W + MARGIN * 2
        y += VIP_H + 56
    node_boxes: dict[str, _Box] = {}
    groups = host_groups(plan)
    for group, names in groups:
        out.append(f'<text class="group" x="{MARGIN}" y="{y + 15}" font-size="13" '
                   f'font-weight="bold" fill="#333333">{escape(group)} '
                   f'({len(names)} node{"s" if len(names) != 1 else ""})</text>')
        y += GROUP_HEAD
        for row_start in range(0, len(names), NODES_PER_ROW):
            row = names[row_start:row_start + NODES_PER_ROW]
            height = max(_node_height(plan, n) for n in row)
            for i, name in enumerate(row):
                node_boxes[name] = _Box(MARGIN + i * (NODE_W + MARGIN), y, NODE_W, height)
            y += height + MARGIN
        y += 4
    legend_y = y + 4
    height = legend_y + 84

    lines: list[str] = []
    for vip in plan.vips:
        box = vip_boxes[vip.name]
        holder = holders.get(vip.name)
        for candidate in vip.candidates:
            target = node_boxes.get(candidate)
            if target is None:
                continue
            held = candidate == holder
            lines.append(
                f'<line x1="{box.x + box.w // 2}" y1="{box.y + box.h}" '
                f'x2="{target.x + target.w // 2}" y2="{target.y}" '
                f'stroke="{"#2e7d32" if held else "#9e9e9e"}" '
                f'stroke-width="{3 if held else 1}"'
                + ('' if held else ' stroke-dasharray="4 3"') + ' />')
    for vip in plan.vips:
        lines.append(_vip(vip_boxes[vip.name], vip.name, str(vip.address), vip.mechanism,
                          vip.candidates, holders.get(vip.name)))
    for name, box in node_boxes.items():
        lines.append(_node(plan, name, box, holder_of=sorted(
            v for v, h in holders.items() if h == name)))
    lines.append(_legend(plan, legend_y))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="architecture" role="img" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" {FONT}>'
            f'<title>{escape(plan.cloud.name)}: {escape(plan.cloud.architecture.value)} '
            f'architecture, {len(plan.cloud.nodes)} nodes, {len(plan.vips)} VIPs</title>'
            + "".join(out) + "".join(lines) + "</svg>")


def _node_height(plan: Plan, node: str) -> int:
    rows = -(-len(plan.nodes_of(node)) // COLUMNS)
    return NODE_HEAD + rows * (CHIP_H + GAP) + PAD


def _vip(box: _Box, name: str, address: str, mechanism: str, candidates: tuple[str, ...],
         holder: str | None) -> str:
    held = f"held by {holder}" if holder else "holder not observed"
    return (f'<g class="vip" data-vip="{escape(name)}"><title>VIP {escape(name)} '
            f'{escape(address)}: moved by {escape(mechanism)} between '
            f'{escape(", ".join(candidates))} (priority order); {escape(held)}</title>'
            f'<rect x="{box.x}" y="{box.y}" width="{box.w}" height="{box.h}" rx="27" '
            f'fill="#fff8e1" stroke="#f9a825" stroke-width="2" />'
            f'<text x="{box.x + box.w // 2}" y="{box.y + 19}" text-anchor="middle" '
            f'font-size="13" font-weight="bold">VIP {escape(name)} {escape(address)}</text>'
            f'<text x="{box.x + box.w // 2}" y="{box.y + 35}" text-anchor="middle" '
            f'font-size="10.5" fill="#444444">{escape(mechanism)}: '
            f'{escape(" > ".join(candidates))}</text>'
            f'<text x="{box.x + box.w // 2}" y="{box.y + 48}" text-anchor="middle" '
            f'font-size="10.5" fill="{"#2e7d32" if holder else "#777777"}">{escape(held)}'
            f'</text></g>')


def _node(plan: Plan, name: str, box: _Box, holder_of: list[str]) -> str:
    node = plan.cloud.node(name)
    roles = ", ".join(r.value for r in node.roles)
    vips = f" · holds VIP {', '.join(holder_of)}" if holder_of else ""
    parts = [f'<g class="node" data-node="{escape(name)}">'
             f'<rect x="{box.x}" y="{box.y}" width="{box.w}" height="{box.h}" rx="6" '
             f'fill="#fafafa" stroke="#455a64" stroke-width="1.5" />'
             f'<text x="{box.x + PAD}" y="{box.y + 18}" font-size="14" font-weight="bold">'
             f'{escape(name)}</text>'
             f'<text x="{box.x + PAD + 9 * len(name) + 10}" y="{box.y + 18}" font-size="11" '
             f'fill="#555555">{escape(str(node.ip))}</text>'
             f'<text x="{box.x + PAD}" y="{box.y + 34}" font-size="10.5" fill="#555555">'
             f'{escape(roles)}{escape(vips)}</text>']
    for i, process in enumerate(plan.nodes_of(name)):
        column, row = i % COLUMNS, i // COLUMNS
        parts.append(_chip(process, box.x + PAD + column * (CHIP_W + GAP),
                           box.y + NODE_HEAD + row * (CHIP_H + GAP), name))
    parts.append("</g>")
    return "".join(parts)


def _chip(p: PlannedProcess, x: int, y: int, node: str) -> str:
    fill, ink = STRATEGY_COLOURS.get(p.strategy, STRATEGY_COLOURS["none"])
    passive = p.mode == "A/P" and p.active_node not in (None, node)
    dash = ' stroke-dasharray="3 2"' if p.mode == "A/P" else ""
    guards = "; ".join(p.guards) or "not guarded"
    role = (" (active here)" if p.active_node == node else " (passive here)") \
        if p.mode == "A/P" else ""
    strategy = STRATEGY_LABELS.get(p.strategy, p.strategy)
    return (f'<g class="process" data-mode="{escape(p.mode)}" '
            f'data-strategy="{escape(p.strategy)}"><title>{escape(p.process)} '
            f'({escape(p.service)}): {escape(p.mode)}{escape(role)}, {escape(strategy)}'
            f' — {escape(guards)}</title>'
            f'<rect x="{x}" y="{y}" width="{CHIP_W}" height="{CHIP_H}" rx="3" fill="{fill}" '
            f'fill-opacity="{0.45 if passive else 1}" stroke="#263238" '
            f'stroke-width="{1.2 if p.mode == "A/P" else 0.5}"{dash} />'
            f'<text x="{x + 5}" y="{y + 12}" font-size="10" fill="{ink}">{escape(p.process)}'
            f'{" (A/P)" if p.mode == "A/P" else ""}</text></g>')


def _legend(plan: Plan, y: int) -> str:
    present = list(dict.fromkeys(p.strategy for p in plan.processes))
    parts = [f'<g class="legend"><text x="{MARGIN}" y="{y + 12}" font-size="11" '
             f'font-weight="bold">HA strategy</text>']
    x = MARGIN + 84
    row_y = y
    for strategy in present:
        fill, ink = STRATEGY_COLOURS.get(strategy, STRATEGY_COLOURS["none"])
        label = STRATEGY_LABELS.get(strategy, strategy)
        w = 14 + 6 * len(label) + 12
        if x + w > MARGIN + NODES_PER_ROW * (NODE_W + MARGIN):
            x, row_y = MARGIN + 84, row_y + 20
        parts.append(f'<rect x="{x}" y="{row_y + 2}" width="12" height="12" rx="2" '
                     f'fill="{fill}" stroke="#263238" stroke-width="0.5" />'
                     f'<text x="{x + 16}" y="{row_y + 12}" font-size="10.5">{escape(label)}'
                     f'</text>')
        x += w
    mode_y = row_y + 22
    parts.append(f'<text x="{MARGIN}" y="{mode_y + 12}" font-size="11" font-weight="bold">'
                 f'mode</text>'
                 f'<rect x="{MARGIN + 84}" y="{mode_y + 2}" width="24" height="12" rx="2" '
                 f'fill="#ffffff" stroke="#263238" stroke-width="0.5" />'
                 f'<text x="{MARGIN + 112}" y="{mode_y + 12}" font-size="10.5">active/active'
                 f'</text>'
                 f'<rect x="{MARGIN + 210}" y="{mode_y + 2}" width="24" height="12" rx="2" '
                 f'fill="#ffffff" stroke="#263238" stroke-width="1.2" stroke-dasharray="3 2" />'
                 f'<text x="{MARGIN + 238}" y="{mode_y + 12}" font-size="10.5">'
                 f'active/passive (faded where passive)</text>'
                 f'<line x1="{MARGIN + 470}" y1="{mode_y + 8}" x2="{MARGIN + 500}" '
                 f'y2="{mode_y + 8}" stroke="#2e7d32" stroke-width="3" />'
                 f'<text x="{MARGIN + 504}" y="{mode_y + 12}" font-size="10.5">VIP holder'
                 f'</text>'
                 f'<line x1="{MARGIN + 580}" y1="{mode_y + 8}" x2="{MARGIN + 610}" '
                 f'y2="{mode_y + 8}" stroke="#9e9e9e" stroke-dasharray="4 3" />'
                 f'<text x="{MARGIN + 614}" y="{mode_y + 12}" font-size="10.5">may take it over'
                 f'</text></g>')
    return "".join(parts)
