"""No token, unseal key or secret value ever reaches a server log.

Every fixture server is also checked at teardown (conftest.server_factory); this
test drives one debug-level server through every kind of secret-bearing call
and asserts on its log directly, so a leak shows up as a plain test failure.
"""

import hvac
import pytest
import requests

from conftest import describe_leak, make_token, unique


def test_server_log_holds_no_secret_material(raft_server):
    srv = raft_server
    result = srv.initialize_and_unseal()
    root = srv.client()

    root.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    values = {name: unique(name) for name in ("password", "apikey", "patched", "meta")}
    srv.remember(*values.values())
    kv = root.secrets.kv.v2
    kv.create_or_update_secret("app/db", secret={"password": values["password"], "apikey": values["apikey"]})
    kv.patch("app/db", secret={"password": values["patched"]})
    kv.update_metadata("app/db", custom_metadata={"note": values["meta"]})
    kv.read_secret("app/db", raise_on_deleted_version=True)

    token, accessor = make_token(srv, root, policies=["default"], ttl="1h", meta={"who": values["meta"]})
    child = srv.client(token)
    child.auth.token.lookup_self()
    child.auth.token.renew_self(increment="2h")
    root.auth.token.lookup(token)
    root.auth.token.lookup_accessor(accessor)
    orphan = root.auth.token.create_orphan(ttl="1h")["auth"]["client_token"]
    srv.remember(orphan)
    root.auth.token.revoke(orphan)
    child.auth.token.revoke_self()

    # Refused requests are where a careless error message would echo what it got.
    forged = unique("forged-token")
    srv.remember(forged)
    with pytest.raises(hvac.exceptions.Forbidden):
        srv.client(forged).secrets.kv.v2.read_secret("app/db", raise_on_deleted_version=True)
    bad_json_secret = unique("in-bad-json")
    srv.remember(bad_json_secret)
    r = requests.post(f"{srv.url}/v1/secret/data/app/broken", timeout=10,
                      headers={"X-Vault-Token": srv.root_token, "Content-Type": "application/json"},
                      data='{"data": {"password": "' + bad_json_secret + '"')
    assert r.status_code == 400
    assert bad_json_secret not in r.text
    with pytest.raises(hvac.exceptions.InvalidRequest):
        kv.create_or_update_secret("app/db", secret={"password": bad_json_secret}, cas=99)

    root.sys.seal()
    wrong = "ab" * 33
    with pytest.raises(hvac.exceptions.InvalidRequest):
        srv.anonymous().sys.submit_unseal_keys([result["keys"][0], result["keys"][1], wrong])
    srv.unseal(result["keys_base64"][:3])
    root.sys.rotate_encryption_key()

    srv.stop()
    log = srv.log_text()
    assert log.strip(), "the server wrote no log at all at debug level"
    leaks = srv.leaked_values()
    assert not leaks, describe_leak(srv, leaks)
