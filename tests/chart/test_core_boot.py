"""The rendered core configuration and certificates run a real `cairn server`:
the HCL the chart writes for a node parses, the TLS files helm generates
(genCA / genSignedCert) load into the API listener and the mutually
authenticated cluster port, and clients verify the server by the names the
chart puts in the certificate.

Only what cannot exist outside Kubernetes is rewritten: file paths move to a
temporary directory and the listen addresses to free loopback ports. Needs the
`cairn` binary (CAIRN_BIN, else target/debug/cairn); scripts/test builds it
before this suite."""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import REPO_ROOT, RELEASE, one, render

FULL = RELEASE


def cairn_binary() -> Path:
    if os.environ.get("CAIRN_BIN"):
        return Path(os.environ["CAIRN_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "debug" / "cairn"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def node(tmp_path):
    binary = cairn_binary()
    if not binary.exists():
        pytest.skip(f"no cairn binary at {binary} (build it, or set CAIRN_BIN): the rendered config is not booted")
    docs = render()
    secret = one(docs, "Secret", f"{FULL}-tls")
    tls = tmp_path / "tls"
    tls.mkdir()
    for key in ("ca.crt", "tls.crt", "tls.key"):
        (tls / key).write_bytes(base64.b64decode(secret["data"][key]))
    (tls / "tls.key").chmod(0o600)
    hcl = one(docs, "ConfigMap", f"{FULL}-config")["data"][f"{FULL}-0.hcl"]
    api_port, cluster_port = free_port(), free_port()
    rewritten = hcl.replace("/etc/cairn/tls/", f"{tls}/").replace("/var/lib/cairn/data", str(tmp_path / "data"))
    rewritten = rewritten.replace('address       = "0.0.0.0:8200"', f'address       = "127.0.0.1:{api_port}"')
    rewritten = re.sub(r'cluster_addr = "[^"]+"', f'cluster_addr = "127.0.0.1:{cluster_port}"', rewritten)
    assert rewritten.count(str(tls)) == 7  # listener 2, peer TLS 3, two retry_join CAs and f"127.0.0.1:{api_port}" in rewritten
    config = tmp_path / "config.hcl"
    config.write_text(rewritten)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "VAULT_"))}
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([str(binary), "server", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield {"api": api_port, "cluster": cluster_port, "tls": tls, "log": tmp_path / "server.log", "proc": proc}
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()


def wait_health(url: str, ca: Path, proc, log: Path) -> requests.Response:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"cairn server exited ({proc.returncode}) with the chart's config:\n{log.read_text()}")
        try:
            return requests.get(url, verify=str(ca), timeout=2)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                pytest.fail(f"cairn server never answered {url}:\n{log.read_text()}")
            time.sleep(0.1)


def test_rendered_node_config_boots_with_generated_tls(node):
    ca = node["tls"] / "ca.crt"
    # A fresh node: up, uninitialised (501), serving TLS verified by the chart's
    # CA under the names the chart gave it.
    for host in ("localhost", "127.0.0.1"):
        r = wait_health(f"https://{host}:{node['api']}/v1/sys/health", ca, node["proc"], node["log"])
        assert r.status_code == 501, r.text
        assert r.json()["initialized"] is False
    # The liveness probe's parameters make an uninitialised node "alive".
    r = requests.get(
        f"https://localhost:{node['api']}/v1/sys/health?standbyok=true&sealedcode=200&uninitcode=200", verify=str(ca), timeout=5
    )
    assert r.status_code == 200
    # ... while the readiness probe keeps it out of the Service.
    r = requests.get(f"https://localhost:{node['api']}/v1/sys/health?standbyok=true", verify=str(ca), timeout=5)
    assert r.status_code != 200


def _cluster_request(port: int, tls: Path, with_cert: bool) -> bytes:
    ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    if with_cert:
        ctx.load_cert_chain(str(tls / "tls.crt"), str(tls / "tls.key"))
    # Peers dial each other by their names under the headless Service.
    server_name = f"{FULL}-1.{FULL}-internal.cairn-system.svc"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            return data


def test_cluster_port_takes_the_generated_peer_certificate_and_refuses_others(node):
    wait_health(f"https://localhost:{node['api']}/v1/sys/health", node["tls"] / "ca.crt", node["proc"], node["log"])
    answer = _cluster_request(node["cluster"], node["tls"], with_cert=True)
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        answer = _cluster_request(node["cluster"], node["tls"], with_cert=False)
        # TLS 1.3 reports a refused client certificate on the first read; an
        # empty answer (closed without a response) counts as refused too.
        if not answer:
            raise ssl.SSLError("closed without a response")
