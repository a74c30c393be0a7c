"""sys/audit with hvac, the audit file's content, `cairn audit verify`, and fail-closed auditing."""

import json
import re
import subprocess

import hvac
import pytest
import requests

from conftest import make_token, policy_client, unique


def _lines(path):
    return [line for line in path.read_text().splitlines() if line.strip()]


def _walk(obj, key=None):
    """Yields (key, value) for every scalar in a JSON document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, key)
    else:
        yield key, obj


def _verify(cairn_bin, path):
    return subprocess.run([str(cairn_bin), "audit", "verify", str(path)], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.fixture
def audited(dev_server, root):
    """The dev server with a file audit device at <workdir>/audit.log, and some traffic in it."""
    path = dev_server.workdir / "audit.log"
    response = root.sys.enable_audit_device("file", options={"file_path": str(path)})
    assert response.status_code == 204
    password = unique("audited-password")
    dev_server.remember(password)
    root.secrets.kv.v2.create_or_update_secret("app/db", secret={"password": password, "user": "app"})
    assert root.secrets.kv.v2.read_secret("app/db", raise_on_deleted_version=True)["data"]["data"]["password"] == password
    token, _ = make_token(dev_server, root, policies=["default"], ttl="1h")
    dev_server.client(token).auth.token.lookup_self()
    return path, password, token


def test_enable_audit_device(dev_server, root):
    path = dev_server.workdir / "enabled.log"
    assert root.sys.enable_audit_device("file", options={"file_path": str(path)}).status_code == 204
    root.auth.token.lookup_self()
    assert path.exists() and _lines(path)


def test_enable_audit_device_with_path_and_description(dev_server, root):
    path = dev_server.workdir / "second.log"
    root.sys.enable_audit_device("file", path="second", description="copy for SIEM",
                                 options={"file_path": str(path)})
    device = root.sys.list_enabled_audit_devices()["data"]["second/"]
    assert device["type"] == "file"
    assert device["description"] == "copy for SIEM"
    assert device["options"]["file_path"] == str(path)


def test_enable_audit_device_bad_input(dev_server, root):
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.enable_audit_device("no-such-type", options={"file_path": str(dev_server.workdir / "x.log")})
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.enable_audit_device("file", options={})
    root.sys.enable_audit_device("file", options={"file_path": str(dev_server.workdir / "a.log")})
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.enable_audit_device("file", options={"file_path": str(dev_server.workdir / "b.log")})
    assert list(root.sys.list_enabled_audit_devices()["data"]) == ["file/"]


def test_list_enabled_audit_devices(audited, root):
    path, _, _ = audited
    devices = root.sys.list_enabled_audit_devices()["data"]
    assert list(devices) == ["file/"]
    assert devices["file/"]["type"] == "file"
    assert devices["file/"]["options"]["file_path"] == str(path)


def test_list_enabled_audit_devices_empty(root):
    assert root.sys.list_enabled_audit_devices()["data"] == {}


def test_disable_audit_device(audited, root):
    path, _, _ = audited
    assert root.sys.disable_audit_device("file").status_code == 204
    assert root.sys.list_enabled_audit_devices()["data"] == {}
    size = path.stat().st_size
    root.auth.token.lookup_self()
    root.auth.token.lookup_self()
    assert path.stat().st_size == size, "a disabled device kept writing"


def test_audit_needs_sudo(dev_server, root):
    c = policy_client(dev_server, root, "kv-read", 'path "secret/*" { capabilities = ["read"] }')
    with pytest.raises(hvac.exceptions.Forbidden):
        c.sys.enable_audit_device("file", options={"file_path": str(dev_server.workdir / "evil.log")})
    with pytest.raises(hvac.exceptions.Forbidden):
        c.sys.list_enabled_audit_devices()


def test_audit_file_is_json_lines_with_hmac_values(audited, dev_server):
    path, password, token = audited
    text = path.read_text()
    assert password not in text, "a secret value is in the audit log in plaintext"
    assert token not in text, "a token is in the audit log in plaintext"
    assert dev_server.root_token not in text, "the root token is in the audit log in plaintext"
    assert "hmac-sha256:" in text

    entries = [json.loads(line) for line in _lines(path)]
    assert len(entries) >= 6
    types = {e.get("type") for e in entries}
    assert {"request", "response"} <= types
    # The KV read's response names the path in clear and carries the password as an HMAC.
    passwords = [v for e in entries if "secret/data/app/db" in json.dumps(e)
                 for k, v in _walk(e) if k == "password"]
    assert passwords, "no audit entry carries the secret's 'password' field"
    for v in passwords:
        assert isinstance(v, str) and re.fullmatch(r"hmac-sha256:[0-9a-f]{64}", v), v
    # The same value HMACs the same way within one device: correlation without disclosure.
    assert len(set(passwords)) == 1


def test_cairn_audit_verify_accepts_untouched_file(audited, cairn_bin):
    path, _, _ = audited
    result = _verify(cairn_bin, path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cairn_audit_verify_names_an_edited_line(audited, cairn_bin):
    path, _, _ = audited
    lines = _lines(path)
    assert len(lines) >= 5
    edited = 3  # 1-based
    line = lines[edited - 1]
    m = re.search(r"hmac-sha256:([0-9a-f])", line)
    if m:
        flipped = "0" if m.group(1) != "0" else "1"
        new_line = line[:m.start(1)] + flipped + line[m.end(1):]
    else:
        new_line = line.replace('"request"', '"respons_"', 1).replace('"response"', '"request_"', 1)
    assert new_line != line
    json.loads(new_line)  # still valid JSON: only the chain can tell
    lines[edited - 1] = new_line
    path.write_text("\n".join(lines) + "\n")

    result = _verify(cairn_bin, path)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    # The edited line itself, or the next one whose back-link no longer matches.
    assert re.search(r"line\D{0,3}(3|4)\b", out, re.IGNORECASE), out


def test_cairn_audit_verify_detects_a_removed_line(audited, cairn_bin):
    path, _, _ = audited
    lines = _lines(path)
    del lines[2]
    path.write_text("\n".join(lines) + "\n")
    result = _verify(cairn_bin, path)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert re.search(r"line\D{0,3}3\b", out, re.IGNORECASE), out


def test_cairn_audit_verify_missing_file_fails(cairn_bin, tmp_path):
    assert _verify(cairn_bin, tmp_path / "absent.log").returncode != 0


def _enable_unwritable_device(root, name):
    # The enable's own response may already go to the new device and fail
    # closed; either way the device must end up enabled.
    try:
        root.sys.enable_audit_device("file", path=name, options={"file_path": "/dev/full"})
    except hvac.exceptions.InternalServerError:
        pass


def test_fail_closed_when_no_device_can_write(dev_server, root):
    secret = unique("fail-closed")
    dev_server.remember(secret)
    root.secrets.kv.v2.create_or_update_secret("app/db", secret={"password": secret})
    _enable_unwritable_device(root, "full")

    headers = {"X-Vault-Token": dev_server.root_token}
    r = requests.get(f"{dev_server.url}/v1/secret/data/app/db", headers=headers, timeout=10)
    assert r.status_code == 500, r.text
    assert secret not in r.text
    assert r.json()["errors"]

    # A write is refused before it happens.
    r = requests.post(f"{dev_server.url}/v1/secret/data/app/db", headers=headers, timeout=10,
                      json={"data": {"password": "written-while-blind"}})
    assert r.status_code == 500, r.text
    with pytest.raises(hvac.exceptions.InternalServerError):
        root.auth.token.create(ttl="1h")


def test_one_writable_device_is_enough(dev_server, root):
    good = dev_server.workdir / "good.log"
    root.sys.enable_audit_device("file", options={"file_path": str(good)})
    _enable_unwritable_device(root, "full")
    secret = unique("one-device")
    dev_server.remember(secret)
    root.secrets.kv.v2.create_or_update_secret("app/db", secret={"password": secret})
    got = root.secrets.kv.v2.read_secret("app/db", raise_on_deleted_version=True)
    assert got["data"]["data"]["password"] == secret
    assert "full/" in root.sys.list_enabled_audit_devices()["data"]
    assert secret not in good.read_text()
