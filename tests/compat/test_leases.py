"""Leases with hvac's `sys` lease methods, unchanged, on dynamic PostgreSQL users.

read_lease, renew_lease, revoke_lease, revoke_prefix, revoke_force and
list_leases act on `database/creds/...` leases; every effect is checked in the
real PostgreSQL (login, `pg_roles`, `VALID UNTIL`). Cairn's own lease-owner
extension (`X-Cairn-Lease-Owner`, `sys/cairn/leases/*`) is driven with
`requests`, as the operator and CSI provider call it.
"""

import time
from datetime import datetime

import hvac
import pytest
import requests

from conftest import assert_secret_absent, make_token, policy_client
from pg_harness import Credential
from tokenreview import enable_kubernetes_auth, login_token

OWNER_HEADER = "X-Cairn-Lease-Owner"


def call(server, method: str, path: str, token: str, body=None, headers=None) -> requests.Response:
    h = {"X-Vault-Token": token}
    h.update(headers or {})
    return requests.request(method, f"{server.url}/v1/{path}", json=body, headers=h, timeout=30)


def suffix(lease_id: str) -> str:
    return lease_id.rsplit("/", 1)[1]


def rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_read_list_and_renew_leases(root, database, pg):
    role = database.role_name("renew")
    database.create_role(role, default_ttl=60, max_ttl=300)
    first = database.creds(role)
    second = database.creds(role)
    issued_at = time.time()

    lease = root.sys.read_lease(lease_id=first.lease_id)["data"]
    assert lease["id"] == first.lease_id
    assert lease["renewable"] is True
    assert 50 <= lease["ttl"] <= 60
    assert abs(rfc3339(lease["expire_time"]) - (issued_at + 60)) < 10
    assert abs(rfc3339(lease["issue_time"]) - issued_at) < 10
    assert lease["last_renewal"] is None

    assert root.sys.read_lease(lease_id=second.lease_id)["data"]["id"] == second.lease_id

    renewed = root.sys.renew_lease(lease_id=first.lease_id, increment=120)
    assert renewed["lease_id"] == first.lease_id
    assert 110 <= renewed["lease_duration"] <= 120
    assert renewed["renewable"] is True
    lease = root.sys.read_lease(lease_id=first.lease_id)["data"]
    assert lease["last_renewal"] is not None and 110 <= lease["ttl"] <= 120
    # The database user's expiry follows the lease.
    assert abs(pg.valid_until(first.username) - (time.time() + 120)) < 15

    # Past the role's max TTL (300 s from issue): capped, never extended beyond.
    capped = root.sys.renew_lease(lease_id=first.lease_id, increment=3600)
    assert 280 <= capped["lease_duration"] <= 300, capped
    expire = rfc3339(root.sys.read_lease(lease_id=first.lease_id)["data"]["expire_time"])
    assert expire <= issued_at + 300 + 5
    assert pg.valid_until(first.username) <= issued_at + 300 + 5
    assert pg.can_login(first)

    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.renew_lease(lease_id=f"database/creds/{role}/no-such-lease", increment=60)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.renew_lease(lease_id=first.lease_id, increment="forever")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.read_lease(lease_id=f"database/creds/{role}/no-such-lease")


def test_revoke_lease_and_revoke_prefix(dev_server, root, database, pg):
    role_a = database.role_name("pa")
    role_b = database.role_name("pb")
    database.create_role(role_a)
    database.create_role(role_b)
    a = [database.creds(role_a) for _ in range(3)]
    b = database.creds(role_b)

    assert root.sys.revoke_lease(lease_id=a[0].lease_id).status_code == 204
    assert not pg.role_exists(a[0].username)
    # Revoking what is already gone is not an error (Vault's behaviour).
    root.sys.revoke_lease(lease_id=a[0].lease_id)

    # revoke-prefix is root-protected: update alone is not enough.
    no_sudo = policy_client(dev_server, root, "revokers",
                            'path "sys/leases/revoke-prefix/*" { capabilities = ["update"] }')
    with pytest.raises(hvac.exceptions.Forbidden):
        no_sudo.sys.revoke_prefix(prefix=f"database/creds/{role_a}")
    assert pg.role_exists(a[1].username)
    sudo = policy_client(dev_server, root, "sudo-revokers",
                         'path "sys/leases/revoke-prefix/*" { capabilities = ["update", "sudo"] }')

    assert sudo.sys.revoke_prefix(prefix=f"database/creds/{role_a}").status_code == 204
    for issued in a[1:]:
        assert not pg.role_exists(issued.username)
        assert not pg.can_login(issued)
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.sys.list_leases(prefix=f"database/creds/{role_a}/")
    # The other role's lease is untouched.
    assert pg.can_login(b)
    assert root.sys.read_lease(lease_id=b.lease_id)["data"]["id"] == b.lease_id


