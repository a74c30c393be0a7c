#!/usr/bin/env python3
"""Issue 4's figures: dynamic PostgreSQL credentials, transit encryption, lease expiry.

Run through `bench/engines`, which builds the release binary first. Standard
library only, plus PostgreSQL's own programs (initdb, pg_ctl, pgbench, psql).
Servers, helpers and the wrk runner come from `core.py` (issue 2's benchmark).

Each run starts a fresh PostgreSQL cluster (as the `postgres` user when run as
root) and fresh durable `cairn server` nodes (`storage "raft"`: segment-file log, group
commit, fsync per commit) with a file audit device (`fsync=batch`, the
default), then measures:

1. `database/creds/<role>` at 16 connections (wrk), with the engine's default
   pool (4 connections) and with `max_open_connections=16`; and beside it
   PostgreSQL alone running the same transaction (BEGIN; CREATE ROLE ...
   PASSWORD ... VALID UNTIL ...; COMMIT) with pgbench at 16 and 4 clients.
2. `transit/encrypt/<key>` of 256 bytes at 32 connections, single and with a
   `batch_input` of 1,000 items, audit on and off, beside `sys/cairn/noop`.
3. 10,000 leases with a 5 s TTL: the delay between each lease's expiry and the
   `DROP ROLE` of its user, read from PostgreSQL's statement log.

Benchmarks measure; they never fail on a missed target. The process exits
non-zero only when the measurement itself could not be made.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import core as cb
from core import BenchError, Server, api, must

BENCH_DIR = Path(__file__).resolve().parent
CREATE_WITH_PASSWORD = (
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
)
# The expiry figure's role: no password, so PostgreSQL does no SCRAM hashing
# and the 10,000 leases are created quickly enough to expire close together.
CREATE_CHEAP = 'CREATE ROLE "{{name}}";'
PG_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC \[\d+\] LOG:  statement: "
    r'(CREATE ROLE|REASSIGN OWNED BY) ("v-expiry-[a-z0-9]+"(?:, "v-expiry-[a-z0-9]+")*)'
)
# Revocations are batched: one REASSIGN OWNED BY names every user of the batch.
PG_ROLE_NAME = re.compile(r'"(v-expiry-[a-z0-9]+)"')


# -------------------------------------------------------------- PostgreSQL


def pg_bin() -> Path:
    """The newest /usr/lib/postgresql/<v>/bin holding initdb and pgbench."""
    base = Path("/usr/lib/postgresql")
    found = []
    if base.is_dir():
        for d in base.iterdir():
            if d.name.split(".")[0].isdigit() and (d / "bin" / "initdb").exists() and (d / "bin" / "pgbench").exists():
                found.append((int(d.name.split(".")[0]), d / "bin"))
    if not found:
        raise BenchError("PostgreSQL is not installed (apt-get install postgresql postgresql-contrib)")
    return sorted(found)[-1][1]


def is_root() -> bool:
    return os.geteuid() == 0


class Postgres:
    """A PostgreSQL cluster in its own temp dir on a free loopback port, with
    its defaults (fsync on, synchronous_commit on, scram-sha-256 passwords)."""

    live: list["Postgres"] = []

    def __init__(self):
        self.bin = pg_bin()
        # Its own temp dir: the bench's work dir is root-only (0700).
        self.dir = Path(tempfile.mkdtemp(prefix="cairn-bench-pg-"))
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.log = self.dir / "pg.log"
        self.port = cb.free_port()
        self.password = secrets.token_hex(16)
        self.running = False

    def _run(self, prog: str, *args: str, check=True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / prog), *args]
        if is_root():
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise BenchError(f"{prog} failed ({p.returncode}): {p.stderr.strip()[-1500:]}")
        return p

    def start(self):
        self.sock.mkdir()
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if is_root():
            subprocess.run(["chown", "-R", "postgres:postgres", str(self.dir)], check=True)
        self._run(
            "initdb",
            "-D", str(self.data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}", "--no-sync",
        )
        pwfile.unlink()
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(
                f"\n# cairn bench\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.sock}'\nmax_connections = 100\n"
                "log_line_prefix = '%m [%p] '\nlog_timezone = 'UTC'\nlog_statement = 'none'\n"
            )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        self.running = True
        Postgres.live.append(self)

    def sql(self, statement: str) -> str:
        """Run one statement as the superuser over the local socket; returns psql's -At output."""
        p = self._run("psql", "-h", str(self.sock), "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                      "-v", "ON_ERROR_STOP=1", "-At", "-c", statement)
        return p.stdout.strip()

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def cpu_seconds(self) -> float:
        """CPU of the whole cluster: the postmaster's own and reaped children's
        time, plus the live children's. Monotonic, so differences are exact even
        when backends exit in between."""
        tck = os.sysconf("SC_CLK_TCK")
        pm = self.postmaster_pid()

        def stat(pid):
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()

        s = stat(pm)
        total = sum(int(x) for x in s[11:15])
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == pm:
                continue
            try:
                st = stat(entry)
            except OSError:
                continue
            if int(st[1]) == pm:
                total += int(st[11]) + int(st[12])
        return total / tck

    def stop(self):
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)
            self.running = False
        if self in Postgres.live:
            Postgres.live.remove(self)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def stop_all():
    cb.stop_all()
    for pg in list(Postgres.live):
        try:
            pg.stop()
        except Exception as e:  # keep stopping the rest
            print(f"warning: failed to stop PostgreSQL {pg.dir}: {e}", file=sys.stderr)


