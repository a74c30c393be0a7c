"""The database secrets engine with hvac's `secrets.database`, unchanged.

Against a real PostgreSQL (one cluster per module, see `pg_harness`): every
credential Cairn issues is used to log in over TCP and run a query, and every
revocation is checked in `pg_roles`. Passwords are registered with the server
fixture, whose teardown fails the test if any of them reached a log.
"""

import json
import time

import hvac
import psycopg
import pytest

from conftest import assert_secret_absent, describe_leak, unique
from database_mount import PLUGIN
from pg_harness import CREATION_STATEMENT


def test_configure_read_list_reset_and_delete_connections(root, database, pg):
    db = database.db
    assert root.sys.list_mounted_secrets_engines()["data"]["database/"]["type"] == "database"

    resp = db.read_connection(name="pg")
    data = resp["data"]
    assert data["plugin_name"] == PLUGIN
    assert data["connection_details"]["connection_url"] == pg.template_url()
    assert data["connection_details"]["username"] == database.admin.username
    assert data["allowed_roles"] == ["*"]
    assert data["verify_connection"] is True
    # A read never returns the password Cairn logs in with.
    assert_secret_absent(database.admin.password, json.dumps(resp))

    database.configure(name="other", allowed_roles=["reports", "etl"])
    assert sorted(db.list_connections()["data"]["keys"]) == ["other", "pg"]
    assert db.read_connection(name="other")["data"]["allowed_roles"] == ["reports", "etl"]

    # Reset closes the pool; the next credential opens a new one.
    assert db.reset_connection(name="pg").status_code == 204
    role = database.role_name("after-reset")
    database.create_role(role)
    issued = database.creds(role)
    assert pg.can_login(issued)

    assert db.delete_connection(name="other").status_code == 204
    assert db.list_connections()["data"]["keys"] == ["pg"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        db.read_connection(name="other")
    with pytest.raises(hvac.exceptions.InvalidPath):
        db.reset_connection(name="other")


def test_a_connection_that_cannot_log_in_is_refused_and_not_stored(dev_server, database, pg):
    db = database.db
    wrong = unique("wrong-root-password")
    dev_server.remember(wrong)
    with pytest.raises(hvac.exceptions.InvalidRequest) as refused:
        database.configure(name="broken", password=wrong, allowed_roles=["*"])
    assert_secret_absent(wrong, str(refused.value))
    assert "authentication" in str(refused.value).lower() or "password" in str(refused.value).lower(), \
        str(refused.value)
    assert db.list_connections()["data"]["keys"] == ["pg"]

    with pytest.raises(hvac.exceptions.InvalidRequest):
        db.configure(name="mysql", plugin_name="mysql-database-plugin",
                     connection_url=pg.template_url(), username="u", password="p" * 8)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        db.configure(name="nourl", plugin_name=PLUGIN, username="u")

    # verify_connection=false stores it; the failure then comes at issue time, with no lease.
    database.configure(name="broken", password=wrong, allowed_roles=["*"], verify_connection=False)
    role = database.role_name("broken")
    database.create_role(role, db_name="broken")
    with pytest.raises(hvac.exceptions.InvalidRequest) as failed:
        db.generate_credentials(name=role)
    assert_secret_absent(wrong, str(failed.value))
    with pytest.raises(hvac.exceptions.InvalidPath):
        database.root.sys.list_leases(prefix=f"database/creds/{role}/")
    assert pg.roles_like(f"v-{role}-%") == []


def test_create_read_list_and_delete_roles(database):
    db = database.db
    revoke = 'REVOKE ALL ON DATABASE postgres FROM "{{name}}"; DROP ROLE IF EXISTS "{{name}}";'
    db.create_role(name="readonly", db_name="pg", creation_statements=[CREATION_STATEMENT],
                   default_ttl="1h", max_ttl=86400, revocation_statements=[revoke])
    db.create_role(name="batch", db_name="pg", creation_statements=[CREATION_STATEMENT])

    role = db.read_role(name="readonly")["data"]
    assert role["db_name"] == "pg"
    assert role["default_ttl"] == 3600
    assert role["max_ttl"] == 86400
    assert role["creation_statements"] == [CREATION_STATEMENT]
    assert role["revocation_statements"] == [revoke]
    assert db.read_role(name="batch")["data"]["default_ttl"] == 0
    assert sorted(db.list_roles()["data"]["keys"]) == ["batch", "readonly"]

    # An update changes what it names and keeps the rest.
    db.create_role(name="readonly", db_name="pg", creation_statements=[CREATION_STATEMENT], default_ttl=600)
    updated = db.read_role(name="readonly")["data"]
    assert (updated["default_ttl"], updated["max_ttl"]) == (600, 86400)
    assert updated["revocation_statements"] == [revoke]

    assert db.delete_role(name="batch").status_code == 204
    assert db.list_roles()["data"]["keys"] == ["readonly"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        db.read_role(name="batch")
    with pytest.raises(hvac.exceptions.InvalidPath):
        db.generate_credentials(name="batch")
    db.delete_role(name="readonly")
    with pytest.raises(hvac.exceptions.InvalidPath):
        db.list_roles()

    with pytest.raises(hvac.exceptions.InvalidRequest):
        db.create_role(name="nostatements", db_name="pg", creation_statements=[])
    with pytest.raises(hvac.exceptions.InvalidRequest):
        db.create_role(name="badttl", db_name="pg", creation_statements=[CREATION_STATEMENT],
                       default_ttl="soon")


def test_issued_credentials_log_in_and_revocation_drops_the_user(root, database, pg):
    role = database.role_name("app")
    database.create_role(role, default_ttl="1h", max_ttl="24h")
    with pg.admin() as admin:
        admin.execute(f'CREATE TABLE IF NOT EXISTS "orders_{role}" (id int, item text)')
        admin.execute(f'INSERT INTO "orders_{role}" VALUES (1, %s)', ("widget",))

    issued = database.creds(role)
    assert issued.lease_id.startswith(f"database/creds/{role}/")
    assert issued.lease_duration == 3600 and issued.renewable is True
    assert issued.username.startswith(f"v-{role}-") and len(issued.username) <= 63
    assert len(issued.password) >= 24

    with pg.login(issued) as conn:
        assert conn.execute("SELECT current_user::text").fetchone() == (issued.username,)
        assert conn.execute(f'SELECT item FROM "orders_{role}"').fetchall() == [("widget",)]
    expiry = pg.valid_until(issued.username)
    assert abs(expiry - (time.time() + 3600)) < 60, "VALID UNTIL does not follow the lease"

    # Two credentials are two users.
    second = database.creds(role)
    assert second.username != issued.username and second.password != issued.password

    assert root.sys.revoke_lease(lease_id=issued.lease_id).status_code == 204
    assert not pg.can_login(issued)
    assert not pg.role_exists(issued.username)
    with pytest.raises(psycopg.OperationalError):
        pg.login(issued)
    # The other user is untouched.
    assert pg.can_login(second)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.read_lease(lease_id=issued.lease_id)


def test_rotate_root_credentials_replaces_the_root_password(root, database, pg):
    role = database.role_name("rot")
    database.create_role(role)
    before = database.creds(role)

    assert database.db.rotate_root_credentials(name="pg").status_code == 204
    assert not pg.can_login(database.admin), "old root password still works"
    # Cairn keeps working with the password only it knows now.
    after = database.creds(role)
    assert pg.can_login(after)
    root.sys.revoke_lease(lease_id=before.lease_id)
    root.sys.revoke_lease(lease_id=after.lease_id)
    assert not pg.role_exists(before.username) and not pg.role_exists(after.username)
    assert_secret_absent(database.admin.password, json.dumps(database.db.read_connection(name="pg")))


def test_allowed_roles_are_enforced(root, database, pg):
    database.configure(name="narrow", allowed_roles=["permitted"])
    database.create_role("permitted", db_name="narrow")
    database.create_role("other", db_name="narrow")
    issued = database.creds("permitted")
    assert pg.can_login(issued)
    with pytest.raises(hvac.exceptions.InvalidRequest) as refused:
        database.db.generate_credentials(name="other")
    assert "not an allowed role" in str(refused.value)
    assert pg.roles_like("v-other-%") == []
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.sys.list_leases(prefix="database/creds/other/")
    # A role may name a connection that does not exist yet; issuing then fails clearly.
    database.db.create_role(name="dangling", db_name="missing", creation_statements=[CREATION_STATEMENT])
    with pytest.raises(hvac.exceptions.InvalidRequest) as dangling:
        database.db.generate_credentials(name="dangling")
    assert "missing" in str(dangling.value)


@pytest.mark.parametrize("name", ['a"b', "x';DROP ROLE postgres;--", "a b", "r.b", "%2e%2e%2fconfig", "v\u00e9"])
def test_injection_in_role_names_is_refused(database, pg, name):
    with pytest.raises((hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath)):
        database.create_role(name)
    with pytest.raises((hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath)):
        database.db.generate_credentials(name=name)
    with pytest.raises((hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath)):
        database.configure(name=name, allowed_roles=["*"])
    assert pg.role_exists("postgres")


def test_injection_in_parameters_is_refused_and_harms_nothing(root, database, pg):
    db = database.db
    with pytest.raises(hvac.exceptions.InvalidRequest):
        db.create_role(name="x", db_name='pg"; DROP ROLE postgres; --', creation_statements=[CREATION_STATEMENT])
    with pytest.raises(hvac.exceptions.InvalidRequest):
        database.create_role("x", default_ttl="1h; DROP ROLE postgres")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        database.configure(name="pg2", max_open_connections="4; DROP ROLE postgres", allowed_roles=["*"])

    # An unknown placeholder is refused when used, with no lease and no user.
    role = database.role_name("evil")
    database.create_role(role, creation_statements=["CREATE ROLE \"{{name}}\" PASSWORD '{{evil}}'"])
    with pytest.raises(hvac.exceptions.InvalidRequest) as refused:
        db.generate_credentials(name=role)
    assert "placeholder" in str(refused.value)
    assert pg.roles_like(f"v-{role}-%") == []
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.sys.list_leases(prefix=f"database/creds/{role}/")

    # Issued values are quoted where the template places them: a generated
    # user name and password never break out of their literal.
    role = database.role_name("quoted")
    database.create_role(role)
    issued = database.creds(role)
    assert all(c.isalnum() or c == "-" for c in issued.password), "password outside the documented alphabet"
    assert pg.can_login(issued)
    assert pg.role_exists("postgres")
    with pg.admin() as admin:
        assert admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s",
                             (issued.username,)).fetchone() == (False,)


def test_postgres_down_gives_a_clear_error_no_lease_and_no_user(root, dev_server, database, pg):
    role = database.role_name("down")
    database.create_role(role)
    pg.stop()
    with pytest.raises((hvac.exceptions.InvalidRequest, hvac.exceptions.InternalServerError)) as failed:
        database.db.generate_credentials(name=role)
    message = str(failed.value).lower()
    assert "connect" in message or "database" in message, message
    assert_secret_absent(database.admin.password, str(failed.value))
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.sys.list_leases(prefix=f"database/creds/{role}/")

    pg.start()
    assert pg.roles_like(f"v-{role}-%") == [], "a user was left behind"
    # The engine recovers once the database is back.
    issued = database.creds(role)
    assert pg.can_login(issued)


def test_a_failing_creation_statement_leaves_nothing_behind(root, database, pg):
    role = database.role_name("half")
    database.create_role(role, creation_statements=[
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'",
        'GRANT no_such_role TO "{{name}}"',
    ])
    with pytest.raises(hvac.exceptions.InvalidRequest) as failed:
        database.db.generate_credentials(name=role)
    assert "no_such_role" in str(failed.value)
    assert pg.roles_like(f"v-{role}-%") == [], "orphan user left behind"
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.sys.list_leases(prefix=f"database/creds/{role}/")


def test_database_passwords_never_reach_the_log(dev_server, root, pg):
    from database_mount import DatabaseMount

    database = DatabaseMount(dev_server, root, pg).enable()
    role = database.role_name("logged")
    database.create_role(role)
    issued = database.creds(role)
    root.sys.renew_lease(lease_id=issued.lease_id, increment=600)
    root.sys.revoke_lease(lease_id=issued.lease_id)
    database.db.rotate_root_credentials(name="pg")
    dev_server.stop()
    leaks = dev_server.leaked_values()
    if leaks:
        pytest.fail(describe_leak(dev_server, leaks))
