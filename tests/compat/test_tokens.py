"""auth/token/* with hvac: create, orphans, lookups, renewals, revocations, and refused tokens."""

import time

import hvac
import pytest

from conftest import make_token, unique

# A policy that lets a token create children and orphans, as a CI system's token would.
TOKEN_MAKER = """
path "auth/token/create" {
  capabilities = ["create", "update"]
}
path "auth/token/create-orphan" {
  capabilities = ["create", "update"]
}
"""


def _maker(dev_server, root):
    root.sys.create_or_update_acl_policy(name="token-maker", policy=TOKEN_MAKER)
    token, accessor = make_token(dev_server, root, policies=["token-maker"], ttl="1h")
    return dev_server.client(token), token, accessor


def _assert_refused(client: hvac.Client):
    with pytest.raises(hvac.exceptions.Forbidden):
        client.auth.token.lookup_self()


def test_create_with_policies_ttl_uses_meta(dev_server, root):
    resp = root.auth.token.create(policies=["app-read"], ttl="1h", num_uses=5,
                                  renewable=True, meta={"team": "a", "env": "test"})
    auth = resp["auth"]
    dev_server.remember(auth["client_token"])
    assert auth["client_token"] and auth["accessor"]
    assert auth["client_token"] != auth["accessor"]
    assert sorted(auth["policies"]) == ["app-read", "default"]
    assert sorted(auth["token_policies"]) == ["app-read", "default"]
    assert auth["metadata"] == {"team": "a", "env": "test"}
    assert auth["lease_duration"] == 3600
    assert auth["renewable"] is True
    assert auth["orphan"] is False
    assert auth["num_uses"] == 5
    assert auth["token_type"] == "service"
    assert resp["data"] is None


def test_create_no_default_policy_and_not_renewable(dev_server, root):
    token, _ = make_token(dev_server, root, policies=["only"], no_default_policy=True,
                          renewable=False, ttl="10m")
    data = root.auth.token.lookup(token)["data"]
    assert data["policies"] == ["only"]
    assert data["renewable"] is False
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.auth.token.renew(token, increment="1h")


def test_create_orphan(dev_server, root):
    auth = root.auth.token.create_orphan(policies=["default"], ttl="1h")["auth"]
    dev_server.remember(auth["client_token"])
    assert auth["orphan"] is True
    assert root.auth.token.lookup(auth["client_token"])["data"]["orphan"] is True


def test_orphan_survives_revocation_of_its_creator(dev_server, root):
    maker, maker_token, _ = _maker(dev_server, root)
    # A normal child of the same creator, for contrast: it dies with its parent.
    child, _ = make_token(dev_server, maker, ttl="1h")
    orphan_auth = maker.auth.token.create_orphan(ttl="1h")["auth"]
    dev_server.remember(orphan_auth["client_token"])

    root.auth.token.revoke(maker_token)
    _assert_refused(dev_server.client(child))
    still = dev_server.client(orphan_auth["client_token"]).auth.token.lookup_self()["data"]
    assert still["orphan"] is True


def test_child_policies_must_be_subset_of_parent(dev_server, root):
    maker, _, _ = _maker(dev_server, root)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        maker.auth.token.create(policies=["root"], ttl="1h")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        maker.auth.token.create(policies=["someone-elses"], ttl="1h")


def test_lookup(dev_server, root):
    token, accessor = make_token(dev_server, root, policies=["p1"], ttl="1h", num_uses=7,
                                 meta={"owner": "ci"})
    data = root.auth.token.lookup(token)["data"]
    assert data["id"] == token
    assert data["accessor"] == accessor
    assert sorted(data["policies"]) == ["default", "p1"]
    assert data["meta"] == {"owner": "ci"}
    assert data["num_uses"] == 7
    assert 3500 < data["ttl"] <= 3600
    assert data["creation_ttl"] == 3600
    assert data["renewable"] is True
    assert data["orphan"] is False
    assert data["path"] == "auth/token/create"
    assert data["type"] == "service"
    assert isinstance(data["expire_time"], str) and data["expire_time"]
    assert isinstance(data["issue_time"], str) and data["issue_time"]
    assert isinstance(data["creation_time"], int)


def test_lookup_of_unknown_token_is_forbidden(dev_server, root):
    with pytest.raises(hvac.exceptions.Forbidden):
        root.auth.token.lookup(unique("hvs"))


def test_lookup_self_root(dev_server, root):
    data = root.auth.token.lookup_self()["data"]
    assert data["id"] == dev_server.root_token
    assert data["policies"] == ["root"]
    assert data["ttl"] == 0
    assert data["expire_time"] is None
    assert data["orphan"] is True


def test_lookup_self_child(dev_server, root):
    token, accessor = make_token(dev_server, root, policies=["default"], ttl="30m")
    data = dev_server.client(token).auth.token.lookup_self()["data"]
    assert data["id"] == token
    assert data["accessor"] == accessor
    assert data["policies"] == ["default"]
    assert 1700 < data["ttl"] <= 1800


def test_lookup_accessor_does_not_reveal_token(dev_server, root):
    token, accessor = make_token(dev_server, root, policies=["p2"], ttl="1h")
    data = root.auth.token.lookup_accessor(accessor)["data"]
    assert data["accessor"] == accessor
    assert not data["id"]
    assert token not in str(data)
    assert sorted(data["policies"]) == ["default", "p2"]