def test_list_leases(root, database):
    role = database.role_name("list")
    database.create_role(role)
    first = database.creds(role)
    second = database.creds(role)
    # As hvac users write it (hvac sends the prefix as given), and with the slash.
    for prefix in (f"database/creds/{role}", f"database/creds/{role}/"):
        keys = root.sys.list_leases(prefix=prefix)["data"]["keys"]
        assert sorted(keys) == sorted([suffix(first.lease_id), suffix(second.lease_id)]), prefix
    assert f"{role}/" in root.sys.list_leases(prefix="database/creds")["data"]["keys"]
    assert root.sys.list_leases(prefix="database")["data"]["keys"] == ["creds/"]


def test_revoke_prefix_stops_at_a_path_segment(root, database, pg):
    role = database.role_name("seg")
    longer = f"{role}-2"
    database.create_role(role)
    database.create_role(longer)
    mine = database.creds(role)
    neighbour = database.creds(longer)
    root.sys.revoke_prefix(prefix=f"database/creds/{role}")
    assert not pg.role_exists(mine.username)
    assert pg.can_login(neighbour), "revoke-prefix revoked another role's lease"


def test_failed_revocation_is_visible_and_revoke_force_forgets_the_lease(root, database, pg):
    role = database.role_name("force")
    database.create_role(role)
    issued = database.creds(role)

    pg.stop()
    with pytest.raises(hvac.exceptions.InvalidRequest) as failed:
        root.sys.revoke_lease(lease_id=issued.lease_id)
    assert "revoke" in str(failed.value)
    lease = root.sys.read_lease(lease_id=issued.lease_id)["data"]
    assert lease["cairn_revoke_attempts"] >= 1
    assert lease["cairn_last_error"], lease
    assert_secret_absent(database.admin.password, str(lease))
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.revoke_prefix(prefix=f"database/creds/{role}")
    assert root.sys.read_lease(lease_id=issued.lease_id)["data"]["id"] == issued.lease_id

    # revoke-force ignores the engine's failure and forgets the lease.
    assert root.sys.revoke_force(prefix=f"database/creds/{role}").status_code == 204
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.sys.list_leases(prefix=f"database/creds/{role}/")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.read_lease(lease_id=issued.lease_id)

    # As Vault documents, the user itself is left for the operator to remove.
    pg.start()
    assert pg.role_exists(issued.username)


def test_an_expired_lease_drops_the_user(root, database, pg):
    role = database.role_name("short")
    database.create_role(role, default_ttl=2, max_ttl=2)
    issued = database.creds(role)
    assert issued.lease_duration == 2
    assert pg.can_login(issued)
    deadline = time.monotonic() + 6
    while pg.role_exists(issued.username):
        assert time.monotonic() < deadline, "the user outlived its 2 s lease by more than 4 s"
        time.sleep(0.2)
    assert not pg.can_login(issued)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.renew_lease(lease_id=issued.lease_id, increment=60)


def test_token_owned_leases_are_revoked_with_their_token(dev_server, root, database, pg):
    role = database.role_name("tok")
    database.create_role(role)
    root.sys.create_or_update_acl_policy(name="creds", policy=f'path "database/creds/{role}" {{ capabilities = ["read"] }}')
    token, _ = make_token(dev_server, root, policies=["creds"], ttl="1h")
    issued = database.creds(role, client=dev_server.client(token))
    assert pg.can_login(issued)
    root.auth.token.revoke(token)
    assert not pg.role_exists(issued.username)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.read_lease(lease_id=issued.lease_id)