def scram_verifier(password: str, iterations: int) -> str:
    """PostgreSQL's stored SCRAM-SHA-256 form of `password`, as Cairn computes it."""
    import hashlib
    import hmac

    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}"


# What the database engine puts into PASSWORD '...' by default: a SCRAM
# verifier with 16 iterations (`password_authentication = "scram-sha-256"`).
CAIRN_SCRAM_ITERATIONS = 16


def pgbench(pg: Postgres, workdir: Path, clients: int, duration: float, verifier: bool = False) -> dict:
    """PostgreSQL alone: the transaction the database engine runs per credential
    (BEGIN; CREATE ROLE with a password; COMMIT), `clients` at once. The
    password is a 32-character plaintext (which PostgreSQL hashes, as with
    Vault's default), or with `verifier` a SCRAM verifier of the kind Cairn
    sends by default. pgbench substitutes :r (a random 62-bit number) for a
    unique role name."""
    password = "p-:r-abcdefghijklmnopqrstuvwxyz"
    if verifier:
        # pgbench would substitute its variable :r inside the verifier's text.
        password = ":r"
        while re.search(r":r(?![A-Za-z0-9_])", password):
            password = scram_verifier("abcdefghijklmnopqrstuvwxyz012345", CAIRN_SCRAM_ITERATIONS)
    tag = f"c{clients}{'-verifier' if verifier else ''}"
    script = workdir / f"create-role-{tag}.sql"
    script.write_text(
        "\\set r random(1, 4611686018427387903)\n"
        "BEGIN;\n"
        f"CREATE ROLE \"v-ref-:r\" WITH LOGIN PASSWORD '{password}' "
        "VALID UNTIL '2099-01-01T00:00:00Z';\n"
        "COMMIT;\n"
    )
    logdir = workdir / f"pgbench-{tag}"
    logdir.mkdir()
    cmd = [
        str(pg.bin / "pgbench"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-n", "-M", "simple",
        "-c", str(clients), "-j", "2", "-T", str(cb.wrk_seconds(duration)), "-f", str(script),
        "-l", f"--log-prefix={logdir}/tx", "postgres",
    ]
    env = {**os.environ, "PGPASSWORD": pg.password}
    load = cb.loadavg()
    cpu0 = pg.cpu_seconds()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 120, cwd=logdir)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = pg.cpu_seconds() - cpu0
    if p.returncode != 0 or "aborted" in p.stderr:
        raise BenchError(f"pgbench failed ({p.returncode}): {p.stderr.strip()[-1500:]}")
    lat_us = []
    for f in logdir.iterdir():
        for line in f.read_text().splitlines():
            # client_id transaction_no time_us script_no time_epoch time_us
            lat_us.append(int(line.split()[2]))
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", p.stdout)
    if not lat_us or not m:
        raise BenchError(f"pgbench produced no transactions: {p.stdout[-1500:]}")
    lat_us.sort()
    n = len(lat_us)
    client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "requests": n,
        "rps": float(m.group(1)),
        "p50_us": lat_us[n // 2],
        "p99_us": lat_us[min(n - 1, int(n * 0.99))],
        "max_us": lat_us[-1],
        "loadavg_1m": load,
        "pg_cpu_us_per_req": round(cpu * 1e6 / n, 1),
        "client_cpu_us_per_req": round(client_cpu * 1e6 / n, 1),
    }


# ------------------------------------------------------------- Cairn nodes


def node(binary: Path, workdir: Path, name: str, pg: Postgres | None) -> tuple[Server, str, Path]:
    """A durable node, unsealed, with the file audit device (`fsync=batch`)
    and, given `pg`, the database engine configured against it."""
    server = Server(binary, workdir, name)
    server.start()
    token = cb.init_unseal(server)
    audit = cb.enable_audit(server, token, "batch")
    if pg is not None:
        must(server.port, "POST", "/v1/sys/mounts/database", {"type": "database"}, token)
        configure_pg(server, token, pg, None)
    return server, token, audit


