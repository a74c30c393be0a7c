"""The fourteen `secrets.kv.v2` methods of hvac against `secret/`, and bad input on KV paths."""

import http.client
import json
import re

import hvac
import pytest
import requests

from conftest import unique

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}


def duration_seconds(text: str) -> float:
    """Seconds in a Vault duration string ("3h", "3h0m0s", "0s", "90m")."""
    parts = _GO_DURATION.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def _secret(dev_server, prefix="v"):
    value = unique(prefix)
    dev_server.remember(value)
    return value


# ----------------------------------------------------------------- config ---

def test_configure(kv):
    response = kv.configure(max_versions=5, cas_required=False, delete_version_after="3h")
    assert response.status_code == 204
    conf = kv.read_configuration()["data"]
    assert conf["max_versions"] == 5
    assert conf["cas_required"] is False
    assert duration_seconds(conf["delete_version_after"]) == 3 * 3600


def test_read_configuration_defaults(kv):
    conf = kv.read_configuration()["data"]
    assert conf["max_versions"] == 0
    assert conf["cas_required"] is False
    assert duration_seconds(conf["delete_version_after"]) == 0


def test_configure_cas_required_applies_to_writes(kv):
    kv.configure(cas_required=True)
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        kv.create_or_update_secret("strict", secret={"k": "v"})
    assert err.value.errors
    assert kv.create_or_update_secret("strict", secret={"k": "v"}, cas=0)["data"]["version"] == 1


