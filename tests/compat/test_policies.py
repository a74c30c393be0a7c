"""sys/policies/acl and sys/capabilities* with hvac, and ACL enforcement on real requests."""

import hvac
import pytest

from conftest import make_token, policy_client, unique

APP_READ = """path "secret/data/app/*" {
  capabilities = ["read", "list"]
}

path "secret/metadata/app/*" {
  capabilities = ["list"]
}
"""


def test_create_or_update_acl_policy_hcl(root):
    response = root.sys.create_or_update_acl_policy(name="app-read", policy=APP_READ)
    assert response.status_code == 204
    # Writing again replaces it.
    updated = APP_READ.replace('["read", "list"]', '["read"]')
    assert root.sys.create_or_update_acl_policy(name="app-read", policy=updated).status_code == 204
    assert root.sys.read_acl_policy("app-read")["data"]["policy"] == updated


def test_create_or_update_acl_policy_json(root):
    policy = {"path": {"secret/data/json/*": {"capabilities": ["read"]}}}
    assert root.sys.create_or_update_acl_policy(name="from-json", policy=policy).status_code == 204
    assert "from-json" in root.sys.list_acl_policies()["data"]["keys"]
    # hvac sends the dict as JSON text; the policy is kept as that text.
    assert "secret/data/json/*" in root.sys.read_acl_policy("from-json")["data"]["policy"]


def test_read_acl_policy(root):
    root.sys.create_or_update_acl_policy(name="app-read", policy=APP_READ)
    data = root.sys.read_acl_policy("app-read")["data"]
    assert data["name"] == "app-read"
    assert data["policy"] == APP_READ


def test_read_missing_policy_is_404(root):
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.sys.read_acl_policy("does-not-exist")


def test_read_default_policy(root):
    data = root.sys.read_acl_policy("default")["data"]
    assert data["name"] == "default"
    assert "auth/token/lookup-self" in data["policy"]


def test_list_acl_policies(root):
    root.sys.create_or_update_acl_policy(name="app-read", policy=APP_READ)
    keys = root.sys.list_acl_policies()["data"]["keys"]
    assert "default" in keys
    assert "root" in keys
    assert "app-read" in keys