def configure_pg(server: Server, token: str, pg: Postgres, max_open: int | None):
    body = {
        "plugin_name": "postgresql-database-plugin",
        "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{pg.port}/postgres?sslmode=disable",
        "username": "postgres",
        "password": pg.password,
        "allowed_roles": "bench,expiry",
    }
    if max_open is not None:
        body["max_open_connections"] = max_open
    must(server.port, "POST", "/v1/database/config/pg", body, token)


def creds_once(server: Server, token: str, role: str) -> dict:
    got = must(server.port, "GET", f"/v1/database/creds/{role}", token=token)
    if not got.get("lease_id") or not got["data"].get("username") or not got["data"].get("password"):
        raise BenchError(f"database/creds/{role} answered without a lease or credential")
    return got


def measured(server: Server, script: str, conns: int, args, env, pg: Postgres | None = None) -> dict:
    """core.measured() at `conns` connections, plus PostgreSQL's CPU time."""
    a = SimpleNamespace(warmup=args.warmup, duration=args.duration, threads=args.threads, connections=conns)
    if pg is None:
        return cb.measured(server, script, a, env)
    if args.warmup > 0:
        cb.wrk(server.port, script, args.warmup, args.threads, conns, env)
        a.warmup = 0
    cpu0 = pg.cpu_seconds()
    r = cb.measured(server, script, a, env)
    r["pg_cpu_us_per_req"] = round((pg.cpu_seconds() - cpu0) * 1e6 / max(1, r["requests"]), 1)
    return r


def rss(server: Server) -> dict:
    st = server.status()
    return {"rss_kb": st["VmRSS"], "hwm_kb": st["VmHWM"]}


def metrics(server: Server, token: str) -> dict[str, float]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", "/v1/sys/metrics?format=prometheus", headers={"X-Vault-Token": token})
        resp = conn.getresponse()
        text = resp.read().decode()
        if resp.status != 200:
            raise BenchError(f"sys/metrics answered {resp.status}")
    finally:
        conn.close()
    out = {}
    for line in text.splitlines():
        if line.startswith("cairn_lease_"):
            k, _, v = line.partition(" ")
            out[k] = float(v)
    return out


# --------------------------------------------------------------- scenarios