def test_configure_max_versions_trims_old_versions(kv):
    kv.configure(max_versions=3)
    for i in range(1, 6):
        kv.create_or_update_secret("trim", secret={"i": str(i)})
    meta = kv.read_secret_metadata("trim")["data"]
    assert meta["current_version"] == 5
    assert meta["oldest_version"] == 3
    assert sorted(meta["versions"]) == ["3", "4", "5"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version("trim", version=1, raise_on_deleted_version=True)
    assert kv.read_secret_version("trim", version=3, raise_on_deleted_version=True)["data"]["data"] == {"i": "3"}


# ------------------------------------------------------------- read/write ---

def test_create_or_update_secret(dev_server, kv):
    value = _secret(dev_server)
    data = kv.create_or_update_secret("app/db", secret={"password": value, "user": "app"})["data"]
    assert data["version"] == 1
    assert data["deletion_time"] == ""
    assert data["destroyed"] is False
    assert isinstance(data["created_time"], str) and data["created_time"].endswith("Z")
    assert data["custom_metadata"] is None
    assert kv.create_or_update_secret("app/db", secret={"password": value})["data"]["version"] == 2


def test_create_or_update_secret_with_cas(dev_server, kv):
    assert kv.create_or_update_secret("cas/x", secret={"k": "1"}, cas=0)["data"]["version"] == 1
    # cas=0 means "only if absent".
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        kv.create_or_update_secret("cas/x", secret={"k": "again"}, cas=0)
    assert err.value.errors
    assert kv.create_or_update_secret("cas/x", secret={"k": "2"}, cas=1)["data"]["version"] == 2
    with pytest.raises(hvac.exceptions.InvalidRequest):
        kv.create_or_update_secret("cas/x", secret={"k": "stale"}, cas=1)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        kv.create_or_update_secret("cas/x", secret={"k": "future"}, cas=7)
    # The refused writes left nothing behind.
    current = kv.read_secret("cas/x", raise_on_deleted_version=True)["data"]
    assert current["data"] == {"k": "2"}
    assert current["metadata"]["version"] == 2


def test_read_secret(dev_server, kv):
    value = _secret(dev_server)
    kv.create_or_update_secret("app/db", secret={"password": value, "port": 5432, "tags": ["a", "b"]})
    resp = kv.read_secret("app/db", raise_on_deleted_version=True)
    assert resp["data"]["data"] == {"password": value, "port": 5432, "tags": ["a", "b"]}
    meta = resp["data"]["metadata"]
    assert meta["version"] == 1
    assert meta["deletion_time"] == ""
    assert meta["destroyed"] is False
    assert meta["custom_metadata"] is None
    assert resp["lease_duration"] == 0
    assert resp["renewable"] is False
    assert isinstance(resp["request_id"], str) and resp["request_id"]


def test_read_missing_secret_is_404(kv):
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret("no/such/secret", raise_on_deleted_version=True)


def test_read_secret_version(dev_server, kv):
    v1, v2 = _secret(dev_server), _secret(dev_server)
    kv.create_or_update_secret("versions", secret={"v": v1})
    kv.create_or_update_secret("versions", secret={"v": v2})
    assert kv.read_secret_version("versions", version=1, raise_on_deleted_version=True)["data"]["data"] == {"v": v1}
    assert kv.read_secret_version("versions", version=2, raise_on_deleted_version=True)["data"]["data"] == {"v": v2}
    latest = kv.read_secret_version("versions", raise_on_deleted_version=True)["data"]
    assert latest["data"] == {"v": v2} and latest["metadata"]["version"] == 2
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version("versions", version=3, raise_on_deleted_version=True)


def test_patch(dev_server, kv):
    a, b = _secret(dev_server), _secret(dev_server)
    kv.create_or_update_secret("patch/me", secret={"user": "app", "password": a})
    data = kv.patch("patch/me", secret={"password": b, "extra": "1"})["data"]
    assert data["version"] == 2
    assert kv.read_secret("patch/me", raise_on_deleted_version=True)["data"]["data"] == {
        "user": "app", "password": b, "extra": "1"}
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.patch("patch/absent", secret={"k": "v"})


def test_http_patch_is_json_merge_patch(dev_server, root, kv):
    # hvac's patch() is read + write with cas; the PATCH method itself is what `vault kv patch` uses.
    kv.create_or_update_secret("merge/me", secret={"keep": "1", "drop": "2", "change": "3"})
    r = requests.patch(f"{dev_server.url}/v1/secret/data/merge/me",
                       headers={"X-Vault-Token": dev_server.root_token,
                                "Content-Type": "application/merge-patch+json"},
                       data=json.dumps({"data": {"drop": None, "change": "4", "new": "5"}}), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["version"] == 2
    assert kv.read_secret("merge/me", raise_on_deleted_version=True)["data"]["data"] == {
        "keep": "1", "change": "4", "new": "5"}


# ---------------------------------------------------------------- deletes ---

def test_delete_latest_version_of_secret(dev_server, kv):
    v1, v2 = _secret(dev_server), _secret(dev_server)
    kv.create_or_update_secret("del/latest", secret={"v": v1})
    kv.create_or_update_secret("del/latest", secret={"v": v2})
    assert kv.delete_latest_version_of_secret("del/latest").status_code == 204

    with pytest.raises(hvac.exceptions.InvalidPath) as err:
        kv.read_secret("del/latest", raise_on_deleted_version=True)
    assert v2 not in (err.value.text or "")
    # hvac's soft-delete view: a 404 whose body still carries the metadata.
    deleted = kv.read_secret("del/latest", raise_on_deleted_version=False)
    assert deleted["data"]["data"] is None
    assert deleted["data"]["metadata"]["version"] == 2
    assert deleted["data"]["metadata"]["deletion_time"] != ""
    # Older versions are untouched.
    assert kv.read_secret_version("del/latest", version=1, raise_on_deleted_version=True)["data"]["data"] == {"v": v1}


def test_delete_secret_versions(dev_server, kv):
    for i in range(3):
        kv.create_or_update_secret("del/versions", secret={"i": str(i)})
    assert kv.delete_secret_versions("del/versions", versions=[1, 2]).status_code == 204
    for v in (1, 2):
        with pytest.raises(hvac.exceptions.InvalidPath):
            kv.read_secret_version("del/versions", version=v, raise_on_deleted_version=True)
    assert kv.read_secret("del/versions", raise_on_deleted_version=True)["data"]["data"] == {"i": "2"}
    versions = kv.read_secret_metadata("del/versions")["data"]["versions"]
    assert versions["1"]["deletion_time"] != "" and versions["2"]["deletion_time"] != ""
    assert versions["3"]["deletion_time"] == ""


def test_undelete_secret_versions(dev_server, kv):
    value = _secret(dev_server)
    kv.create_or_update_secret("del/undo", secret={"v": value})
    kv.delete_latest_version_of_secret("del/undo")
    assert kv.undelete_secret_versions("del/undo", versions=[1]).status_code == 204
    got = kv.read_secret("del/undo", raise_on_deleted_version=True)["data"]
    assert got["data"] == {"v": value}
    assert got["metadata"]["deletion_time"] == ""


def test_destroy_secret_versions(dev_server, kv):
    gone, kept = _secret(dev_server), _secret(dev_server)
    kv.create_or_update_secret("del/destroy", secret={"v": gone})
    kv.create_or_update_secret("del/destroy", secret={"v": kept})
    assert kv.destroy_secret_versions("del/destroy", versions=[1]).status_code == 204
    assert kv.read_secret_metadata("del/destroy")["data"]["versions"]["1"]["destroyed"] is True
    with pytest.raises(hvac.exceptions.InvalidPath) as err:
        kv.read_secret_version("del/destroy", version=1, raise_on_deleted_version=False)
    assert gone not in (err.value.text or "")
    # Destroyed is final: undelete cannot bring it back.
    kv.undelete_secret_versions("del/destroy", versions=[1])
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version("del/destroy", version=1, raise_on_deleted_version=True)
    assert kv.read_secret("del/destroy", raise_on_deleted_version=True)["data"]["data"] == {"v": kept}


# --------------------------------------------------------- list, metadata ---

def test_list_secrets(kv):
    for path in ("app/db", "app/api", "app/sub/one", "other/x"):
        kv.create_or_update_secret(path, secret={"k": "v"})
    assert sorted(kv.list_secrets("app")["data"]["keys"]) == ["api", "db", "sub/"]
    assert sorted(kv.list_secrets("")["data"]["keys"]) == ["app/", "other/"]
    assert kv.list_secrets("app/sub")["data"]["keys"] == ["one"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.list_secrets("nothing-here")


def test_list_via_get_list_true(dev_server, kv):
    kv.create_or_update_secret("listing/a", secret={"k": "v"})
    r = requests.get(f"{dev_server.url}/v1/secret/metadata/listing", params={"list": "true"},
                     headers={"X-Vault-Token": dev_server.root_token}, timeout=10)
    assert r.status_code == 200
    assert r.json()["data"]["keys"] == ["a"]


def test_read_secret_metadata(kv):
    kv.create_or_update_secret("meta/x", secret={"k": "1"})
    kv.create_or_update_secret("meta/x", secret={"k": "2"})
    meta = kv.read_secret_metadata("meta/x")["data"]
    assert meta["current_version"] == 2
    assert meta["max_versions"] == 0
    assert meta["cas_required"] is False
    assert duration_seconds(meta["delete_version_after"]) == 0
    assert meta["custom_metadata"] is None
    assert isinstance(meta["created_time"], str) and isinstance(meta["updated_time"], str)
    assert sorted(meta["versions"]) == ["1", "2"]
    for v in meta["versions"].values():
        assert v["destroyed"] is False and v["deletion_time"] == "" and v["created_time"]
    assert meta["updated_time"] >= meta["created_time"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_metadata("meta/absent")


def test_update_metadata(kv):
    kv.create_or_update_secret("meta/upd", secret={"k": "v"})
    response = kv.update_metadata("meta/upd", max_versions=3, cas_required=True,
                                  delete_version_after="1h", custom_metadata={"owner": "team-a"})
    assert response.status_code == 204
    meta = kv.read_secret_metadata("meta/upd")["data"]
    assert meta["max_versions"] == 3
    assert meta["cas_required"] is True
    assert duration_seconds(meta["delete_version_after"]) == 3600
    assert meta["custom_metadata"] == {"owner": "team-a"}
    # custom_metadata is shown on reads of the data too.
    assert kv.read_secret("meta/upd", raise_on_deleted_version=True)["data"]["metadata"]["custom_metadata"] == {
        "owner": "team-a"}
    # cas_required on the key now refuses a write without cas.
    with pytest.raises(hvac.exceptions.InvalidRequest):
        kv.create_or_update_secret("meta/upd", secret={"k": "no-cas"})
    assert kv.create_or_update_secret("meta/upd", secret={"k": "cas"}, cas=1)["data"]["version"] == 2


def test_update_metadata_creates_key_without_versions(kv):
    kv.update_metadata("meta/only", custom_metadata={"note": "reserved"})
    meta = kv.read_secret_metadata("meta/only")["data"]
    assert meta["current_version"] == 0
    assert meta["custom_metadata"] == {"note": "reserved"}
    assert meta["versions"] == {}


def test_delete_metadata_and_all_versions(dev_server, kv):
    values = [_secret(dev_server) for _ in range(3)]
    for v in values:
        kv.create_or_update_secret("meta/wipe", secret={"v": v})
    kv.create_or_update_secret("meta/keep", secret={"k": "v"})
    assert kv.delete_metadata_and_all_versions("meta/wipe").status_code == 204
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_metadata("meta/wipe")
    for version in (1, 2, 3):
        with pytest.raises(hvac.exceptions.InvalidPath):
            kv.read_secret_version("meta/wipe", version=version, raise_on_deleted_version=False)
    assert kv.list_secrets("meta")["data"]["keys"] == ["keep"]
    # A new write starts again at version 1.
    assert kv.create_or_update_secret("meta/wipe", secret={"k": "new"})["data"]["version"] == 1


# -------------------------------------------------------------- bad input ---

def _raw(dev_server, method, path, body=None, headers=None):
    """Sends a request with the path exactly as given: no client-side normalisation."""
    conn = http.client.HTTPConnection("127.0.0.1", dev_server.port, timeout=10)
    try:
        h = {"X-Vault-Token": dev_server.root_token, "Content-Type": "application/json"}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_malformed_json_is_400(dev_server, kv):
    for body in (b'{"data": ', b"not json", b'{"data": {"k": "v"}} trailing', b"\xff\xfe"):
        status, headers, text = _raw(dev_server, "POST", "/v1/secret/data/bad/json", body=body)
        assert status == 400, (body, status, text)
        assert json.loads(text)["errors"], text
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret("bad/json", raise_on_deleted_version=True)


@pytest.mark.parametrize("body", [{"data": "a string"}, {"data": ["a", "list"]}, {"data": 5}, {"options": {}}])
def test_data_that_is_not_an_object_is_400(dev_server, kv, body):
    status, _, text = _raw(dev_server, "POST", "/v1/secret/data/bad/shape", body=json.dumps(body))
    assert status == 400, text
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret("bad/shape", raise_on_deleted_version=True)


def test_body_over_the_limit_is_413(dev_server, kv):
    # Vault's default max_request_size is 32 MiB.
    big = b'{"data": {"blob": "' + b"a" * (33 * 1024 * 1024) + b'"}}'
    r = requests.post(f"{dev_server.url}/v1/secret/data/bad/huge", data=big, timeout=60,
                      headers={"X-Vault-Token": dev_server.root_token, "Content-Type": "application/json"})
    assert r.status_code == 413, r.text[:200]
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret("bad/huge", raise_on_deleted_version=True)


@pytest.mark.parametrize("raw_path", [
    "/v1/secret/data/app/../victim",
    "/v1/secret/data/app/%2e%2e/victim",
    "/v1/secret/data/../../sys/policies/acl/victim",
    "/v1/secret/data/app//victim",
    "/v1/secret/data/app/%00victim",
], ids=["dotdot", "encoded-dotdot", "escape-mount", "double-slash", "nul"])
def test_odd_kv_paths_do_not_reach_other_keys(dev_server, kv, raw_path):
    original = _secret(dev_server, "victim")
    kv.create_or_update_secret("victim", secret={"v": original})
    kv.create_or_update_secret("app/victim", secret={"v": original})

    status, headers, text = _raw(dev_server, "POST", raw_path,
                                 body=json.dumps({"data": {"v": "overwritten"}}))
    # Vault answers a non-canonical path with a redirect to the clean one (Go's
    # ServeMux) or refuses it; it never writes through it.
    assert status in (301, 307, 308, 400, 404), (raw_path, status, text)
    if status == 400:
        assert json.loads(text)["errors"]
    for path in ("victim", "app/victim"):
        current = kv.read_secret(path, raise_on_deleted_version=True)["data"]
        assert current["data"] == {"v": original}, path
        assert current["metadata"]["version"] == 1, path
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.list_secrets("app/victim")
    assert "victim" not in dev_server.client().sys.list_acl_policies()["data"]["keys"]

    status, _, text = _raw(dev_server, "GET", raw_path)
    assert status in (301, 307, 308, 400, 404), (raw_path, status, text)
    assert original.encode() not in text


def test_unknown_route_under_mount_is_404(dev_server, root):
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.adapter.get("/v1/secret/no-such-endpoint/x")


def test_wrong_method_is_405(dev_server):
    status, _, text = _raw(dev_server, "PUT", "/v1/sys/seal-status", body="{}")
    assert status == 405, text
