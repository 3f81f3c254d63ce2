"""TLS on the public VIP: the certificate hastack makes per cloud (names, chain, kept and
re-issued like a secret), the user's own (checked at load, with the cloud file's line), and
what a real TLS client makes of the rendered certificate."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from pathlib import Path

import pytest

from hastack.deploy.files import read_secrets, write_secrets
from hastack.errors import CloudFileError
from hastack.model import load_cloud
from hastack.plan import make_plan
from hastack.render import render_cloud, secret_specs, tls
from hastack.render.certificates import new_ca, new_server, pem_blocks
from hastack.render.secrets import complete
from tests.conftest import EXAMPLES

DEMO = (EXAMPLES / "demo.yaml").read_text()
VIP = "198.18.0.101"


def write_cloud(tmp_path: Path, tls_lines: str = "", text: str = DEMO) -> Path:
    path = tmp_path / "cloud.yaml"
    path.write_text(text + tls_lines)
    return path


def completed(cloud_file: Path, existing: dict[str, str] | None = None) -> dict[str, str]:
    plan = make_plan(load_cloud(cloud_file))
    return complete(existing or {}, secret_specs(plan))


def handshake(pem_files: tuple[Path, Path], cafile: Path, server_hostname: str) -> str:
    """A TLS handshake over a socket pair: the server presents the certificate, the client
    trusts only `cafile` and checks `server_hostname`; returns the negotiated version."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*pem_files)
    client_ctx = ssl.create_default_context(cafile=str(cafile))
    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(left, server_side=True) as conn:
                conn.recv(1)
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(right, server_hostname=server_hostname) as conn:
            version = conn.version() or ""
            conn.sendall(b"x")
    finally:
        thread.join(5)
    return version


