"""sys/init, sys/unseal, sys/seal, sys/seal-status, sys/health, sys/rotate, sys/key-status with hvac."""

import base64

import hvac
import pytest
import requests

from conftest import unique


def _corrupt_share(hex_key: str) -> str:
    """The same share with one byte of its value flipped: well-formed, but wrong."""
    raw = bytearray(bytes.fromhex(hex_key))
    raw[len(raw) // 2] ^= 0x5A
    return raw.hex()


def test_initialize_returns_keys_once(fresh_server):
    c = fresh_server.anonymous()
    result = c.sys.initialize(secret_shares=5, secret_threshold=3)
    fresh_server.remember_init(result)

    assert isinstance(result["root_token"], str) and result["root_token"]
    assert len(result["keys"]) == 5
    assert len(result["keys_base64"]) == 5
    assert len(set(result["keys"])) == 5
    for hex_key, b64_key in zip(result["keys"], result["keys_base64"]):
        assert bytes.fromhex(hex_key) == base64.b64decode(b64_key)

    # A second init is refused: the shares were shown once.
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.sys.initialize(secret_shares=5, secret_threshold=3)


def test_initialize_rejects_threshold_above_shares(fresh_server):
    c = fresh_server.anonymous()
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.sys.initialize(secret_shares=2, secret_threshold=3)
    assert c.sys.read_init_status()["initialized"] is False


def test_read_init_status(fresh_server):
    c = fresh_server.anonymous()
    assert c.sys.read_init_status()["initialized"] is False
    assert c.sys.is_initialized() is False
    fresh_server.remember_init(c.sys.initialize(secret_shares=1, secret_threshold=1))
    assert c.sys.read_init_status()["initialized"] is True


def test_read_seal_status_before_and_after_init(fresh_server):
    c = fresh_server.anonymous()
    before = c.sys.read_seal_status()
    assert before["initialized"] is False
    assert before["sealed"] is True

    fresh_server.remember_init(c.sys.initialize(secret_shares=5, secret_threshold=3))
    after = c.sys.read_seal_status()
    assert after["type"] == "shamir"
    assert after["initialized"] is True
    assert after["sealed"] is True
    assert after["t"] == 3
    assert after["n"] == 5
    assert after["progress"] == 0
    assert isinstance(after["version"], str)


def test_submit_unseal_keys_progress_then_unsealed(fresh_server):
    c = fresh_server.anonymous()
    result = c.sys.initialize(secret_shares=5, secret_threshold=3)
    fresh_server.remember_init(result)
    keys = result["keys"]

    first = c.sys.submit_unseal_key(keys[0])
    assert first["sealed"] is True and first["progress"] == 1 and first["t"] == 3 and first["n"] == 5
    second = c.sys.submit_unseal_key(keys[3])
    assert second["sealed"] is True and second["progress"] == 2
    assert c.sys.read_seal_status()["progress"] == 2
    third = c.sys.submit_unseal_key(keys[4])
    assert third["sealed"] is False
    assert third["progress"] == 0
    assert c.sys.is_sealed() is False

    # The root token from init now works.
    me = fresh_server.client().auth.token.lookup_self()["data"]
    assert me["policies"] == ["root"]


def test_submit_unseal_keys_base64(fresh_server):
    c = fresh_server.anonymous()
    result = c.sys.initialize(secret_shares=3, secret_threshold=2)
    fresh_server.remember_init(result)
    status = c.sys.submit_unseal_keys(result["keys_base64"][1:])
    assert status["sealed"] is False


def test_unseal_reset_clears_progress(fresh_server):
    c = fresh_server.anonymous()
    result = c.sys.initialize(secret_shares=5, secret_threshold=3)
    fresh_server.remember_init(result)
    assert c.sys.submit_unseal_key(result["keys"][0])["progress"] == 1
    reset = c.sys.submit_unseal_key(reset=True)
    assert reset["progress"] == 0 and reset["sealed"] is True
    assert c.sys.submit_unseal_keys(result["keys"][2:5])["sealed"] is False


def test_wrong_unseal_key_is_refused(fresh_server):
    c = fresh_server.anonymous()
    result = c.sys.initialize(secret_shares=5, secret_threshold=3)
    fresh_server.remember_init(result)
    keys = result["keys"]
    wrong = _corrupt_share(keys[2])
    fresh_server.remember(wrong)

    c.sys.submit_unseal_key(keys[0])
    c.sys.submit_unseal_key(keys[1])
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        c.sys.submit_unseal_key(wrong)
    assert err.value.errors, "the 400 must carry Vault's {'errors': [...]} body"
    status = c.sys.read_seal_status()
    assert status["sealed"] is True
    # The failed attempt is discarded: a full set of good shares unseals afterwards.
    assert status["progress"] == 0
    assert c.sys.submit_unseal_keys(keys[2:5])["sealed"] is False


def test_duplicate_unseal_key_is_refused(fresh_server):
    c = fresh_server.anonymous()
    result = c.sys.initialize(secret_shares=5, secret_threshold=3)
    fresh_server.remember_init(result)
    c.sys.submit_unseal_key(result["keys"][0])
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        c.sys.submit_unseal_key(result["keys"][0])
    assert err.value.errors
    status = c.sys.read_seal_status()
    assert status["sealed"] is True and status["progress"] == 1


@pytest.mark.parametrize("garbage", ["not-a-key!", "%%" * 33, "", "00"])
def test_garbage_unseal_key_is_refused(fresh_server, garbage):
    c = fresh_server.anonymous()
    result = c.sys.initialize(secret_shares=5, secret_threshold=3)
    fresh_server.remember_init(result)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.sys.submit_unseal_key(garbage)
    status = c.sys.read_seal_status()
    assert status["sealed"] is True and status["progress"] == 0


def test_unseal_before_init_is_refused(fresh_server):
    with pytest.raises(hvac.exceptions.InvalidRequest):
        fresh_server.anonymous().sys.submit_unseal_key("ab" * 33)


def test_seal(fresh_server):
    fresh_server.initialize_and_unseal()
    root = fresh_server.client()
    response = root.sys.seal()
    assert response.status_code == 204
    assert root.sys.read_seal_status()["sealed"] is True
    # Sealed again: the root token is of no use until unsealed.
    with pytest.raises(hvac.exceptions.VaultDown):
        root.auth.token.lookup_self()


def test_seal_requires_sudo(dev_server, root):
    root.sys.create_or_update_acl_policy(name="plain", policy='path "secret/*" { capabilities = ["read"] }')
    auth = root.auth.token.create(policies=["plain"], ttl="1h")["auth"]
    dev_server.remember(auth["client_token"])
    with pytest.raises(hvac.exceptions.Forbidden):
        dev_server.client(auth["client_token"]).sys.seal()
    assert root.sys.read_seal_status()["sealed"] is False


def test_sealed_node_refuses_kv_read_with_503(fresh_server):
    fresh_server.initialize_and_unseal()
    root = fresh_server.client()
    root.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    value = unique("sealed-secret")
    fresh_server.remember(value)
    root.secrets.kv.v2.create_or_update_secret("app/db", secret={"password": value})
    root.sys.seal()

    with pytest.raises(hvac.exceptions.VaultDown) as err:
        root.secrets.kv.v2.read_secret("app/db", raise_on_deleted_version=True)
    assert value not in (err.value.text or "")


@pytest.mark.parametrize("call", [
    lambda c: c.secrets.kv.v2.read_secret("app/db", raise_on_deleted_version=True),
    lambda c: c.sys.list_mounted_secrets_engines(),
    lambda c: c.sys.list_acl_policies(),
    lambda c: c.auth.token.lookup_self(),
    lambda c: c.auth.token.create(ttl="1h"),
    lambda c: c.sys.list_enabled_audit_devices(),
    lambda c: c.sys.get_encryption_key_status(),
], ids=["kv-read", "mounts", "policies", "lookup-self", "token-create", "audit", "key-status"])
def test_sealed_node_answers_nothing_else(fresh_server, call):
    fresh_server.initialize_and_unseal()
    root = fresh_server.client()
    root.sys.seal()
    with pytest.raises(hvac.exceptions.VaultDown):
        call(root)


def test_uninitialized_node_answers_nothing_else(fresh_server):
    c = fresh_server.client(token=unique("hvs"))
    with pytest.raises(hvac.exceptions.VaultDown):
        c.sys.list_mounted_secrets_engines()
    with pytest.raises(hvac.exceptions.VaultDown):
        c.secrets.kv.v2.read_secret("x", raise_on_deleted_version=True)


def test_read_health_status_codes(fresh_server):
    c = fresh_server.anonymous()

    # Uninitialised: 501, or the asked-for code.
    uninit = c.sys.read_health_status(method="GET")
    assert uninit.status_code == 501
    assert uninit.json()["initialized"] is False
    ok = c.sys.read_health_status(method="GET", uninit_code=200)
    assert ok["initialized"] is False and ok["sealed"] is True

    # Sealed: 503, or the asked-for code.
    result = c.sys.initialize(secret_shares=5, secret_threshold=3)
    fresh_server.remember_init(result)
    sealed = c.sys.read_health_status(method="GET")
    assert sealed.status_code == 503
    assert sealed.json()["sealed"] is True
    assert c.sys.read_health_status(method="GET", sealed_code=200)["sealed"] is True
    assert c.sys.read_health_status(method="GET", sealed_code=299).status_code == 299

    # Unsealed and active: 200 whatever standbyok / standbycode say; activecode applies.
    c.sys.submit_unseal_keys(result["keys"][:3])
    active = c.sys.read_health_status(method="GET")
    assert active["initialized"] is True
    assert active["sealed"] is False
    assert active["standby"] is False
    assert isinstance(active["version"], str)
    assert isinstance(active["server_time_utc"], int)
    assert c.sys.read_health_status(method="GET", standby_ok=True)["standby"] is False
    assert c.sys.read_health_status(method="GET", standby_code=429)["standby"] is False
    assert c.sys.read_health_status(method="GET", active_code=299).status_code == 299


def test_read_health_status_head(dev_server):
    response = dev_server.anonymous().sys.read_health_status()  # hvac's default is HEAD
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize("param", ["sealedcode", "uninitcode", "standbycode", "activecode"])
def test_health_rejects_bad_code_parameter(dev_server, param):
    # Vault's fetchStatusCode: a code that is not a number is a 400.
    r = requests.get(f"{dev_server.url}/v1/sys/health", params={param: "not-a-number"}, timeout=10)
    assert r.status_code == 400, r.text


def test_rotate_encryption_key_increments_term(dev_server, root, kv):
    before = root.sys.get_encryption_key_status()["data"]
    assert isinstance(before["term"], int) and before["term"] >= 1
    assert isinstance(before["install_time"], str)

    value = unique("before-rotate")
    dev_server.remember(value)
    kv.create_or_update_secret("rotate/me", secret={"v": value})

    assert root.sys.rotate_encryption_key().status_code == 204
    after = root.sys.get_encryption_key_status()["data"]
    assert after["term"] == before["term"] + 1
    assert root.sys.rotate_encryption_key().status_code == 204
    assert root.sys.get_encryption_key_status()["data"]["term"] == before["term"] + 2

    # Values written under an older term are still readable.
    assert kv.read_secret("rotate/me", raise_on_deleted_version=True)["data"]["data"] == {"v": value}


def test_rotate_requires_sudo(dev_server, root):
    auth = root.auth.token.create(policies=["default"], ttl="1h")["auth"]
    dev_server.remember(auth["client_token"])
    with pytest.raises(hvac.exceptions.Forbidden):
        dev_server.client(auth["client_token"]).sys.rotate_encryption_key()


def test_restart_on_same_raft_path_comes_back_sealed_with_data(raft_server):
    srv = raft_server
    result = srv.initialize_and_unseal()
    root = srv.client()
    root.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    root.sys.create_or_update_acl_policy(name="keep", policy='path "secret/data/*" { capabilities = ["read"] }')
    values = [unique(f"durable{i}") for i in range(5)]
    srv.remember(*values)
    for i, v in enumerate(values):
        root.secrets.kv.v2.create_or_update_secret(f"app/s{i}", secret={"v": v})
    root.secrets.kv.v2.create_or_update_secret("app/s0", secret={"v": values[0], "n": "2"})
    token = root.auth.token.create(policies=["keep"], ttl="2h")["auth"]["client_token"]
    srv.remember(token)
    root.sys.rotate_encryption_key()
    term = root.sys.get_encryption_key_status()["data"]["term"]

    # kill -9: every acknowledged write must be on disk already.
    srv.restart(kill=True)
    root = srv.client()  # the restarted server listens on a new port
    c = srv.anonymous()
    status = c.sys.read_seal_status()
    assert status["initialized"] is True
    assert status["sealed"] is True
    assert status["t"] == 3 and status["n"] == 5
    with pytest.raises(hvac.exceptions.VaultDown):
        root.secrets.kv.v2.read_secret("app/s1", raise_on_deleted_version=True)

    assert c.sys.submit_unseal_keys(result["keys"][2:5])["sealed"] is False
    for i, v in enumerate(values):
        got = root.secrets.kv.v2.read_secret(f"app/s{i}", raise_on_deleted_version=True)["data"]
        assert got["data"]["v"] == v
    assert root.secrets.kv.v2.read_secret_metadata("app/s0")["data"]["current_version"] == 2
    assert root.sys.read_acl_policy("keep")["data"]["policy"].startswith('path "secret/data/*"')
    assert "secret/" in root.sys.list_mounted_secrets_engines()["data"]
    assert root.sys.get_encryption_key_status()["data"]["term"] == term
    # Tokens survive too.
    child = srv.client(token)
    assert child.auth.token.lookup_self()["data"]["policies"] == ["default", "keep"]
    assert child.secrets.kv.v2.read_secret("app/s3", raise_on_deleted_version=True)["data"]["data"]["v"] == values[3]


def test_restart_after_clean_stop_keeps_data(raft_server):
    srv = raft_server
    result = srv.initialize_and_unseal(shares=1, threshold=1)
    root = srv.client()
    root.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    value = unique("clean-stop")
    srv.remember(value)
    root.secrets.kv.v2.create_or_update_secret("x", secret={"v": value}, mount_point="kv")
    srv.restart(kill=False)
    assert srv.anonymous().sys.read_seal_status()["sealed"] is True
    srv.unseal(result["keys"])
    got = srv.client().secrets.kv.v2.read_secret("x", mount_point="kv", raise_on_deleted_version=True)
    assert got["data"]["data"] == {"v": value}
