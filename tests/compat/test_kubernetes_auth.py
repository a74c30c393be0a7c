"""The Kubernetes auth method with hvac's `auth.kubernetes`, unchanged.

The Kubernetes API server is stood in for by a TokenReview endpoint served by
the test (`tokenreview.py`): it checks the reviewer's bearer token and the
audiences asked for, and names `system:serviceaccount:<ns>:<sa>`. Service
account tokens, the reviewer token and issued Cairn tokens are registered with
the server fixture, whose teardown fails the test if any reached a log.
"""

import json

import hvac
import pytest

from conftest import assert_secret_absent, free_port
from tokenreview import API_AUDIENCE, enable_kubernetes_auth


@pytest.fixture
def k8s(dev_server, root, tokenreview):
    """Kubernetes auth enabled at `auth/kubernetes`, configured for the test's TokenReview endpoint."""
    enable_kubernetes_auth(dev_server, root, tokenreview)
    root.sys.create_or_update_acl_policy(name="app-read", policy=(
        'path "secret/data/app/*" { capabilities = ["read"] }\n'))
    return root.auth.kubernetes


def mint(server, review, namespace: str, name: str, audiences=("cairn",)) -> str:
    jwt = review.mint(namespace, name, list(audiences))
    server.remember(jwt)
    return jwt


def login(server, role, jwt):
    """Logs in with a fresh token-less hvac client; returns the `auth` block."""
    client = server.client(token="")
    auth = client.auth.kubernetes.login(role=role, jwt=jwt)["auth"]
    server.remember(auth["client_token"])
    return auth


def app_role(k8s, name="app", audience="cairn", **kwargs):
    params = dict(bound_service_account_names=["app"], bound_service_account_namespaces=["team-a"],
                  policies=["app-read"], ttl="1h", max_ttl="4h", audience=audience)
    params.update(kwargs)
    k8s.create_role(name=name, **params)


def test_configure_and_read_config(dev_server, root, k8s, tokenreview):
    assert root.sys.list_auth_methods()["data"]["kubernetes/"]["type"] == "kubernetes"
    config = k8s.read_config()
    assert config["kubernetes_host"] == tokenreview.url
    assert config["token_reviewer_jwt_set"] is True
    assert "token_reviewer_jwt" not in config
    assert_secret_absent(tokenreview.reviewer_jwt, json.dumps(config), "the config read")

    # A write without token_reviewer_jwt keeps the stored one (Vault's behaviour).
    k8s.configure(kubernetes_host=tokenreview.url + "/")
    assert k8s.read_config()["kubernetes_host"] == tokenreview.url
    app_role(k8s)
    assert login(dev_server, "app", mint(dev_server, tokenreview, "team-a", "app"))["client_token"]
    assert tokenreview.bearers() == [tokenreview.reviewer_jwt]

    for bad in ("ftp://cluster.example", "http://", ""):
        with pytest.raises(hvac.exceptions.InvalidRequest):
            k8s.configure(kubernetes_host=bad)
    assert k8s.read_config()["kubernetes_host"] == tokenreview.url


def test_create_read_list_and_delete_roles(k8s):
    app_role(k8s, name="app")
    k8s.create_role(name="team-b.worker", bound_service_account_names="worker,cron",
                    bound_service_account_namespaces="team-b", policies="app-read")

    role = k8s.read_role(name="app")
    assert role["bound_service_account_names"] == ["app"]
    assert role["bound_service_account_namespaces"] == ["team-a"]
    assert role["audience"] == "cairn"
    assert role["token_policies"] == ["app-read"] and role["policies"] == ["app-read"]
    assert (role["token_ttl"], role["token_max_ttl"]) == (3600, 14400)
    assert (role["ttl"], role["max_ttl"]) == (3600, 14400)
    assert k8s.read_role(name="team-b.worker")["bound_service_account_names"] == ["worker", "cron"]
    assert sorted(k8s.list_roles()["keys"]) == ["app", "team-b.worker"]

    assert k8s.delete_role(name="app").status_code == 204
    with pytest.raises(hvac.exceptions.InvalidPath):
        k8s.read_role(name="app")
    assert k8s.list_roles()["keys"] == ["team-b.worker"]
    k8s.delete_role(name="team-b.worker")
    with pytest.raises(hvac.exceptions.InvalidPath):
        k8s.list_roles()