def split_pem(pem: str, tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("".join(pem_blocks(pem, "CERTIFICATE")))
    key.write_text("".join(pem_blocks(pem, "PRIVATE KEY")))
    return cert, key


# --- the generated certificate -----------------------------------------------------------


def test_generated_certificate_names_the_public_vip_and_chains_to_the_cloud_ca(
        tmp_path: Path) -> None:
    from cryptography import x509

    secrets = completed(write_cloud(tmp_path))
    server = x509.load_pem_x509_certificate(
        pem_blocks(secrets[tls.PUBLIC_SECRET], "CERTIFICATE")[0].encode())
    ca = x509.load_pem_x509_certificate(pem_blocks(secrets[tls.CA_SECRET], "CERTIFICATE")[0]
                                        .encode())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == [VIP]
    assert names.get_values_for_type(x509.DNSName) == ["demo-public"]
    server.verify_directly_issued_by(ca)       # raises if the CA did not sign it
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_a_client_trusting_the_ca_accepts_the_rendered_certificate(tmp_path: Path) -> None:
    cloud_file = write_cloud(tmp_path)
    plan = make_plan(load_cloud(cloud_file))
    secrets = complete({}, secret_specs(plan))
    files = [f for f in render_cloud(plan, secrets) if f.path == tls.HAPROXY_PEM]
    assert sorted(f.node for f in files) == ["ctl1", "ctl2", "ctl3"]
    assert all(f.mode == 0o600 and f.content == files[0].content for f in files)
    ca = tmp_path / "ca.pem"
    ca.write_text(tls.ca_certificate(plan, secrets) or "")
    assert "PRIVATE KEY" not in ca.read_text()           # clients get the CA, never its key
    pem = split_pem(str(files[0].content), tmp_path)
    assert handshake(pem, ca, VIP).startswith("TLSv1.")
    assert handshake(pem, ca, "demo-public")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|doesn't match"):
        handshake(pem, ca, "198.18.0.100")                # the internal VIP is not named


def test_a_client_trusting_another_ca_refuses_the_certificate(tmp_path: Path) -> None:
    secrets = completed(write_cloud(tmp_path))
    other = tmp_path / "other-ca.pem"
    other.write_text(pem_blocks(new_ca("other"), "CERTIFICATE")[0])
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(split_pem(secrets[tls.PUBLIC_SECRET], tmp_path), other, VIP)


def test_certificates_are_kept_and_reissued_only_when_their_names_change(
        tmp_path: Path) -> None:
    first = completed(write_cloud(tmp_path))
    # Kept through secrets.yaml (multi-line PEM survives the file) and re-completion.
    write_secrets(tmp_path, first)
    assert read_secrets(tmp_path) == first
    assert completed(write_cloud(tmp_path), read_secrets(tmp_path)) == first
    # A new public address: a new server certificate from the same CA.
    moved = completed(write_cloud(tmp_path, text=DEMO.replace("public: 198.18.0.101",
                                                              "public: 198.18.0.102")), first)
    assert moved[tls.CA_SECRET] == first[tls.CA_SECRET]
    assert moved[tls.PUBLIC_SECRET] != first[tls.PUBLIC_SECRET]
    renamed = completed(write_cloud(tmp_path, "\n  tls: {hostname: api.example.org}\n"), first)
    assert renamed[tls.PUBLIC_SECRET] != first[tls.PUBLIC_SECRET]
    assert "api.example.org" in renamed["tls_public_made_for"]


def test_no_certificate_without_a_public_vip_or_with_tls_off(tmp_path: Path) -> None:
    off = completed(write_cloud(tmp_path, "\n  tls: {public: false}\n"))
    no_vip = completed(write_cloud(tmp_path, text=DEMO.replace("  public: 198.18.0.101\n", "")))
    for secrets in (off, no_vip):
        assert tls.CA_SECRET not in secrets and tls.PUBLIC_SECRET not in secrets


# --- a certificate the user supplies -----------------------------------------------------


@pytest.fixture(scope="module")
def user_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A user's CA, a server certificate it signed, and that certificate's key."""
    root = tmp_path_factory.mktemp("user-cert")
    ca = new_ca("example")
    server = new_server(ca, VIP, ["api.example.org"])
    (root / "ca.pem").write_text(pem_blocks(ca, "CERTIFICATE")[0])
    cert, key = split_pem(server, root)
    return root / "ca.pem", cert, key


def user_tls(cert: Path | str, key: Path | str) -> str:
    return f"\n  tls:\n    certificate: {cert}\n    key: {key}\n"


def test_a_user_certificate_is_what_haproxy_presents(tmp_path: Path,
                                                      user_pair: tuple[Path, Path, Path]
                                                      ) -> None:
    ca, cert, key = user_pair
    # Relative paths are relative to the cloud file.
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "api.crt").write_text(cert.read_text())
    (tmp_path / "certs" / "api.key").write_text(key.read_text())
    cloud = load_cloud(write_cloud(tmp_path, user_tls("certs/api.crt", "certs/api.key")))
    plan = make_plan(cloud)
    secrets = complete({}, secret_specs(plan))
    assert tls.CA_SECRET not in secrets                  # nothing generated
    pem = next(f for f in render_cloud(plan, secrets) if f.path == tls.HAPROXY_PEM)
    assert str(pem.content) == cert.read_text() + key.read_text()
    assert handshake(split_pem(str(pem.content), tmp_path), ca, "api.example.org")


def problem_of(cloud_file: Path) -> str:
    with pytest.raises(CloudFileError) as caught:
        load_cloud(cloud_file)
    assert len(caught.value.problems) == 1, caught.value.problems
    return str(caught.value.problems[0])


def key_line(cloud_file: Path, key: str) -> int:
    return next(i for i, line in enumerate(cloud_file.read_text().splitlines(), 1)
                if line.strip().startswith(f"{key}:"))


def test_a_key_that_is_not_the_certificates_is_an_error_at_its_line(
        tmp_path: Path, user_pair: tuple[Path, Path, Path]) -> None:
    _, cert, _ = user_pair
    other_key = tmp_path / "other.key"
    other_key.write_text("".join(pem_blocks(new_ca("x"), "PRIVATE KEY")))
    cloud_file = write_cloud(tmp_path, user_tls(cert, other_key))
    message = problem_of(cloud_file)
    assert message.startswith(f"{cloud_file}:{key_line(cloud_file, 'key')}: settings.tls.key:")
    assert f"{other_key}: not the private key of {cert}" in message


def test_a_missing_or_non_pem_certificate_is_an_error_at_its_line(
        tmp_path: Path, user_pair: tuple[Path, Path, Path]) -> None:
    _, _, key = user_pair
    cloud_file = write_cloud(tmp_path, user_tls("nowhere.pem", key))
    line = key_line(cloud_file, "certificate")
    assert problem_of(cloud_file) == (f"{cloud_file}:{line}: settings.tls.certificate: "
                                      f"{tmp_path / 'nowhere.pem'}: cannot read: "
                                      "No such file or directory")
    (tmp_path / "notes.txt").write_text("not a certificate\n")
    cloud_file = write_cloud(tmp_path, user_tls("notes.txt", key))
    assert problem_of(cloud_file).endswith(f"{tmp_path / 'notes.txt'}: not a PEM certificate")


def test_a_certificate_without_its_key_is_an_error(tmp_path: Path,
                                                   user_pair: tuple[Path, Path, Path]) -> None:
    cloud_file = write_cloud(tmp_path, f"\n  tls:\n    certificate: {user_pair[1]}\n")
    message = problem_of(cloud_file)
    assert "settings.tls" in message and "key is missing" in message


# --- the API workload over https ---------------------------------------------------------


def test_api_workload_verifies_https_with_the_cloud_ca(tmp_path: Path) -> None:
    from hastack.agents.standin_api import StandinServer
    from hastack.chaos.timeline import Request, TimelineWriter, read_events
    from hastack.chaos.workloads.api import ApiWorkload

    ca = new_ca("t")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*split_pem(new_server(ca, "127.0.0.1", ["localhost"]),
                                          tmp_path))
    server = StandinServer("127.0.0.1", 0, "node-tls", False)
    server.socket = server_ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/v3"
    trusted, untrusted = tmp_path / "ca.pem", tmp_path / "other.pem"
    trusted.write_text(pem_blocks(ca, "CERTIFICATE")[0])
    untrusted.write_text(pem_blocks(new_ca("other"), "CERTIFICATE")[0])
    try:
        for name, cacert in (("trusted", trusted), ("untrusted", untrusted)):
            with TimelineWriter(tmp_path / f"{name}.jsonl") as writer:
                ApiWorkload(writer, url, cacert=str(cacert)).run(0.5, 10.0)
    finally:
        server.shutdown()
        server.server_close()
    ok = [e for e in read_events(tmp_path / "trusted.jsonl") if isinstance(e, Request)]
    refused = [e for e in read_events(tmp_path / "untrusted.jsonl") if isinstance(e, Request)]
    assert ok and all(e.ok and e.target == "node-tls" for e in ok)
    assert refused and not any(e.ok for e in refused)
    assert all("CERTIFICATE_VERIFY_FAILED" in (e.error or "") for e in refused), refused[0]


# --- the lab's clouds.yaml ---------------------------------------------------------------


@pytest.mark.parametrize("tls_on", [True, False])
def test_clouds_yaml_goes_through_the_public_vip_trusting_the_ca(tmp_path: Path,
                                                                 tls_on: bool) -> None:
    import json

    from hastack.deploy.systems import keystone
    from tests.fake_node import FakeNode, World

    cloud_file = write_cloud(tmp_path, "" if tls_on else "\n  tls: {public: false}\n")
    plan = make_plan(load_cloud(cloud_file))
    secrets = complete({}, secret_specs(plan))
    state = tmp_path / "state"
    state.mkdir()
    write_secrets(state, secrets)
    world = World(plan, {}, state)
    client = FakeNode(world, "client", ipaddress.IPv4Interface("198.18.0.250/24"))
    world.site.client = client
    assert keystone._write_clouds_yaml(world.site)
    assert not keystone._write_clouds_yaml(world.site)       # unchanged the second time

    def cloud_of(text: bytes) -> dict[str, object]:
        return dict(json.loads(text.decode().split("\n", 1)[1])["clouds"]["hastack-lab"])

    on_client = cloud_of(client.files[keystone.CLIENT_CLOUDS_YAML])
    in_state = cloud_of(keystone.clouds_yaml_path(world.site).read_bytes())
    auth = on_client["auth"]
    assert isinstance(auth, dict)
    if tls_on:
        assert auth["auth_url"] == f"https://{VIP}:5000/v3"
        assert on_client["interface"] == "public"
        assert on_client["cacert"] == keystone.CLIENT_CA
        assert in_state["cacert"] == str(state / keystone.CA_FILE)
        ca = client.files[keystone.CLIENT_CA].decode()
        assert ca == tls.ca_certificate(plan, secrets) == (state / keystone.CA_FILE).read_text()
        assert keystone._bootstrap_args(world.site)[-1] == f"https://{VIP}:5000/v3"
    else:
        assert auth["auth_url"] == "http://198.18.0.100:5000/v3"
        assert "cacert" not in on_client and keystone.CLIENT_CA not in client.files
        assert keystone._bootstrap_args(world.site)[-1] == f"http://{VIP}:5000/v3"


def test_a_certificate_near_its_end_is_made_again(tmp_path: Path) -> None:
    first = completed(write_cloud(tmp_path))
    ending = dict(first)
    ending[tls.PUBLIC_SECRET] = new_server(first[tls.CA_SECRET], VIP, ["demo-public"],
                                           valid_days=10)
    renewed = completed(write_cloud(tmp_path), ending)
    assert renewed[tls.PUBLIC_SECRET] not in (ending[tls.PUBLIC_SECRET],
                                              first[tls.PUBLIC_SECRET])
    assert renewed[tls.CA_SECRET] == first[tls.CA_SECRET]


def test_a_user_certificate_for_other_names_is_an_error(tmp_path: Path) -> None:
    ca = new_ca("example")
    cert, key = split_pem(new_server(ca, "192.0.2.7", ["elsewhere.example.org"]), tmp_path)
    cloud_file = write_cloud(tmp_path, user_tls(cert, key))
    message = problem_of(cloud_file)
    line = key_line(cloud_file, "certificate")
    assert message == (f"{cloud_file}:{line}: settings.tls.certificate: {cert}: names "
                       f"192.0.2.7, elsewhere.example.org, not {VIP}: clients of the public "
                       "VIP would refuse it")
    # Naming the hostname the cloud file gives is enough.
    cloud_file = write_cloud(tmp_path, user_tls(cert, key)
                             + "    hostname: elsewhere.example.org\n")
    assert load_cloud(cloud_file).public_hostname == "elsewhere.example.org"


# --- the chaos API workload's target -----------------------------------------------------


class _Control:
    """What `workload_options` reads of a deployment."""

    def __init__(self, cloud_file: Path, state: Path) -> None:
        self.cloud = load_cloud(cloud_file)
        self.plan = make_plan(self.cloud)
        self.state = state
        self._secrets = complete({}, secret_specs(self.plan))

    def secrets(self) -> dict[str, str]:
        return self._secrets

    def standin_needed(self) -> bool:
        return False


@pytest.mark.parametrize("tls_on", [True, False])
def test_the_api_workload_talks_https_to_the_public_vip(tmp_path: Path, tls_on: bool) -> None:
    from typing import Any, cast

    from hastack.chaos.scenarios import workload_options

    control = _Control(write_cloud(tmp_path, "" if tls_on else "\n  tls: {public: false}\n"),
                       tmp_path)
    api = workload_options(cast(Any, control), "run-1")["api"]
    if tls_on:
        assert api["target"] == f"https://{VIP}:5000/v3"
        assert Path(api["cacert"]).read_text() == tls.ca_certificate(control.plan,
                                                                     control.secrets())
    else:
        assert api["target"] == "http://198.18.0.100:5000/v3" and "cacert" not in api


def test_an_expired_user_certificate_is_an_error(tmp_path: Path) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "old")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=400))
            .not_valid_after(now - datetime.timedelta(days=35))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(VIP))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "old.crt", tmp_path / "old.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    message = problem_of(write_cloud(tmp_path, user_tls(cert_file, key_file)))
    expired_on = (now - datetime.timedelta(days=35)).strftime("%Y-%m-%d")
    assert message.endswith(f"settings.tls.certificate: {cert_file}: expired on {expired_on}")


@pytest.mark.parametrize("tls_on", [True, False])
def test_apis_behind_the_public_vip_read_the_scheme_from_haproxy(tmp_path: Path,
                                                                 tls_on: bool) -> None:
    import configparser

    plan = make_plan(load_cloud(write_cloud(tmp_path, "" if tls_on else
                                            "\n  tls: {public: false}\n")))
    files = {f.path: f for f in render_cloud(plan, complete({}, secret_specs(plan)))
             if f.node == "ctl1"}
    for path in ("etc/keystone/keystone.conf", "etc/glance/glance-api.conf",
                 "etc/nova/nova.conf", "etc/neutron/neutron.conf", "etc/cinder/cinder.conf"):
        ini = configparser.ConfigParser(interpolation=None)
        ini.read_string(str(files[path].content))
        parsing = ini.get("oslo_middleware", "enable_proxy_headers_parsing", fallback=None)
        assert parsing == ("true" if tls_on else None), path
    nova = configparser.ConfigParser(interpolation=None)
    nova.read_string(str(files["etc/nova/nova.conf"].content))
    scheme = "https" if tls_on else "http"
    assert nova["vnc"]["novncproxy_base_url"] == f"{scheme}://{VIP}:6080/vnc_auto.html"