def db_run(binary: Path, workdir: Path, pg: Postgres, args) -> dict:
    """Credential creation through Cairn (two pool sizes) and PostgreSQL alone."""
    server, token, audit = node(binary, workdir, "db", pg)
    try:
        must(server.port, "POST", "/v1/database/roles/bench",
             {"db_name": "pg", "creation_statements": [CREATE_WITH_PASSWORD], "default_ttl": "1h", "max_ttl": "24h"},
             token)
        creds_once(server, token, "bench")
        time.sleep(args.settle)
        out: dict = {"rss_idle": rss(server)}
        env = {"BENCH_TOKEN": token, "BENCH_ROLE": "bench"}
        out["creds_pool4"] = measured(server, "creds.lua", 16, args, env, pg)
        configure_pg(server, token, pg, 16)
        creds_once(server, token, "bench")
        out["creds_pool16"] = measured(server, "creds.lua", 16, args, env, pg)
        out["pg_c16"] = pgbench(pg, workdir, 16, args.duration)
        out["pg_c16_verifier"] = pgbench(pg, workdir, 16, args.duration, verifier=True)
        out["pg_c4"] = pgbench(pg, workdir, 4, args.duration)
        out["rss_after_creds"] = rss(server)
        out["audit_lines"] = cb.count_lines(audit)
        out["roles_in_pg"] = int(pg.sql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'"))
        out["transit"] = transit_phase(server, token, args)
        out["rss_after_transit"] = rss(server)
        return out
    finally:
        server.stop()


def transit_phase(server: Server, token: str, args) -> dict:
    must(server.port, "POST", "/v1/sys/mounts/transit", {"type": "transit"}, token)
    must(server.port, "POST", "/v1/transit/keys/bench", {"type": "aes256-gcm96"}, token)
    raw = os.urandom(256)
    pt = base64.b64encode(raw).decode()
    # Check the round trip and the batch shape before measuring.
    ct = must(server.port, "POST", "/v1/transit/encrypt/bench", {"plaintext": pt}, token)["data"]["ciphertext"]
    back = must(server.port, "POST", "/v1/transit/decrypt/bench", {"ciphertext": ct}, token)["data"]["plaintext"]
    if base64.b64decode(back) != raw:
        raise BenchError("transit decrypt did not return the plaintext")
    batch = must(server.port, "POST", "/v1/transit/encrypt/bench",
                 {"batch_input": [{"plaintext": pt}] * args.batch}, token)["data"]["batch_results"]
    if len(batch) != args.batch or not all(str(r.get("ciphertext", "")).startswith(("cairn:v1:", "vault:v1:")) for r in batch):
        raise BenchError("transit batch encrypt did not return one ciphertext per item")
    env = {"BENCH_TOKEN": token, "BENCH_KEY": "bench", "BENCH_PLAINTEXT": pt}
    benv = {**env, "BENCH_BATCH": str(args.batch)}
    out: dict = {"noop": measured(server, "noop.lua", 32, args, env)}
    out["encrypt_audit_on"] = measured(server, "encrypt.lua", 32, args, env)
    out["batch_audit_on"] = measured(server, "encrypt.lua", 32, args, benv)
    cb.disable_audit(server, token)
    out["encrypt_audit_off"] = measured(server, "encrypt.lua", 32, args, env)
    out["batch_audit_off"] = measured(server, "encrypt.lua", 32, args, benv)
    return out


def parse_pg_log(path: Path, offset: int) -> tuple[dict[str, float], dict[str, float], int]:
    """CREATE ROLE and REASSIGN OWNED (the start of the default revocation)
    times by user name, from `offset` on; returns them and the new offset."""
    created, dropped = {}, {}
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1  # leave a half-written line for the next read
    for line in data[:end].decode(errors="replace").splitlines():
        m = PG_LOG_LINE.match(line)
        if not m:
            continue
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        into = created if m.group(2) == "CREATE ROLE" else dropped
        for name in PG_ROLE_NAME.findall(m.group(3)):
            into[name] = t
    return created, dropped, offset + end


def expiry_run(binary: Path, workdir: Path, pg: Postgres, args) -> dict:
    """`args.leases` credentials with a `args.ttl` s TTL from `args.clients`
    clients; then wait until PostgreSQL has seen every user's revocation."""
    server, token, _audit = node(binary, workdir, "expiry", pg)
    try:
        ttl = args.ttl
        if args.expiry_pool is not None:
            configure_pg(server, token, pg, args.expiry_pool)
        must(server.port, "POST", "/v1/database/roles/expiry",
             {"db_name": "pg", "creation_statements": [CREATE_CHEAP], "default_ttl": f"{ttl}s", "max_ttl": f"{ttl}s"},
             token)
        pg.sql("ALTER SYSTEM SET log_statement = 'ddl'")
        pg.sql("SELECT pg_reload_conf()")
        time.sleep(0.5)
        log_offset = pg.log.stat().st_size
        rss_before = rss(server)

        recv: dict[str, float] = {}
        lock = threading.Lock()
        remaining = [args.leases]
        errors: list[str] = []

        def client():
            import http.client

            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            try:
                while True:
                    with lock:
                        if remaining[0] <= 0 or errors:
                            return
                        remaining[0] -= 1
                    conn.request("GET", "/v1/database/creds/expiry", headers={"X-Vault-Token": token})
                    resp = conn.getresponse()
                    body = resp.read()
                    t = time.time()
                    if resp.status != 200:
                        raise BenchError(f"database/creds/expiry answered {resp.status}: {body[:300]!r}")
                    got = json.loads(body)
                    if got.get("lease_duration") != ttl:
                        raise BenchError(f"lease_duration {got.get('lease_duration')} instead of {ttl}")
                    with lock:
                        recv[got["data"]["username"]] = t
            except Exception as e:
                with lock:
                    errors.append(str(e))
            finally:
                conn.close()

        t0 = time.time()
        threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        t_created = time.time()
        if errors:
            raise BenchError(f"creating leases failed: {errors[0]}")
        rss_loaded = rss(server)
        queued = metrics(server, token).get("cairn_lease_queued")

        created, dropped = {}, {}
        deadline = t_created + ttl + args.drain_timeout
        while True:
            c, d, log_offset = parse_pg_log(pg.log, log_offset)
            created.update(c)
            dropped.update(d)
            if len(dropped) >= len(recv) and set(recv) <= set(dropped):
                break
            if time.time() > deadline:
                break
            server.check_alive()
            time.sleep(0.25)
        m = metrics(server, token)
        missing_create = [u for u in recv if u not in created]
        if missing_create:
            raise BenchError(f"{len(missing_create)} issued users have no CREATE ROLE in PostgreSQL's log")
        revoked = [u for u in recv if u in dropped]
        upper = sorted(dropped[u] - (created[u] + ttl) for u in revoked)
        lower = sorted(dropped[u] - (recv[u] + ttl) for u in revoked)
        drops = sorted(dropped[u] for u in revoked)
        n = len(upper)
        return {
            "leases": len(recv),
            "revoked": n,
            "not_revoked": len(recv) - n,
            "create_seconds": round(t_created - t0, 3),
            "create_rate": round(len(recv) / max(1e-9, t_created - t0), 1),
            "queued_after_create": queued,
            "revoke_seconds": round(drops[-1] - drops[0], 3) if n else None,
            "revoke_rate": round(n / max(1e-9, drops[-1] - drops[0]), 1) if n > 1 else None,
            "delay_max_s": round(upper[-1], 3) if n else None,
            "delay_p99_s": round(upper[min(n - 1, int(n * 0.99))], 3) if n else None,
            "delay_p50_s": round(upper[n // 2], 3) if n else None,
            "delay_min_s": round(upper[0], 3) if n else None,
            "delay_max_lower_bound_s": round(lower[-1], 3) if n else None,
            "issue_gap_max_s": round(max(recv[u] - created[u] for u in recv), 3),
            "revocations_total": m.get("cairn_lease_revocations_total"),
            "revocation_failures_total": m.get("cairn_lease_revocation_failures_total"),
            "queued_at_end": m.get("cairn_lease_queued"),
            "roles_left": int(pg.sql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-expiry-%'")),
            "rss_before": rss_before,
            "rss_loaded": rss_loaded,
            "rss_end": rss(server),
        }
    finally:
        try:
            pg.sql("ALTER SYSTEM SET log_statement = 'none'")
            pg.sql("SELECT pg_reload_conf()")
        except BenchError:
            pass
        server.stop()


# ------------------------------------------------------------------ report

med = cb.med
fmt_us = cb.fmt_us
fmt_rps = cb.fmt_rps
fmt_mb = cb.fmt_mb
yes = cb.yes


def fmt_s(v):
    if v is None:
        return "—"
    return f"{v * 1000:.0f} ms" if abs(v) < 1 else f"{v:.2f} s"


def build_table(runs: list[dict], meta: dict) -> str:
    dbs = [r["db"] for r in runs]
    trs = [r["db"]["transit"] for r in runs]
    exps = [r["expiry"] for r in runs]

    def m(src, key, field):
        return med([x[key].get(field) for x in src])

    rows = [
        "| scenario | throughput | p50 | p99 | vs reference | CPU / op | target | met? |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for key, label, pw in (
        ("pg_c16", "PostgreSQL alone, 16 clients (pgbench)", "'<plaintext>'"),
        ("pg_c16_verifier", "PostgreSQL alone, 16 clients (pgbench)", f"'SCRAM-SHA-256${CAIRN_SCRAM_ITERATIONS}:…'"),
        ("pg_c4", "PostgreSQL alone, 4 clients (pgbench)", "'<plaintext>'"),
    ):
        if not all(key in x for x in dbs):
            continue
        rows.append(
            f"| {label}: `BEGIN; CREATE ROLE … PASSWORD {pw} VALID UNTIL …; COMMIT` | {fmt_rps(m(dbs, key, 'rps'))} "
            f"| {fmt_us(m(dbs, key, 'p50_us'))} | {fmt_us(m(dbs, key, 'p99_us'))} | 100 % "
            f"| PG {m(dbs, key, 'pg_cpu_us_per_req'):.0f} µs | (reference) | — |"
        )
    for key, label in (
        ("creds_pool4", "Cairn `database/creds`, 16 connections, pool 4 (default `max_open_connections`)"),
        ("creds_pool16", "Cairn `database/creds`, 16 connections, `max_open_connections=16`"),
    ):
        rps, p50, p99 = m(dbs, key, "rps"), m(dbs, key, "p50_us"), m(dbs, key, "p99_us")
        ref = "pg_c16_verifier" if all("pg_c16_verifier" in x for x in dbs) else "pg_c16"
        ratio = med([x[key]["rps"] / x[ref]["rps"] for x in dbs])
        rows.append(
            f"| {label} | {fmt_rps(rps)} | {fmt_us(p50)} | {fmt_us(p99)} | {ratio * 100:.0f} % of PG c16{' verifier' if ref != 'pg_c16' else ''} "
            f"| Cairn {m(dbs, key, 'server_cpu_us_per_req'):.0f} + PG {m(dbs, key, 'pg_cpu_us_per_req'):.0f} µs "
            f"| ≥ 500/s, p99 ≤ 40 ms | {yes(rps >= 500 and p99 <= 40000)} |"
        )
    n_rps = m(trs, "noop", "rps")
    rows.append(
        f"| no-op route `sys/cairn/noop`, 32 connections (HTTP ceiling) | {fmt_rps(n_rps)} | {fmt_us(m(trs, 'noop', 'p50_us'))} "
        f"| {fmt_us(m(trs, 'noop', 'p99_us'))} | 100 % | {m(trs, 'noop', 'server_cpu_us_per_req'):.0f} µs | (reference) | — |"
    )
    for key, label in (("encrypt_audit_on", "audit on (`fsync=batch`)"), ("encrypt_audit_off", "audit off")):
        rps, p99 = m(trs, key, "rps"), m(trs, key, "p99_us")
        ratio = med([x[key]["rps"] / x["noop"]["rps"] for x in trs])
        rows.append(
            f"| transit encrypt 256 B, 32 connections, {label} | {fmt_rps(rps)} | {fmt_us(m(trs, key, 'p50_us'))} "
            f"| {fmt_us(p99)} | {ratio * 100:.0f} % of no-op | {m(trs, key, 'server_cpu_us_per_req'):.0f} µs "
            f"| ≥ 40,000 ops/s | {yes(rps >= 40000)} |"
        )
    batch = meta["batch"]
    for key, label in (("batch_audit_on", "audit on (`fsync=batch`)"), ("batch_audit_off", "audit off")):
        items = med([x[key]["rps"] * batch for x in trs])
        rows.append(
            f"| transit encrypt, `batch_input` of {batch:,} × 256 B, 32 connections, {label} | {items:,.0f} items/s "
            f"({m(trs, key, 'rps'):,.1f} req/s) | {fmt_us(m(trs, key, 'p50_us'))} | {fmt_us(m(trs, key, 'p99_us'))} | "
            f"| {m(trs, key, 'server_cpu_us_per_req') / batch:.1f} µs / item | ≥ 500,000 items/s | {yes(items >= 500000)} |"
        )

    exp_rows = [
        "| figure | median of runs | worst run | target | met? |",
        "|---|---:|---:|---|---|",
    ]
    worst = max(exps, key=lambda e: (e["not_revoked"], e["delay_max_s"] or 0))
    dmax = med([e["delay_max_s"] for e in exps])
    all_revoked = all(e["not_revoked"] == 0 for e in exps)
    exp_rows += [
        f"| leases created (wall time, rate) | {med([e['leases'] for e in exps]):,.0f} in {med([e['create_seconds'] for e in exps]):.1f} s "
        f"({med([e['create_rate'] for e in exps]):,.0f}/s) | {worst['leases']:,} in {worst['create_seconds']:.1f} s | | |",
        f"| revocations (first to last `DROP ROLE`, rate) | {med([e['revoked'] for e in exps]):,.0f} in {med([e['revoke_seconds'] for e in exps]):.1f} s "
        f"({med([e['revoke_rate'] for e in exps]):,.0f}/s) | {worst['revoked']:,} in {worst['revoke_seconds']:.1f} s; {worst['not_revoked']} not revoked | | |",
        f"| delay expiry → revocation, p50 | {fmt_s(med([e['delay_p50_s'] for e in exps]))} | {fmt_s(worst['delay_p50_s'])} | | |",
        f"| delay expiry → revocation, p99 | {fmt_s(med([e['delay_p99_s'] for e in exps]))} | {fmt_s(worst['delay_p99_s'])} | | |",
        f"| **largest delay expiry → revocation** | {fmt_s(dmax)} | {fmt_s(worst['delay_max_s'])} | ≤ 1 s | "
        f"{yes(all_revoked and worst['delay_max_s'] is not None and worst['delay_max_s'] <= 1.0)} |",
        f"| largest delay, lower bound (from the client's receipt of the lease) | {fmt_s(med([e['delay_max_lower_bound_s'] for e in exps]))} "
        f"| {fmt_s(worst['delay_max_lower_bound_s'])} | | |",
        f"| revocation failures (metric) / roles left in PostgreSQL | {med([e['revocation_failures_total'] for e in exps]):.0f} / "
        f"{med([e['roles_left'] for e in exps]):.0f} | {worst['revocation_failures_total']:.0f} / {worst['roles_left']} | | |",
    ]

    rss_rows = [
        "| server RSS | median of runs | peak (`VmHWM`) |",
        "|---|---:|---:|",
        f"| credentials node, idle after setup (audit, database mount, 1 credential) | {fmt_mb(med([d['rss_idle']['rss_kb'] for d in dbs]))} | |",
        f"| credentials node, after the credential loads (~{med([d['roles_in_pg'] for d in dbs]):,.0f} users in PostgreSQL, half of them leased) "
        f"| {fmt_mb(med([d['rss_after_creds']['rss_kb'] for d in dbs]))} | {fmt_mb(med([d['rss_after_creds']['hwm_kb'] for d in dbs]))} |",
        f"| same node after the transit loads | {fmt_mb(med([d['rss_after_transit']['rss_kb'] for d in dbs]))} "
        f"| {fmt_mb(med([d['rss_after_transit']['hwm_kb'] for d in dbs]))} |",
        f"| expiry node, idle before the leases | {fmt_mb(med([e['rss_before']['rss_kb'] for e in exps]))} | |",
        f"| expiry node, {meta['leases']:,} live leases | {fmt_mb(med([e['rss_loaded']['rss_kb'] for e in exps]))} "
        f"| {fmt_mb(med([e['rss_loaded']['hwm_kb'] for e in exps]))} |",
        f"| expiry node, after every lease was revoked | {fmt_mb(med([e['rss_end']['rss_kb'] for e in exps]))} "
        f"| {fmt_mb(med([e['rss_end']['hwm_kb'] for e in exps]))} |",
    ]
    fs = [r["fdatasync"] for r in runs]

    lines = [
        "# Issue 4 — credentials, transit and lease expiry figures",
        "",
        f"Measured {meta['date']} on {meta['host']} ({meta['cpus']} CPUs, kernel {meta['kernel']}), "
        f"binary built {meta['binary_built']} from the tree at commit `{meta['commit']}`"
        f"{' (with uncommitted changes in core/)' if meta['dirty'] else ''}; PostgreSQL {meta['pg_version']}.",
        f"Medians of {meta['runs']} runs; wrk `-t{meta['threads']} -d{cb.wrk_seconds(meta['duration'])}s` after a "
        f"{meta['warmup']:g} s warm-up, on loopback; load generators, Cairn and PostgreSQL share the same {meta['cpus']} cores. "
        "Cairn: `cairn server` release build, `storage \"raft\"` (segment-file Raft log, group commit, one fdatasync per group), file audit device "
        "with `fsync=batch` (the default) — turned off only in the rows that say so. PostgreSQL: a fresh cluster per run with "
        "its defaults (fsync and synchronous_commit on, scram-sha-256 password hashing), data on the same filesystem "
        f"({meta['fs']}). Disk: 256 B append + `fdatasync`, p50 {fmt_us(med([f['p50_us'] for f in fs]))}, "
        f"p99 {fmt_us(med([f['p99_us'] for f in fs]))}. "
        f"Machine load (1-min load average) before the measured runs: median {meta['loadavg_runs_median']:.1f} on "
        f"{meta['cpus']} CPUs — other engineers' builds ran at the same time; anything well above 2 means the figures are pessimistic.",
        "",
        "## Dynamic PostgreSQL credentials and transit",
        "",
        *rows,
        "",
        "\"CPU / op\" is user + system CPU time during the measured run divided by its operations: of the `cairn` process, "
        "and of the whole PostgreSQL cluster (postmaster, backends, reaped children). \"vs reference\" is each run's "
        "throughput over the reference's in the same run. The credential rows create a user with a password, a lease stored "
        "durably, and two audit lines. Cairn sends the password as a SCRAM-SHA-256 verifier it computes "
        f"({CAIRN_SCRAM_ITERATIONS} PBKDF2 iterations: the connection's default `password_authentication = \"scram-sha-256\"`), "
        "so the like-for-like reference is the pgbench row with a verifier; with a plaintext password PostgreSQL runs "
        "4,096 PBKDF2 iterations per `CREATE ROLE` (its empty-password check). Vault's published dev-server figure is 221/s, p99 77 ms. "
        "Vault's published transit figure is 1,785 encrypt/s.",
        "",
        f"## {meta['leases']:,} leases with a {meta['ttl']} s TTL",
        "",
        *exp_rows,
        "",
        f"{meta['clients']} client threads create {meta['leases']:,} credentials (role with `CREATE ROLE \"{{{{name}}}}\"`, no "
        f"password, `default_ttl` = `max_ttl` = {meta['ttl']} s; the default revocation statements; "
        f"`max_open_connections` {meta.get('expiry_pool') or '4 (default)'}) as fast as the server "
        "answers; the leases expire as they were created, while creation goes on. PostgreSQL logs every DDL statement with "
        "a millisecond timestamp (`log_statement = ddl`): a lease's expiry is taken as its `CREATE ROLE` time + TTL (the lease "
        "is issued after that, so this over-states the delay by the commit and the lease write), its revocation as the time "
        "of the `REASSIGN OWNED … DROP ROLE` statement of the default revocation. The lower bound uses the client's receipt "
        "of the lease instead (under-states by the reply's transit).",
        "",
        "## Memory",
        "",
        *rss_rows,
        "",
        "Raw per-run numbers: `issue-4.json`.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", type=Path, help="the cairn binary to measure")
    p.add_argument("--render", action="store_true",
                   help="only rewrite results/issue-4.md from results/issue-4.json (no measurement)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=10, help="seconds of each measured wrk / pgbench run")
    p.add_argument("--warmup", type=float, default=1, help="seconds of wrk before each measured run (0: none)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--batch", type=int, default=1000, help="items per transit batch_input")
    p.add_argument("--leases", type=int, default=10000)
    p.add_argument("--ttl", type=int, default=5, help="TTL of the expiry figure's leases, seconds")
    p.add_argument("--clients", type=int, default=32, help="client threads creating the expiry figure's leases")
    p.add_argument("--expiry-pool", type=int, default=None,
                   help="max_open_connections for the expiry figure (default: the engine's default, 4)")
    p.add_argument("--drain-timeout", type=float, default=120, help="seconds after the last expiry to wait for revocations")
    p.add_argument("--settle", type=float, default=1.0, help="idle seconds before reading RSS")
    p.add_argument("--skip", action="append", default=[], choices=["db", "expiry"], help="leave out a part (repeatable)")
    p.add_argument("--workdir", type=Path, default=None, help="parent of the temp dir (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep the temp dirs (server, audit and PostgreSQL logs)")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    args = p.parse_args()
    if args.render:
        recorded = json.loads((args.out / "issue-4.json").read_text())
        table = build_table(recorded["runs"], recorded["meta"])
        (args.out / "issue-4.md").write_text(table)
        print(table)
        return 0
    if args.binary is None:
        raise BenchError("--binary is required")
    args.binary = args.binary.resolve()
    if not args.binary.is_file():
        raise BenchError(f"no binary at {args.binary}")
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed")

    workdir = Path(tempfile.mkdtemp(prefix="cairn-bench-", dir=args.workdir))
    a = SimpleNamespace(**{**vars(args), "connections": 32})
    meta = cb.machine_meta(a, workdir)
    meta.update(batch=args.batch, leases=args.leases, ttl=args.ttl, clients=args.clients,
                expiry_pool=args.expiry_pool)
    pv = subprocess.run([str(pg_bin() / "postgres"), "--version"], capture_output=True, text=True).stdout
    mv = re.search(r"\) (\d+(?:\.\d+)*)", pv)
    meta["pg_version"] = mv.group(1) if mv else "?"
    runs: list[dict] = []
    pgs: list[Postgres] = []
    try:
        for i in range(args.runs):
            rundir = workdir / f"run-{i + 1}"
            rundir.mkdir()
            run: dict = {"fdatasync": cb.fdatasync_probe(rundir)}
            pg = Postgres()
            pgs.append(pg)
            pg.start()
            try:
                if "db" not in args.skip:
                    print(f"run {i + 1}/{args.runs}: credentials and transit", file=sys.stderr, flush=True)
                    run["db"] = db_run(args.binary, rundir, pg, args)
                if "expiry" not in args.skip:
                    print(f"run {i + 1}/{args.runs}: {args.leases} leases, {args.ttl} s TTL", file=sys.stderr, flush=True)
                    run["expiry"] = expiry_run(args.binary, rundir, pg, args)
            finally:
                pg.stop()
            runs.append(run)
            print(f"run {i + 1}/{args.runs}: {json.dumps(run)}", file=sys.stderr, flush=True)
    finally:
        stop_all()
        if args.keep:
            print(f"kept {workdir} and {[str(p.dir) for p in pgs]}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            for pg in pgs:
                pg.remove()

    meta["loadavg_end"] = cb.loadavg()
    loads = []
    for r in runs:
        if "db" in r:
            loads += [v["loadavg_1m"] for v in r["db"].values() if isinstance(v, dict) and "loadavg_1m" in v]
            loads += [v["loadavg_1m"] for v in r["db"]["transit"].values()]
    meta["loadavg_runs_median"] = med(loads) if loads else cb.loadavg()
    out = {"meta": meta, "runs": runs}
    if args.skip:
        # A partial run: printed, never written over the recorded results.
        print(json.dumps(out, indent=2))
        return 0
    table = build_table(runs, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "issue-4.json").write_text(json.dumps(out, indent=2) + "\n")
    (args.out / "issue-4.md").write_text(table)
    print(table)
    return 0


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        sys.exit(main())
    except BenchError as e:
        stop_all()
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