def test_delete_acl_policy(root):
    root.sys.create_or_update_acl_policy(name="short-lived", policy=APP_READ)
    assert root.sys.delete_acl_policy("short-lived").status_code == 204
    assert "short-lived" not in root.sys.list_acl_policies()["data"]["keys"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.sys.read_acl_policy("short-lived")


def test_root_and_default_policies_are_protected(root):
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.delete_acl_policy("root")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.create_or_update_acl_policy(name="root", policy=APP_READ)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.delete_acl_policy("default")
    keys = root.sys.list_acl_policies()["data"]["keys"]
    assert "root" in keys and "default" in keys


@pytest.mark.parametrize("bad", [
    'path "secret/*" { capabilities = ["read" }',
    'path "secret/*" { capabilities = ["read", "fly"] }',
    'path "secret/*" capabilities = ["read"]',
    "this is not a policy",
    "",
], ids=["unclosed-list", "unknown-capability", "no-block", "prose", "empty"])
def test_policy_syntax_error_is_invalid_request(root, bad):
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        root.sys.create_or_update_acl_policy(name="broken", policy=bad)
    assert err.value.errors, "a 400 must say what is wrong"
    assert "broken" not in root.sys.list_acl_policies()["data"]["keys"]


def test_get_capabilities_self(dev_server, root):
    c = policy_client(dev_server, root, "app-read", APP_READ)
    resp = c.sys.get_capabilities(paths=["secret/data/app/db", "secret/data/other"])
    assert sorted(resp["data"]["secret/data/app/db"]) == ["list", "read"]
    assert resp["data"]["secret/data/other"] == ["deny"]


def test_get_capabilities_of_root(root):
    resp = root.sys.get_capabilities(paths=["secret/data/anything"])
    assert resp["data"]["secret/data/anything"] == ["root"]
    assert resp["data"]["capabilities"] == ["root"]


def test_get_capabilities_by_token_and_accessor(dev_server, root):
    root.sys.create_or_update_acl_policy(name="app-read", policy=APP_READ)
    token, accessor = make_token(dev_server, root, policies=["app-read"], ttl="1h")
    by_token = root.sys.get_capabilities(paths=["secret/data/app/x"], token=token)
    assert sorted(by_token["data"]["secret/data/app/x"]) == ["list", "read"]
    by_accessor = root.sys.get_capabilities(paths=["secret/metadata/app/x"], accessor=accessor)
    assert by_accessor["data"]["secret/metadata/app/x"] == ["list"]


def test_read_only_policy_can_read_but_not_write(dev_server, root, kv):
    value = unique("ro-secret")
    dev_server.remember(value)
    kv.create_or_update_secret("app/db", secret={"password": value})
    c = policy_client(dev_server, root, "app-read", APP_READ)
    ro = c.secrets.kv.v2

    assert ro.read_secret("app/db", raise_on_deleted_version=True)["data"]["data"]["password"] == value
    assert "db" in ro.list_secrets("app")["data"]["keys"]
    with pytest.raises(hvac.exceptions.Forbidden):
        ro.create_or_update_secret("app/db", secret={"password": "overwritten"})
    with pytest.raises(hvac.exceptions.Forbidden):
        ro.create_or_update_secret("app/new", secret={"k": "v"})
    with pytest.raises(hvac.exceptions.Forbidden):
        ro.delete_latest_version_of_secret("app/db")
    with pytest.raises(hvac.exceptions.Forbidden):
        ro.read_secret_metadata("app/db")
    with pytest.raises(hvac.exceptions.Forbidden):
        ro.read_secret("other/db", raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):
        c.sys.create_or_update_acl_policy(name="escalate", policy='path "*" { capabilities = ["sudo"] }')
    # Nothing the refused calls tried was stored.
    assert kv.read_secret("app/db", raise_on_deleted_version=True)["data"]["data"] == {"password": value}
    assert kv.read_secret_metadata("app/db")["data"]["current_version"] == 1


def test_deny_wins(dev_server, root, kv):
    kv.create_or_update_secret("app/open", secret={"k": "v"})
    kv.create_or_update_secret("app/hidden", secret={"k": "v"})
    policy = APP_READ + '\npath "secret/data/app/hidden" {\n  capabilities = ["deny"]\n}\n'
    c = policy_client(dev_server, root, "app-deny", policy)
    assert c.secrets.kv.v2.read_secret("app/open", raise_on_deleted_version=True)["data"]["data"] == {"k": "v"}
    with pytest.raises(hvac.exceptions.Forbidden):
        c.secrets.kv.v2.read_secret("app/hidden", raise_on_deleted_version=True)


def test_deny_in_one_policy_wins_over_grant_in_another(dev_server, root, kv):
    kv.create_or_update_secret("app/hidden", secret={"k": "v"})
    root.sys.create_or_update_acl_policy(name="grant", policy=APP_READ)
    root.sys.create_or_update_acl_policy(name="deny-hidden",
                                         policy='path "secret/data/app/hidden" { capabilities = ["deny"] }')
    token, _ = make_token(dev_server, root, policies=["grant", "deny-hidden"], ttl="1h")
    with pytest.raises(hvac.exceptions.Forbidden):
        dev_server.client(token).secrets.kv.v2.read_secret("app/hidden", raise_on_deleted_version=True)


def test_most_specific_path_wins(dev_server, root, kv):
    kv.create_or_update_secret("app/drop-box", secret={"k": "v"})
    policy = APP_READ + '\npath "secret/data/app/drop-box" {\n  capabilities = ["create", "update"]\n}\n'
    c = policy_client(dev_server, root, "drop-box", policy)
    assert c.secrets.kv.v2.create_or_update_secret("app/drop-box", secret={"k": "new"})["data"]["version"] == 2
    # The exact path grants write only, and it beats the glob's read.
    with pytest.raises(hvac.exceptions.Forbidden):
        c.secrets.kv.v2.read_secret("app/drop-box", raise_on_deleted_version=True)


def test_plus_matches_exactly_one_segment(dev_server, root, kv):
    for path in ("team-a/shared", "team-b/shared", "team-a/deep/shared", "team-a/private"):
        kv.create_or_update_secret(path, secret={"k": path})
    c = policy_client(dev_server, root, "shared",
                      'path "secret/data/+/shared" { capabilities = ["read"] }')
    assert c.secrets.kv.v2.read_secret("team-a/shared", raise_on_deleted_version=True)["data"]["data"]["k"] == "team-a/shared"
    assert c.secrets.kv.v2.read_secret("team-b/shared", raise_on_deleted_version=True)["data"]["data"]["k"] == "team-b/shared"
    for refused in ("team-a/deep/shared", "team-a/private"):
        with pytest.raises(hvac.exceptions.Forbidden):
            c.secrets.kv.v2.read_secret(refused, raise_on_deleted_version=True)


def test_policy_change_applies_to_existing_tokens(dev_server, root, kv):
    kv.create_or_update_secret("app/db", secret={"k": "v"})
    c = policy_client(dev_server, root, "app-read", APP_READ)
    assert c.secrets.kv.v2.read_secret("app/db", raise_on_deleted_version=True)
    root.sys.create_or_update_acl_policy(name="app-read", policy='path "secret/data/elsewhere/*" { capabilities = ["read"] }')
    with pytest.raises(hvac.exceptions.Forbidden):
        c.secrets.kv.v2.read_secret("app/db", raise_on_deleted_version=True)
    root.sys.delete_acl_policy("app-read")
    with pytest.raises(hvac.exceptions.Forbidden):
        c.secrets.kv.v2.read_secret("app/db", raise_on_deleted_version=True)


def test_default_policy_allows_lookup_self_only(dev_server, root):
    token, _ = make_token(dev_server, root, policies=["default"], ttl="1h")
    c = dev_server.client(token)
    assert c.auth.token.lookup_self()["data"]["id"] == token
    with pytest.raises(hvac.exceptions.Forbidden):
        c.sys.list_acl_policies()
    with pytest.raises(hvac.exceptions.Forbidden):
        c.sys.list_mounted_secrets_engines()
    with pytest.raises(hvac.exceptions.Forbidden):
        c.auth.token.create(ttl="1h")
