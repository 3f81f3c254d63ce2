"""HAProxy renderer: every rendered haproxy.cfg passes `haproxy -c`, and it does what a cloud
operator relies on (VIP binds, budget timings, one Galera writer without failback)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile, haproxy, tls
from hastack.render.budget import make_budget
from hastack.render.secrets import complete
from tests.conftest import (
    EXAMPLE_NAMES,
    example_plan,
    plan_from_text,
    render_example,
    require_program,
)

DEMO = (Path(__file__).resolve().parent.parent / "hastack" / "examples" / "demo.yaml").read_text()


def render(plan: Plan) -> list[RenderedFile]:
    """Only this renderer, so other systems' renderers cannot break these tests."""
    ctx = RenderContext(plan, make_budget(plan.cloud), complete({}, haproxy.secrets_needed(plan)))
    return haproxy.render(ctx)


def sections(content: str) -> dict[str, list[str]]:
    """'listen keystone' -> its directive lines, without comments or blank lines."""
    result: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in content.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line[0].isspace():
            current = result.setdefault(line, [])
        else:
            current.append(line.strip())
    return result


def servers(lines: list[str]) -> list[list[str]]:
    return [line.split() for line in lines if line.startswith("server ")]


def run_haproxy_check(path: Path) -> subprocess.CompletedProcess[str]:
    # -dW: zero-warning mode, a warning fails the check as an error would.
    return subprocess.run([require_program("haproxy"), "-c", "-dW", "-f", str(path)],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def demo_files() -> list[RenderedFile]:
    return render(example_plan("demo"))


def with_certificate_in(content: str, files: list[RenderedFile], node: str, root: Path) -> str:
    """haproxy.cfg reading the node's rendered TLS certificate from `root`, not /etc."""
    pem = next((f for f in files if f.node == node and f.path == tls.HAPROXY_PEM), None)
    if pem is None:
        return content
    path = root / node / tls.HAPROXY_PEM
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(pem.content))
    return content.replace(f"crt /{tls.HAPROXY_PEM}", f"crt {path}")


@pytest.mark.validator
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_haproxy_accepts_every_rendered_config(name: str, tmp_path: Path) -> None:
    every = render_example(name)
    files = [f for f in every if f.path == haproxy.CONFIG_PATH]
    assert files
    for f in files:
        path = tmp_path / f.node / "haproxy.cfg"
        path.parent.mkdir()
        path.write_text(with_certificate_in(str(f.content), every, f.node, tmp_path))
        result = run_haproxy_check(path)
        assert result.returncode == 0, f"{name}/{f.node}: {result.stdout}{result.stderr}"


@pytest.mark.validator
def test_haproxy_check_rejects_a_corrupted_config(demo_files: list[RenderedFile],
                                                  tmp_path: Path) -> None:
    content = str(demo_files[0].content).replace("stick on dst", "stick on dst_nonsense")
    assert content != demo_files[0].content
    path = tmp_path / "haproxy.cfg"
    path.write_text(content)
    result = run_haproxy_check(path)
    assert result.returncode != 0
    assert "dst_nonsense" in result.stdout + result.stderr


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_one_file_per_haproxy_node(name: str) -> None:
    plan = example_plan(name)
    files = render(plan)
    assert [(f.node, f.path) for f in files] == [
        (node, "etc/haproxy/haproxy.cfg") for node in plan.nodes_running("haproxy")
    ]


def test_rendering_is_deterministic() -> None:
    assert render(example_plan("demo")) == render(example_plan("demo"))


def test_galera_has_one_writer_and_never_fails_back(demo_files: list[RenderedFile]) -> None:
    galera = sections(str(demo_files[0].content))["listen galera"]
    assert "mode tcp" in galera
    assert f"stick-table type ip size {haproxy.MAXCONN + 1} nopurge peers hastack" in galera
    assert "stick on dst" in galera


def test_load_balancers_share_the_galera_stick_table(demo_files: list[RenderedFile]) -> None:
    """Every HAProxy names itself and all its peers: a VIP that moves keeps the writer."""
    plan = example_plan("demo")
    port = plan.port("haproxy", "peers")
    expected = [f"peer {n} {plan.cloud.node(n).ip}:{port}" for n in plan.nodes_running("haproxy")]
    for f in demo_files:
        parsed = sections(str(f.content))
        assert parsed["peers hastack"] == expected
        assert f"localpeer {f.node}" in parsed["global"]


