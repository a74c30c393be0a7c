"""A real PostgreSQL server for the compatibility suite.

`initdb` + `pg_ctl` from the newest `/usr/lib/postgresql/<v>/bin`, in a temp
dir, on a free loopback port, run as the `postgres` user when the tests run as
root (PostgreSQL refuses to run as root). TCP logins need a password
(scram-sha-256); the harness itself talks to the server over its Unix socket
with `trust`, so it keeps working when a test rotates a password Cairn holds.
The same steps as core/tests/common/postgres.rs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import psycopg
import psycopg.sql
import pytest

from conftest import free_port

# A dynamic role as Vault's documentation writes it: quoted identifier,
# generated password, expiry; allowed to read every table.
CREATION_STATEMENT = (
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; "
    "GRANT pg_read_all_data TO \"{{name}}\";"
)


@dataclass(frozen=True)
class Credential:
    """A PostgreSQL login. The password stays out of its repr, so a failing
    assertion never prints it."""

    username: str
    password: str = field(repr=False)


def _bin_dir() -> Optional[Path]:
    """The newest PostgreSQL bin directory that holds `initdb`, if any."""
    base = Path("/usr/lib/postgresql")
    found = []
    for entry in base.glob("*") if base.is_dir() else []:
        try:
            version = int(entry.name.split(".")[0])
        except ValueError:
            continue
        if (entry / "bin" / "initdb").exists():
            found.append((version, entry / "bin"))
    return max(found)[1] if found else None


def _is_root() -> bool:
    return os.geteuid() == 0


class Postgres:
    """One PostgreSQL cluster; `stop()`/`start()` keep its data and port."""

    def __init__(self, bin_dir: Path, workdir: Path):
        self.bin = bin_dir
        self.dir = workdir
        self.data = workdir / "data"
        self.sock = workdir / "sock"
        self.log = workdir / "pg.log"
        self.port = free_port()
        self.superuser = "postgres"
        self.password = f"pg-{secrets.token_hex(16)}"
        self.running = False

    def _run(self, prog: str, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / prog), *args]
        if _is_root():
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    def init(self) -> None:
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        self.sock.mkdir()
        if _is_root():
            subprocess.run(["chown", "-R", "postgres:postgres", str(self.dir)], check=True)
        out = self._run("initdb", "-D", str(self.data), "-U", self.superuser,
                        "--auth-local=trust", "--auth-host=scram-sha-256",
                        f"--pwfile={pwfile}", "--no-sync")
        pwfile.unlink()
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed: {out.stderr}")

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c max_connections=60")
        out = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log),
                        "-w", "-t", "30", "-o", opts, "start")
        if out.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {out.stderr}\n{self.log_text()[-2000:]}")
        self.running = True

    def stop(self) -> None:
        """Immediate shutdown, as a crash of the database host would look to Cairn."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.running = False

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # --------------------------------------------------------------- access --

    def template_url(self) -> str:
        """A connection URL with Vault's `{{username}}` / `{{password}}` templates."""
        return f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def admin(self) -> psycopg.Connection:
        """The harness's own superuser session, over the Unix socket (trust)."""
        return psycopg.connect(host=str(self.sock), port=self.port, user=self.superuser,
                               dbname="postgres", autocommit=True, connect_timeout=10)

    def login(self, cred: Credential) -> psycopg.Connection:
        """A TCP login with a password, as an application would make with issued credentials."""
        return psycopg.connect(host="127.0.0.1", port=self.port, user=cred.username, password=cred.password,
                               dbname="postgres", autocommit=True, connect_timeout=10)

    def can_login(self, cred: Credential) -> bool:
        """Whether `cred` logs in over TCP and runs a query."""
        try:
            with self.login(cred) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.OperationalError:
            return False

    def role_exists(self, name: str) -> bool:
        with self.admin() as conn:
            return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None

    def roles_like(self, pattern: str) -> list[str]:
        with self.admin() as conn:
            rows = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s ORDER BY 1",
                                (pattern,)).fetchall()
        return [r[0] for r in rows]

    def valid_until(self, name: str) -> Optional[float]:
        """The role's VALID UNTIL as a Unix time (None: no expiry)."""
        with self.admin() as conn:
            row = conn.execute("SELECT extract(epoch FROM rolvaliduntil)::float8 FROM pg_roles WHERE rolname = %s",
                               (name,)).fetchone()
        assert row is not None, f"role {name} does not exist"
        return row[0]

    def new_admin(self, prefix: str = "cairn_root") -> Credential:
        """A superuser of its own for one Cairn server.

        Each test gives Cairn its own root account, so that rotating it (or a
        test going wrong) never touches the harness's `postgres` account.
        """
        name = f"{prefix}_{secrets.token_hex(6)}"
        password = f"root-{secrets.token_hex(16)}"
        with self.admin() as conn:
            conn.execute(psycopg.sql.SQL("CREATE ROLE {} WITH LOGIN SUPERUSER PASSWORD {}").format(
                psycopg.sql.Identifier(name), psycopg.sql.Literal(password)))
        return Credential(name, password)


def start_postgres() -> Postgres:
    """A new, running cluster in a fresh temp dir (fails the test when PostgreSQL is absent)."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.fail("PostgreSQL is not installed: scripts/test installs the `postgresql` package")
    workdir = Path(tempfile.mkdtemp(prefix="cairn-compat-pg-"))
    pg = Postgres(bin_dir, workdir)
    try:
        pg.init()
        pg.start()
    except Exception:
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return pg


def remove_postgres(pg: Postgres) -> None:
    pg.stop()
    shutil.rmtree(pg.dir, ignore_errors=True)
