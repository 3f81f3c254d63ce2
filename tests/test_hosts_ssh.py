"""The SSH implementation of the node interface, against a fake OpenSSH client that runs the
remote commands here (so the quoting of every command and script is really exercised)."""

from __future__ import annotations

import getpass
import ipaddress
from pathlib import Path

import pytest

from hastack.catalog.hosts import load_host_catalog
from hastack.deploy.base import NodeExec, ServiceState, listening_ports
from hastack.deploy.hosts.ssh import HostError, SshExec, SshTarget, service_state
from tests.fakes import FakeSsh

ADDRESS = ipaddress.IPv4Interface("198.18.0.11/24")


def _node(tmp_path: Path, fake: FakeSsh, user: str = "root") -> SshExec:
    target = SshTarget("198.18.0.11", user=user, identity="/keys/id_ed25519",
                       control_dir=str(tmp_path / "ssh"))
    return SshExec("ctl1", ADDRESS, target, load_host_catalog().unit_of_service(),
                   transport=fake)


def test_every_call_shares_one_master_connection_and_never_prompts(tmp_path: Path) -> None:
    fake = FakeSsh()
    node = _node(tmp_path, fake)
    node.run(["true"])
    argv = fake.calls[0]
    assert argv[0] == "ssh"
    for option in ("BatchMode=yes", "ControlMaster=auto", "ControlPersist=60s",
                   f"ControlPath={tmp_path / 'ssh'}/%C", "IdentitiesOnly=yes"):
        assert option in argv
    assert argv[-2:] == ["198.18.0.11", "true"]
    assert (tmp_path / "ssh").stat().st_mode & 0o777 == 0o700


def test_commands_keep_their_arguments_whole(tmp_path: Path) -> None:
    node = _node(tmp_path, FakeSsh())
    result = node.run(["printf", "%s|", "two words", "it's", "$HOME", "a;b"])
    assert result.stdout == "two words|it's|$HOME|a;b|"
    assert node.run(["sh", "-c", "exit 3"], check=False).returncode == 3
    with pytest.raises(HostError, match=r"ctl1: 'sh -c 'exit 3'' failed \(3\)"):
        node.run(["sh", "-c", "exit 3"])
    assert node.run(["sh", "-c", 'echo "$GREETING"'], env={"GREETING": "hi there"}).stdout \
        == "hi there\n"


def test_files_round_trip_with_mode_and_report_changes(tmp_path: Path) -> None:
    node = _node(tmp_path, FakeSsh())
    me = getpass.getuser()
    path = str(tmp_path / "etc" / "new dir" / "key")
    data = bytes(range(256))                                     # binary survives
    assert node.read(path) is None and not node.exists(path)
    assert node.write(path, data, 0o600, me) is True
    assert node.read(path) == data
    assert Path(path).stat().st_mode & 0o777 == 0o600
    assert node.write(path, data, 0o600, me) is False            # unchanged: nothing written
    assert node.write(path, data, 0o640, me) is True             # mode alone changes it
    assert node.listdir(str(tmp_path / "etc" / "new dir")) == ["key"]
    node.chmod(path, 0o400)
    assert Path(path).stat().st_mode & 0o777 == 0o400
    assert node.remove(path) is True and node.remove(path) is False
    assert node.listdir(str(tmp_path / "missing")) == []


def test_unreachable_host_is_one_line_naming_the_host(tmp_path: Path) -> None:
    node = _node(tmp_path, FakeSsh(reachable=False))
    with pytest.raises(HostError) as error:
        node.exists("/etc/hosts")
    assert str(error.value) == ("ctl1: unreachable over SSH (root@198.18.0.11:22): ssh: "
                                "connect to host 198.18.0.11 port 22: Connection refused")


def test_a_user_other_than_root_goes_through_sudo_and_its_refusal_is_named(
        tmp_path: Path) -> None:
    fake = FakeSsh()
    node = _node(tmp_path, fake, user="debian")
    assert node.run(["echo", "ok"]).stdout == "ok\n"
    assert fake.calls[-1][-1] == "sudo -n -- echo ok"
    refused = _node(tmp_path, FakeSsh(sudo_needs_password=True), user="debian")
    with pytest.raises(HostError, match="ctl1: debian has no passwordless sudo "
                                        r"\(sudo: a password is required\)"):
        refused.run(["id"])


def test_systemd_manager_speaks_hastacks_service_names(tmp_path: Path) -> None:
    fake = FakeSsh(units={"rabbitmq-server": ("active", "running"),
                          "mariadb": ("activating", "start"),
                          "keepalived": ("failed", "failed")})
    node = _node(tmp_path, fake)
    states = node.services.states()
    assert states["rabbitmq"] is ServiceState.RUNNING
    assert states["mariadb"] is ServiceState.STARTING
    assert states["keepalived"] is ServiceState.FATAL
    assert states["haproxy"] is ServiceState.STOPPED
    node.services.start("redis")
    assert fake.systemctl[-1] == ["systemctl", "start", "redis-server.service"]
    assert node.services.states()["redis"] is ServiceState.RUNNING
    assert node.services.main_pid("redis") == 4242
    assert node.services.main_pid("haproxy") is None
    assert node.services.ready()


def test_systemd_states_map_onto_hastacks() -> None:
    assert service_state("active", "exited") is ServiceState.EXITED
    assert service_state("activating", "auto-restart") is ServiceState.BACKOFF
    assert service_state("deactivating", "stop-sigterm") is ServiceState.STOPPING
    assert service_state("bogus", "") is ServiceState.UNKNOWN


def test_listening_ports_read_proc_net_tcp() -> None:
    text = ("  sl  local_address rem_address   st tx_queue rx_queue\n"
            "   0: 0B00120C:0CEA 00000000:0000 0A 00000000:00000000\n"      # 3306 LISTEN
            "   1: 0B00120C:D3B2 6400120C:0CEA 01 00000000:00000000\n")     # established
    assert listening_ports(text) == {3306}


def test_ssh_exec_is_a_node(tmp_path: Path) -> None:
    node: NodeExec = _node(tmp_path, FakeSsh())
    assert node.name == "ctl1" and str(node.address) == "198.18.0.11/24"


def test_unix_request_reaches_a_socket_on_the_host(tmp_path: Path) -> None:
    import socket
    import threading

    path = str(tmp_path / "admin.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def answer() -> None:
        connection, _ = server.accept()
        with connection:
            request = connection.recv(1024)
            connection.sendall(b"echo: " + request)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    node = _node(tmp_path, FakeSsh())
    assert node.unix_request(path, b"show stat\n") == b"echo: show stat\n"
    thread.join(5)
    server.close()
    assert node.unix_request(str(tmp_path / "none.sock"), b"x") == b""