@pytest.mark.parametrize("params", [
    dict(bound_service_account_names=[], bound_service_account_namespaces=["team-a"]),
    dict(bound_service_account_names=["app"], bound_service_account_namespaces=[]),
    dict(bound_service_account_names=["*", "app"], bound_service_account_namespaces=["team-a"]),
    dict(bound_service_account_names=["app"], bound_service_account_namespaces=["team-a"], policies=["root"]),
    dict(bound_service_account_names=["app"], bound_service_account_namespaces=["team-a"], ttl="2h", max_ttl="1h"),
    dict(bound_service_account_names=["app"], bound_service_account_namespaces=["team-a"], ttl="1h; rm -rf"),
    dict(bound_service_account_names=["app"], bound_service_account_namespaces=["team-a"], token_type="batch"),
])
def test_bad_roles_are_refused(k8s, params):
    with pytest.raises(hvac.exceptions.InvalidRequest):
        k8s.create_role(name="bad", **params)
    with pytest.raises(hvac.exceptions.InvalidPath):
        k8s.read_role(name="bad")


@pytest.mark.parametrize("name", ["../config", "a/b", 'x";DROP', "a b", "team-a.app%00"])
def test_injection_in_role_names_is_refused(k8s, tokenreview, name):
    with pytest.raises((hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath)):
        app_role(k8s, name=name)
    if ".." not in name:
        # (The HTTP client itself resolves `role/../config` to `config` before sending.)
        with pytest.raises((hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath)):
            k8s.read_role(name=name)
    # Nothing was written anywhere, the config included.
    with pytest.raises(hvac.exceptions.InvalidPath):
        k8s.list_roles()
    config = k8s.read_config()
    assert config["kubernetes_host"] == tokenreview.url and config["token_reviewer_jwt_set"] is True


def test_login_with_a_role(dev_server, root, k8s, tokenreview):
    app_role(k8s)
    root.secrets.kv.v2.create_or_update_secret("app/config", secret={"level": "info"})
    jwt = mint(dev_server, tokenreview, "team-a", "app")

    auth = login(dev_server, "app", jwt)
    assert set(auth["policies"]) == {"app-read", "default"}
    assert auth["lease_duration"] == 3600 and auth["renewable"] is True
    meta = auth["metadata"]
    assert (meta["role"], meta["service_account_namespace"], meta["service_account_name"]) == ("app", "team-a", "app")
    assert meta["service_account_uid"] == "uid-team-a-app"
    assert_secret_absent(jwt, json.dumps(auth), "the login answer")

    # The review asked the API server about this token, for the role's audience, as the reviewer.
    review = tokenreview.reviews()[-1]
    assert review["spec"]["token"] == jwt
    assert review["spec"]["audiences"] == ["cairn"]
    assert tokenreview.bearers()[-1] == tokenreview.reviewer_jwt

    # The token is an orphan with the role's policies.
    client = dev_server.client(auth["client_token"])
    me = client.auth.token.lookup_self()["data"]
    assert me["orphan"] is True
    assert me["meta"]["service_account_namespace"] == "team-a"
    assert client.secrets.kv.v2.read_secret("app/config", raise_on_deleted_version=True)["data"]["data"] == {"level": "info"}
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.create_or_update_secret("app/config", secret={"level": "debug"})

    # hvac's default use_token=True makes the logging-in client use the new token.
    hvac_client = dev_server.client(token="")
    hvac_client.auth.kubernetes.login(role="app", jwt=jwt)
    dev_server.remember(hvac_client.token)
    assert hvac_client.is_authenticated()