def test_object_owned_leases_through_the_owner_endpoints(dev_server, root, database, pg):
    role = database.role_name("own")
    database.create_role(role)
    owner = "team-a/Pod/web-0/5f0c7d1e-0000-4000-8000-000000000001"
    token = dev_server.root_token

    r = call(dev_server, "GET", f"database/creds/{role}", token, headers={OWNER_HEADER: owner})
    assert r.status_code == 200, r.text
    lease_id = r.json()["lease_id"]
    user = Credential(r.json()["data"]["username"], r.json()["data"]["password"])
    dev_server.remember(user.password)
    assert pg.can_login(user)
    assert root.sys.read_lease(lease_id=lease_id)["data"]["cairn_owner"]

    r = call(dev_server, "GET", "sys/cairn/leases/owners?kind=Pod", token)
    assert r.status_code == 200, r.text
    owners = r.json()["data"]["owners"]
    assert [o for o in owners if o["owner"] == owner] == [{
        "owner": owner, "namespace": "team-a", "kind": "Pod", "name": "web-0",
        "uid": "5f0c7d1e-0000-4000-8000-000000000001", "leases": 1}]
    r = call(dev_server, "GET", "sys/cairn/leases/owners?kind=Deployment", token)
    assert r.status_code == 200 and r.json()["data"]["owners"] == [], r.text

    r = call(dev_server, "PUT", "sys/cairn/leases/owner", token, {"owner": owner})
    assert r.status_code == 200, r.text
    leases = r.json()["data"]["leases"]
    assert [x["id"] for x in leases] == [lease_id]
    assert leases[0]["ttl"] > 3000 and leases[0]["expire_time"]

    # Malformed owners are refused before anything is created.
    before = pg.roles_like(f"v-{role}-%")
    for bad in ["team-a/Pod/web-0", "team-a/Pod/../x", "a//b/c", "team-a/Pod/web 0/uid"]:
        r = call(dev_server, "GET", f"database/creds/{role}", token, headers={OWNER_HEADER: bad})
        assert r.status_code == 400, (bad, r.text)
        r = call(dev_server, "PUT", "sys/cairn/leases/owner", token, {"owner": bad})
        assert r.status_code == 400, (bad, r.text)
    assert pg.roles_like(f"v-{role}-%") == before

    r = call(dev_server, "PUT", "sys/cairn/leases/revoke-owner", token, {"owner": owner})
    assert r.status_code == 200 and r.json()["data"]["revoked"] == 1, r.text
    assert not pg.role_exists(user.username)
    r = call(dev_server, "GET", "sys/cairn/leases/owners", token)
    assert all(o["owner"] != owner for o in r.json()["data"]["owners"]), r.text


def test_object_owned_leases_survive_their_token_and_stay_in_their_namespace(dev_server, root, database, pg,
                                                                            tokenreview):
    role = database.role_name("ns")
    database.create_role(role)
    root.sys.create_or_update_acl_policy(name="workload", policy=(
        f'path "database/creds/{role}" {{ capabilities = ["read"] }}\n'
        'path "sys/leases/renew" { capabilities = ["update"] }\n'
        'path "sys/leases/lookup" { capabilities = ["update"] }\n'
        'path "sys/cairn/leases/*" { capabilities = ["read", "update"] }\n'))
    enable_kubernetes_auth(dev_server, root, tokenreview)
    for ns in ("team-a", "team-b"):
        root.auth.kubernetes.create_role(name=f"{ns}.app", bound_service_account_names=["app"],
                                         bound_service_account_namespaces=[ns], policies=["workload"],
                                         ttl="1h", audience="cairn")
    token_a = login_token(dev_server, tokenreview, "team-a.app", "team-a", "app")
    owner = "team-a/Pod/web-0/uid-web-0"

    r = call(dev_server, "GET", f"database/creds/{role}", token_a, headers={OWNER_HEADER: owner})
    assert r.status_code == 200, r.text
    owned = r.json()
    owned_user = Credential(owned["data"]["username"], owned["data"]["password"])
    dev_server.remember(owned_user.password)
    plain = database.creds(role, client=dev_server.client(token_a))

    # A token may bind leases only to objects of its own namespace.
    before = pg.roles_like(f"v-{role}-%")
    r = call(dev_server, "GET", f"database/creds/{role}", token_a, headers={OWNER_HEADER: "team-b/Pod/web-0/uid-b"})
    assert r.status_code == 403, r.text
    assert pg.roles_like(f"v-{role}-%") == before
    for path in ("sys/cairn/leases/owner", "sys/cairn/leases/revoke-owner"):
        r = call(dev_server, "PUT", path, token_a, {"owner": "team-b/Pod/web-0/uid-b"})
        assert r.status_code == 403, (path, r.text)

    # The login token goes; its own lease goes with it, the pod's lease stays.
    root.auth.token.revoke(token_a)
    assert not pg.role_exists(plain.username)
    assert pg.can_login(owned_user)
    assert root.sys.read_lease(lease_id=owned["lease_id"])["data"]["id"] == owned["lease_id"]

    # Any token of the same namespace may renew it; another namespace's may not.
    token_a2 = login_token(dev_server, tokenreview, "team-a.app", "team-a", "app")
    renewed = dev_server.client(token_a2).sys.renew_lease(lease_id=owned["lease_id"], increment=600)
    assert 590 <= renewed["lease_duration"] <= 600
    token_b = login_token(dev_server, tokenreview, "team-b.app", "team-b", "app")
    with pytest.raises(hvac.exceptions.Forbidden):
        dev_server.client(token_b).sys.renew_lease(lease_id=owned["lease_id"], increment=600)
    r = call(dev_server, "GET", "sys/cairn/leases/owners", token_b)
    assert r.status_code == 200 and r.json()["data"]["owners"] == [], r.text

    r = call(dev_server, "PUT", "sys/cairn/leases/revoke-owner", token_a2, {"owner": owner})
    assert r.status_code == 200 and r.json()["data"]["revoked"] == 1, r.text
    assert not pg.role_exists(owned_user.username)