def test_a_single_load_balancer_has_no_peers() -> None:
    split = (Path(__file__).resolve().parent.parent / "hastack" / "examples"
             / "split-roles.yaml").read_text()
    one = plan_from_text(split.replace("  - {name: lb2, address: 198.18.2.6, roles: "
                                       "[loadbalancer]}\n", ""))
    assert one.nodes_running("haproxy") == ("lb1",)
    content = str(render(one)[0].content)
    assert "peers" not in content and "localpeer" not in content


def test_galera_writer_follows_the_plan_on_split_roles() -> None:
    plan = example_plan("split-roles")
    galera = sections(str(render(plan)[0].content))["listen galera"]
    frontend = next(f for f in plan.frontends if f.single_writer)
    assert [row[1] for row in servers(galera) if "backup" not in row] == [frontend.backends[0]]
    assert [row[2] for row in servers(galera)] == [
        f"{plan.cloud.node(n).ip}:3306" for n in frontend.backends
    ]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_frontend_binds_each_of_its_vips(name: str) -> None:
    plan = example_plan(name)
    vips = dict(plan.cloud.vips.items())
    for f in render(plan):
        parsed = sections(str(f.content))
        for frontend in plan.frontends:
            section = parsed[f"listen {frontend.name}"]
            binds = [line.split()[1] for line in section if line.startswith("bind ")]
            assert binds == [f"{vips[v]}:{frontend.port}" for v in frontend.vips]
            assert "internal" in frontend.vips


def test_api_frontends_bind_both_vips_when_there_is_a_public_one(
        demo_files: list[RenderedFile]) -> None:
    keystone = sections(str(demo_files[0].content))["listen keystone"]
    assert "bind 198.18.0.100:5000" in keystone
    assert f"bind 198.18.0.101:5000 ssl crt /{tls.HAPROXY_PEM}" in keystone


def test_only_the_public_vip_terminates_tls_and_backends_learn_the_scheme(
        demo_files: list[RenderedFile]) -> None:
    parsed = sections(str(demo_files[0].content))
    for name, lines in parsed.items():
        for bind in (line for line in lines if line.startswith("bind ")):
            assert ("ssl crt" in bind) == bind.startswith("bind 198.18.0.101:"), (name, bind)
    keystone = parsed["listen keystone"]
    # The client's own X-Forwarded-Proto is overwritten either way: never trusted.
    assert "http-request set-header X-Forwarded-Proto https if { ssl_fc }" in keystone
    assert "http-request set-header X-Forwarded-Proto http if !{ ssl_fc }" in keystone
    assert not any("X-Forwarded-Proto" in line for line in parsed["listen galera"])
    assert "ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets" in parsed["global"]


def test_without_tls_the_public_vip_is_plain_http() -> None:
    plan = plan_from_text(DEMO.replace("  monitoring: {enabled: true}",
                                       "  monitoring: {enabled: true}\n  tls: {public: false}"))
    content = str(render(plan)[0].content)
    assert "ssl" not in content and "X-Forwarded-Proto" not in content
    assert "bind 198.18.0.101:5000\n" in content


@pytest.mark.parametrize("target", [2.0, 5.0, 12.0])
def test_inter_times_fall_equals_the_budget(target: float) -> None:
    failover = f"  failover: {{target_seconds: {target}}}"
    text = DEMO.replace("  monitoring: {enabled: true}",
                        "  monitoring: {enabled: true}\n" + failover)
    plan = plan_from_text(text)
    budget = make_budget(plan.cloud)
    content = str(render(plan)[0].content)
    rows = [row for lines in sections(content).values() for row in servers(lines)]
    assert rows
    for row in rows:
        inter = int(row[row.index("inter") + 1].removesuffix("ms"))
        fall = int(row[row.index("fall") + 1])
        rise = int(row[row.index("rise") + 1])
        assert inter * fall == budget.haproxy_down_s * 1000
        assert (inter, fall, rise) == (budget.haproxy_inter_ms, budget.haproxy_fall,
                                       budget.haproxy_rise)
    assert f"timeout connect {budget.haproxy_connect_timeout_ms}ms" in content


def test_checks_follow_the_catalog(demo_files: list[RenderedFile]) -> None:
    parsed = sections(str(demo_files[0].content))
    assert "option httpchk GET /v3" in parsed["listen keystone"]
    assert "option httpchk GET /healthcheck" in parsed["listen glance-api"]
    # glance-registry has a TCP check: no HTTP check directives at all
    assert not [line for line in parsed["listen glance-registry"] if "httpchk" in line]