def test_login_without_a_role_uses_the_namespace_dot_service_account_role(dev_server, k8s, tokenreview):
    app_role(k8s, name="team-a.app")
    jwt = mint(dev_server, tokenreview, "team-a", "app")
    auth = login(dev_server, None, jwt)
    assert auth["metadata"]["role"] == "team-a.app"
    assert "app-read" in auth["policies"]
    # With no role the review asks for Cairn's own audience.
    assert tokenreview.reviews()[-1]["spec"]["audiences"] == ["cairn"]

    # A service account no role is named after is refused.
    with pytest.raises(hvac.exceptions.Forbidden):
        login(dev_server, None, mint(dev_server, tokenreview, "team-a", "nobody"))
    # A token issued for the API server only, not for Cairn.
    with pytest.raises(hvac.exceptions.Forbidden):
        login(dev_server, None, mint(dev_server, tokenreview, "team-a", "app", audiences=[API_AUDIENCE]))


def test_refused_logins_get_clear_errors_and_no_token(dev_server, k8s, tokenreview):
    app_role(k8s)
    jwt = mint(dev_server, tokenreview, "team-a", "app")
    cases = [
        # Wrong audience: the token was issued for the API server, the role wants "cairn".
        ("app", mint(dev_server, tokenreview, "team-a", "app", audiences=[API_AUDIENCE]), hvac.exceptions.Forbidden),
        ("no-such-role", jwt, hvac.exceptions.InvalidRequest),
        ("app", mint(dev_server, tokenreview, "team-b", "app"), hvac.exceptions.Forbidden),
        ("app", mint(dev_server, tokenreview, "team-a", "other"), hvac.exceptions.Forbidden),
        ("app", "sa-token-never-issued-" + "0" * 16, hvac.exceptions.Forbidden),
        ("app", "", hvac.exceptions.InvalidRequest),
        ("../config", jwt, hvac.exceptions.InvalidRequest),
    ]
    for role, token, error in cases:
        dev_server.remember(token)
        with pytest.raises(error) as refused:
            login(dev_server, role, token)
        if token:
            assert_secret_absent(token, str(refused.value), f"the refusal of role {role!r}")

    # A token the API server no longer accepts (its pod was deleted) is refused.
    tokenreview.invalidate(jwt)
    with pytest.raises(hvac.exceptions.Forbidden):
        login(dev_server, "app", jwt)


def test_an_unreachable_or_refusing_api_server_is_a_bad_gateway(dev_server, k8s, tokenreview):
    app_role(k8s)
    jwt = mint(dev_server, tokenreview, "team-a", "app")

    # Nothing listens there.
    k8s.configure(kubernetes_host=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(hvac.exceptions.BadGateway) as failed:
        login(dev_server, "app", jwt)
    assert "TokenReview" in str(failed.value)

    # The API server refuses the reviewer's token (RBAC): 401 from it is a 502 from Cairn.
    wrong_reviewer = "reviewer-revoked-" + "f" * 16
    dev_server.remember(wrong_reviewer)
    k8s.configure(kubernetes_host=tokenreview.url, token_reviewer_jwt=wrong_reviewer)
    with pytest.raises(hvac.exceptions.BadGateway) as failed:
        login(dev_server, "app", jwt)
    assert "401" in str(failed.value)
    assert_secret_absent(wrong_reviewer, str(failed.value))

    k8s.configure(kubernetes_host=tokenreview.url, token_reviewer_jwt=tokenreview.reviewer_jwt)
    assert login(dev_server, "app", jwt)["client_token"]


def test_disabling_the_method_revokes_its_tokens(dev_server, root, k8s, tokenreview):
    app_role(k8s)
    token = login(dev_server, "app", mint(dev_server, tokenreview, "team-a", "app"))["client_token"]
    client = dev_server.client(token)
    assert client.is_authenticated()
    root.sys.disable_auth_method("kubernetes")
    assert not client.is_authenticated()
