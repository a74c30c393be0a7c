"""Cairn's `database/` engine configured against the suite's PostgreSQL.

One `DatabaseMount` per test: its own dev server, the engine enabled at
`database/`, a connection `pg` that logs in as a superuser made for this test
only (so a root rotation never touches another test's account), and helpers
that issue credentials with hvac and register every password with the
server's log check.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Optional

import hvac

from pg_harness import CREATION_STATEMENT, Credential, Postgres

PLUGIN = "postgresql-database-plugin"

@dataclass(frozen=True)
class Issued(Credential):
    """One `database/creds/<role>` answer (the password is not in its repr)."""

    lease_id: str = ""
    lease_duration: int = 0
    renewable: bool = False


class DatabaseMount:
    def __init__(self, server, root: hvac.Client, pg: Postgres, connection: str = "pg"):
        self.server = server
        self.root = root
        self.pg = pg
        self.connection = connection
        self.admin = pg.new_admin()
        server.remember(self.admin.password)

    @property
    def db(self):
        """`secrets.database` of the root client."""
        return self.root.secrets.database

    def enable(self) -> "DatabaseMount":
        self.root.sys.enable_secrets_engine("database")
        self.configure(allowed_roles=["*"])
        return self

    def configure(self, name: Optional[str] = None, **kwargs):
        """`database/config/<name>` for the suite's cluster, with this test's root account."""
        params = dict(connection_url=self.pg.template_url(), username=self.admin.username,
                      password=self.admin.password)
        params.update(kwargs)
        return self.db.configure(name=name or self.connection, plugin_name=PLUGIN, **params)

    @staticmethod
    def role_name(label: str) -> str:
        """A role name no other test of the module uses (users are named after it)."""
        return f"{label}-{secrets.token_hex(3)}"

    def create_role(self, name: str, default_ttl="1h", max_ttl="24h", **kwargs):
        kwargs.setdefault("creation_statements", [CREATION_STATEMENT])
        return self.db.create_role(name=name, db_name=kwargs.pop("db_name", self.connection),
                                   default_ttl=default_ttl, max_ttl=max_ttl, **kwargs)

    def creds(self, role: str, client: Optional[hvac.Client] = None) -> Issued:
        """Issues a credential with hvac's `generate_credentials` and registers its password."""
        client = client or self.root
        resp = client.secrets.database.generate_credentials(name=role)
        data = resp["data"]
        self.server.remember(data["password"])
        return Issued(data["username"], data["password"], resp["lease_id"],
                      resp["lease_duration"], resp["renewable"])