def test_back_ends_are_node_ips_on_the_process_port(demo_files: list[RenderedFile]) -> None:
    nova_metadata = sections(str(demo_files[0].content))["listen nova-metadata"]
    assert [row[1:3] for row in servers(nova_metadata)] == [
        ["ctl1", "198.18.0.11:8775"], ["ctl2", "198.18.0.12:8775"], ["ctl3", "198.18.0.13:8775"]
    ]


def test_admin_interface_is_only_a_root_socket(demo_files: list[RenderedFile]) -> None:
    content = str(demo_files[0].content)
    glob = sections(content)["global"]
    assert "stats socket /run/haproxy/admin.sock mode 600 level admin" in glob
    assert "pidfile /run/haproxy.pid" in glob
    assert "stats uri" not in content and "stats enable" not in content
    assert haproxy.secrets_needed(example_plan("demo")) == []


# Three fake Galera members: per node a TCP server on :3306 that greets with the node's name,
# and a check on :9200 answering 503 while `<state dir>/<node>.down` exists, else 200.
FAKE_GALERA = """
import os, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import BaseRequestHandler, ThreadingTCPServer

state = sys.argv[1]
ThreadingTCPServer.allow_reuse_address = ThreadingTCPServer.daemon_threads = True
for name, ip in (arg.split("=") for arg in sys.argv[2:]):
    class Db(BaseRequestHandler):
        def handle(self, name=name):
            self.request.sendall(name.encode() + b"\\n")
    class Check(BaseHTTPRequestHandler):
        def do_GET(self, name=name):
            down = os.path.exists(os.path.join(state, name + ".down"))
            self.send_response(503 if down else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        def handle(self):
            try:
                super().handle()
            except OSError:
                pass
        def log_message(self, *args):
            pass
    for server in (ThreadingTCPServer((ip, 3306), Db), ThreadingHTTPServer((ip, 9200), Check)):
        threading.Thread(target=server.serve_forever, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""


def raw_sections(content: str) -> dict[str, str]:
    """'listen galera' -> the section's text, header line included."""
    result: dict[str, str] = {}
    header = ""
    for line in content.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            header = line
        if header:
            result[header] = result.get(header, "") + line + "\n"
    return result