def test_renew(dev_server, root):
    token, _ = make_token(dev_server, root, ttl="1h")
    auth = root.auth.token.renew(token, increment="2h")["auth"]
    assert auth["lease_duration"] == 7200
    assert auth["renewable"] is True
    assert 7100 < root.auth.token.lookup(token)["data"]["ttl"] <= 7200


def test_renew_is_capped_by_explicit_max_ttl(dev_server, root):
    token, _ = make_token(dev_server, root, ttl="10m", explicit_max_ttl="20m")
    auth = root.auth.token.renew(token, increment="2h")["auth"]
    assert 1100 < auth["lease_duration"] <= 1200


def test_renew_self(dev_server, root):
    token, _ = make_token(dev_server, root, ttl="10m")
    auth = dev_server.client(token).auth.token.renew_self(increment="30m")["auth"]
    assert auth["lease_duration"] == 1800
    assert auth["client_token"] == token


def test_revoke_revokes_children(dev_server, root):
    maker, maker_token, _ = _maker(dev_server, root)
    child, _ = make_token(dev_server, maker, ttl="1h")
    grandchild, _ = make_token(dev_server, dev_server.client(child), ttl="1h")
    assert dev_server.client(grandchild).auth.token.lookup_self()["data"]["id"] == grandchild

    response = root.auth.token.revoke(maker_token)
    assert response.status_code == 204
    for t in (maker_token, child, grandchild):
        _assert_refused(dev_server.client(t))
        with pytest.raises(hvac.exceptions.Forbidden):
            root.auth.token.lookup(t)


def test_revoke_accessor(dev_server, root):
    token, accessor = make_token(dev_server, root, ttl="1h")
    assert root.auth.token.revoke_accessor(accessor).status_code == 204
    _assert_refused(dev_server.client(token))
    with pytest.raises((hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden)):
        root.auth.token.lookup_accessor(accessor)


def test_revoke_self(dev_server, root):
    token, _ = make_token(dev_server, root, ttl="1h")
    c = dev_server.client(token)
    assert c.auth.token.revoke_self().status_code == 204
    _assert_refused(c)


def test_num_uses_exhausts_the_token(dev_server, root):
    token, _ = make_token(dev_server, root, ttl="1h", num_uses=2)
    c = dev_server.client(token)
    c.auth.token.lookup_self()
    c.auth.token.lookup_self()
    _assert_refused(c)


@pytest.mark.parametrize("forged", [
    lambda real: unique("hvs"),
    lambda real: unique("cairn."),
    lambda real: real[:-1],
    lambda real: real + "x",
    lambda real: real.upper() if real.upper() != real else real.lower(),
], ids=["random-hvs", "random-cairn", "truncated", "extended", "case-changed"])
def test_forged_token_is_forbidden(dev_server, root, forged):
    token, _ = make_token(dev_server, root, ttl="1h")
    fake = forged(token)
    assert fake != token
    c = dev_server.client(fake)
    _assert_refused(c)
    with pytest.raises(hvac.exceptions.Forbidden):
        c.secrets.kv.v2.read_secret("anything", raise_on_deleted_version=True)


def test_missing_token_is_forbidden(dev_server):
    with pytest.raises(hvac.exceptions.Forbidden):
        dev_server.anonymous().secrets.kv.v2.read_secret("anything", raise_on_deleted_version=True)


def test_revoked_token_cannot_read_secrets(dev_server, root, kv):
    value = unique("revoked-read")
    dev_server.remember(value)
    kv.create_or_update_secret("team/db", secret={"password": value})
    root.sys.create_or_update_acl_policy(name="team-read",
                                         policy='path "secret/data/team/*" { capabilities = ["read"] }')
    token, _ = make_token(dev_server, root, policies=["team-read"], ttl="1h")
    c = dev_server.client(token)
    assert c.secrets.kv.v2.read_secret("team/db", raise_on_deleted_version=True)["data"]["data"]["password"] == value
    root.auth.token.revoke(token)
    with pytest.raises(hvac.exceptions.Forbidden) as err:
        c.secrets.kv.v2.read_secret("team/db", raise_on_deleted_version=True)
    assert value not in (err.value.text or "")


def test_expired_token_is_forbidden(dev_server, root):
    created = time.monotonic()
    token, _ = make_token(dev_server, root, ttl="2s")
    c = dev_server.client(token)
    # Still valid right after creation.
    assert c.auth.token.lookup_self()["data"]["id"] == token
    deadline = created + 15
    refused_at = None
    while time.monotonic() < deadline:
        try:
            c.auth.token.lookup_self()
        except hvac.exceptions.Forbidden:
            refused_at = time.monotonic()
            break
        time.sleep(0.25)
    assert refused_at is not None, "a token with ttl=2s was still accepted after 15 s"
    # `created` is taken before the create call, so the token's TTL cannot have
    # run out before created + 2 s (0.1 s of slack for clock reads).
    assert refused_at - created >= 1.9, "token refused before its TTL ran out"
    with pytest.raises(hvac.exceptions.Forbidden):
        root.auth.token.lookup(token)
