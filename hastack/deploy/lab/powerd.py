"""The lab's power controller: the "BMC" of every lab node, for fence agents inside the nodes.

Stage 5 (deploy), lab only. A fence agent runs inside a node (Pacemaker's fencer), but a
node's power is the host's business: its first process and its cable live outside every
node. So the lab runs one host process per Pacemaker lab, listening on a unix socket in the
lab's state directory, which every node sees at `/run/hastack/state/power.sock`
(`fence_hastack` talks to it). One request per connection, one JSON line each way:

    {"action": "status"|"off"|"on"|"list", "plug": "ctl2"}
    -> {"ok": true, "status": "on"|"off"}     (status, off, on)
    -> {"ok": true, "nodes": {"ctl1": "on", ...}}     (list)
    -> {"ok": false, "error": "..."}

`off` is `LabControl.crash_node` (cable cut, SIGKILL of the node's first process): the same
power cut chaos's `crash` uses. `on` boots the node: its namespaces, files, and then what a
host starts at boot (everything planned on it, through the orchestrator, as the repair path
does). Every off and on is appended to `power.jsonl` in the state directory — the fencing
evidence chaos puts in a run's timeline.

    python -m hastack.deploy.lab.powerd --cloud FILE      (started and stopped by the lab)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import socketserver
import threading
import time
from pathlib import Path
from typing import Any

from hastack.deploy.lab.fencing import (
    EVENTS_NAME,
    SOCKET_NAME,
    DeviceDown,
    broken_devices,
    read_events,
)

log = logging.getLogger("hastack.powerd")
# Status queries within this long after an off belong to the same fencing operation.
ONE_FENCE_S = 30.0


class PowerController:
    """The verbs, on a fresh view of the lab for every request (nodes come and go)."""

    def __init__(self, cloud_file: str):
        from hastack.model import load_cloud

        self.cloud_file = cloud_file
        self.cloud = load_cloud(cloud_file)
        self._lock = threading.Lock()          # one power action at a time

    def _control(self) -> Any:
        from hastack.deploy.lab.power import LabControl

        return LabControl(self.cloud, self.cloud_file)

    @property
    def events(self) -> Path:
        from hastack.deploy.lab.state import state_dir

        return state_dir(self.cloud.name) / EVENTS_NAME

    @property
    def broken(self) -> set[str]:
        return broken_devices(self.events.parent)

    def _answering(self, plug: str) -> None:
        if plug in self.broken:
            raise DeviceDown(plug)

    def nodes(self) -> dict[str, str]:
        control = self._control()
        return {name: "on" if name in control.lab.nodes else "off"
                for name in control.node_names()}

    def status(self, plug: str, during: str | None = None) -> str:
        """The node's power; asked during a fencing action (off, reboot) of a node already
        off, the fence is complete, and is recorded as such."""
        nodes = self.nodes()
        if plug not in nodes:
            raise KeyError(plug)
        self._answering(plug)
        if during in ("off", "reboot") and nodes[plug] == "off":
            with self._lock:
                if not self._just_fenced(plug):
                    self._record("off", plug)
        return nodes[plug]

    def _just_fenced(self, plug: str) -> bool:
        """An off of this node is already recorded for this fencing operation (the agent
        polls the status after its own off)."""
        last = [(t, a) for t, a, n in read_events(self.events.parent) if n == plug][-1:]
        return bool(last) and last[0][1] == "off" and time.time() - last[0][0] < ONE_FENCE_S

    def off(self, plug: str) -> None:
        self._power(plug, "off")

    def on(self, plug: str) -> None:
        self._power(plug, "on")

    def _power(self, plug: str, action: str) -> None:
        """Switch the node's power (nothing to do when it already is so), and log it."""
        with self._lock:
            control = self._control()
            if plug not in control.node_names():
                raise KeyError(plug)
            self._answering(plug)
            running = plug in control.lab.nodes
            if action == "off" and running:
                control.crash_node(plug)
            elif action == "on" and not running:
                control.power_on(plug)
            self._record(action, plug)

    def _record(self, action: str, plug: str) -> None:
        line = json.dumps({"t": time.time(), "action": action, "plug": plug})
        with open(self.events, "a") as handle:
            handle.write(line + "\n")


def answer(controller: PowerController, request: dict[str, Any]) -> dict[str, Any]:
    action, plug = request.get("action"), request.get("plug")
    try:
        if action == "list":
            return {"ok": True, "nodes": controller.nodes()}
        if not isinstance(plug, str):
            return {"ok": False, "error": f"{action}: no plug (node name) given"}
        if action == "status":
            during = request.get("during")
            return {"ok": True, "status": controller.status(
                plug, during if isinstance(during, str) else None)}
        if action == "off":
            controller.off(plug)
            return {"ok": True, "status": "off"}
        if action == "on":
            controller.on(plug)
            return {"ok": True, "status": "on"}
    except KeyError:
        return {"ok": False, "error": f"no lab node {plug!r} in cloud {controller.cloud.name}"}
    except DeviceDown:
        return {"ok": False, "error": f"the fence device of {plug} does not answer (broken "
                                      "on purpose: chaos scenario fence-failure)"}
    except Exception as exc:  # noqa: BLE001 - the agent must get an answer, not a hang
        log.exception("%s %s failed", action, plug)
        return {"ok": False, "error": f"{action} {plug}: {exc}"}
    return {"ok": False, "error": f"unknown action {action!r} (status, off, on, list)"}


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        controller: PowerController = self.server.controller  # type: ignore[attr-defined]
        try:
            request = json.loads(self.rfile.readline())
        except ValueError:
            reply: dict[str, Any] = {"ok": False, "error": "not a JSON request"}
        else:
            log.info("request %s", request)
            reply = answer(controller, request) if isinstance(request, dict) else \
                {"ok": False, "error": "not a JSON object"}
            log.info("reply %s", reply)
        self.wfile.write(json.dumps(reply).encode() + b"\n")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(cloud_file: str) -> None:
    from hastack.deploy.lab.state import state_dir

    controller = PowerController(cloud_file)
    path = state_dir(controller.cloud.name) / SOCKET_NAME
    if path.exists():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()                      # a dead controller's socket
        else:
            raise SystemExit(f"{path}: another power controller answers")
        finally:
            probe.close()
    server = _Server(str(path), _Handler)
    os.chmod(path, 0o600)
    server.controller = controller  # type: ignore[attr-defined]
    log.info("power controller of lab %s on %s", controller.cloud.name, path)
    try:
        server.serve_forever()
    finally:
        path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cloud", required=True, help="the lab's cloud.yaml")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    serve(str(Path(args.cloud).resolve()))


if __name__ == "__main__":
    main()