class GaleraLab:
    """The rendered `listen galera` run by a real HAProxy in a network namespace of its own,
    in front of three fake members whose health checks the test flips."""

    def __init__(self, content: str, tmp_path: Path) -> None:
        self.ns = f"hs-test-hap-{os.getpid()}"
        self.dir = tmp_path
        self.socket = tmp_path / "admin.sock"
        self.procs: list[subprocess.Popen[str]] = []
        parsed = raw_sections(content)
        galera = parsed["listen galera"]
        # The cloud's addresses, moved into 198.18.250.0/24 (only inside the namespace).
        galera = galera.replace("198.18.0.", "198.18.250.")
        self.nodes = {m[0]: m[1] for m in re.findall(r"server (\S+) ([\d.]+):3306", galera)}
        self.vip = re.findall(r"bind ([\d.]+):3306", galera)[0]
        # The stick table is shared with the other load balancers: this HAProxy is ctl1 among
        # its peers (the others are not there; it keeps the table alone).
        peers = parsed["peers hastack"].replace("198.18.0.", "198.18.250.")
        config = (f"global\n    stats socket {self.socket} mode 600 level admin\n"
                  f"    localpeer ctl1\n\n{parsed['defaults']}\n{peers}\n{galera}")
        (tmp_path / "haproxy.cfg").write_text(config)
        (tmp_path / "fake_galera.py").write_text(FAKE_GALERA)

    def __enter__(self) -> GaleraLab:
        ip = require_program("ip")
        subprocess.run([ip, "netns", "add", self.ns], check=True)
        try:
            subprocess.run([ip, "-n", self.ns, "link", "set", "lo", "up"], check=True)
            for address in [*self.nodes.values(), self.vip]:
                subprocess.run([ip, "-n", self.ns, "addr", "add", f"{address}/24", "dev", "lo"],
                               check=True)
            fake = self._start(sys.executable, str(self.dir / "fake_galera.py"), str(self.dir),
                               *[f"{n}={a}" for n, a in self.nodes.items()],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert fake.stdout is not None and fake.stdout.readline().strip() == "ready"
            self.start_haproxy()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            self._stop(proc)
        subprocess.run([require_program("ip"), "netns", "del", self.ns], check=False)

    def _start(self, *cmd: str, **kwargs: object) -> subprocess.Popen[str]:
        proc = subprocess.Popen([require_program("ip"), "netns", "exec", self.ns, *cmd],
                                text=True, **kwargs)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    @staticmethod
    def _stop(proc: subprocess.Popen[str]) -> None:
        if proc.stdin:
            proc.stdin.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def start_haproxy(self) -> None:
        self.socket.unlink(missing_ok=True)
        self.haproxy = self._start(require_program("haproxy"), "-W", "-db",
                                   "-f", str(self.dir / "haproxy.cfg"),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            assert self.haproxy.poll() is None and time.monotonic() < deadline, "no HAProxy"
            time.sleep(0.05)

    def restart_haproxy(self) -> None:
        self._stop(self.haproxy)
        self.start_haproxy()

    def admin(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def set_healthy(self, node: str, healthy: bool) -> None:
        flag = self.dir / f"{node}.down"
        if healthy:
            flag.unlink(missing_ok=True)
        else:
            flag.touch()

    def wait_states(self, **wanted: str) -> None:
        """Until HAProxy sees each named server in that state ("UP", "DOWN")."""
        deadline = time.monotonic() + 15
        while True:
            rows = [line.split(",") for line in self.admin("show stat").splitlines()]
            states = {row[1]: row[17] for row in rows if len(row) > 17 and row[0] == "galera"}
            if all(states.get(n, "").startswith(s) for n, s in wanted.items()):
                return
            assert time.monotonic() < deadline, f"wanted {wanted}, HAProxy shows {states}"
            time.sleep(0.1)

    def connect(self) -> str:
        """The member a new client connection on the VIP reaches."""
        code = (f"import socket; s = socket.create_connection(({self.vip!r}, 3306), 5); "
                "print(s.recv(64).decode().strip())")
        result = subprocess.run([require_program("ip"), "netns", "exec", self.ns,
                                 sys.executable, "-c", code],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def stuck_to(self) -> list[str]:
        """The servers of the stick table's entries (`show table galera`)."""
        return re.findall(r"server_key=(\S+)", self.admin("show table galera"))


@pytest.fixture
def galera_lab(tmp_path: Path) -> Iterator[GaleraLab]:
    if os.geteuid() != 0:
        pytest.fail("the Galera failover test needs root (ip netns)")
    # A 2 s failover target: checks every 500 ms, so the test takes a few seconds.
    failover = "  failover: {target_seconds: 2.0}"
    text = DEMO.replace("  monitoring: {enabled: true}",
                        "  monitoring: {enabled: true}\n" + failover)
    with GaleraLab(str(render(plan_from_text(text))[0].content), tmp_path) as lab:
        yield lab


@pytest.mark.validator
def test_galera_never_fails_back_through_a_real_haproxy(galera_lab: GaleraLab) -> None:
    lab = galera_lab
    ctl1, ctl2, ctl3 = lab.nodes
    lab.wait_states(**{n: "UP" for n in lab.nodes})
    assert lab.stuck_to() == []
    # A clean start: the first server, every time.
    assert [lab.connect() for _ in range(3)] == [ctl1] * 3
    assert lab.stuck_to() == [ctl1]
    # The writer fails its check: new connections go to the next member...
    lab.set_healthy(ctl1, False)
    lab.wait_states(**{ctl1: "DOWN"})
    assert [lab.connect() for _ in range(3)] == [ctl2] * 3
    # ...and stay there when the old writer is back: no failback, never two writers.
    lab.set_healthy(ctl1, True)
    lab.wait_states(**{ctl1: "UP"})
    assert [lab.connect() for _ in range(3)] == [ctl2] * 3
    assert lab.stuck_to() == [ctl2]
    # A restart loses the table: a healthy member is chosen, and kept.
    lab.set_healthy(ctl1, False)
    lab.restart_haproxy()
    lab.wait_states(**{ctl1: "DOWN", ctl2: "UP", ctl3: "UP"})
    assert lab.connect() == ctl2
    lab.set_healthy(ctl1, True)
    lab.wait_states(**{ctl1: "UP"})
    assert [lab.connect() for _ in range(2)] == [ctl2] * 2
