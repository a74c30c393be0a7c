#!/usr/bin/env python3
"""Issue 3's figures for the three-node Raft core, beside a three-node etcd.

Run through `bench/raft`, which builds the release binary and installs wrk and
etcd-server first. Standard library plus `openssl` (the peer certificates).
Both clusters run on 127.0.0.1 / .2 / .3 with mutually authenticated peer TLS
from one CA made here, each node in its own temporary directory with its log in
a file there; every process is stopped on exit, error or signal. Each load
figure is measured `--runs` times on a fresh pair of clusters; the table shows
medians, the JSON keeps every run.

Benchmarks measure; they never fail on a missed target. The process exits
non-zero only when the measurement itself could not be made.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import core  # bench/core.py: disk probes, wrk output parsing
from core import BenchError
from raft_report import build_table, med

BENCH_DIR = Path(__file__).resolve().parent
WRK_DIR = BENCH_DIR / "wrk"
IPS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
SECRET_PATH = "bench/read"
SECRET_VALUE = "s" * 256
START_DEADLINE_S = 60.0


# ------------------------------------------------------------------ helpers


def free_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def call(addr: str, method: str, path: str, body=None, token=None, headers=None, timeout=30.0):
    """One HTTP call to `host:port`; returns (status, parsed JSON or None)."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        hdrs = dict(headers or {})
        data = None
        if token:
            hdrs["X-Vault-Token"] = token
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return resp.status, parsed
    finally:
        conn.close()


def must(addr: str, method: str, path: str, body=None, token=None, ok=(200, 204)):
    status, parsed = call(addr, method, path, body, token)
    if status not in ok:
        errors = parsed.get("errors") if isinstance(parsed, dict) else parsed
        raise BenchError(f"{method} {addr}{path} answered {status}: {errors}")
    return parsed


def wait_until(what: str, predicate, deadline_s: float = START_DEADLINE_S, every: float = 0.05):
    end = time.monotonic() + deadline_s
    while True:
        try:
            got = predicate()
        except (ConnectionError, OSError, http.client.HTTPException):
            got = None
        # Index 0 is an answer: only None and False mean "not yet".
        if got is not None and got is not False:
            return got
        if time.monotonic() > end:
            raise BenchError(f"timed out after {deadline_s:g}s waiting for {what}")
        time.sleep(every)


class Pki:
    """A CA and one peer certificate per node (IP SAN + localhost), by openssl."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.ca = directory / "ca.pem"
        self.ca_key = directory / "ca-key.pem"
        self._run(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", self.ca_key, "-out", self.ca, "-days", "2", "-subj", "/CN=bench cluster CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )

    def _run(self, *args):
        p = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)
        if p.returncode != 0:
            raise BenchError(f"openssl {args[0]} failed: {p.stderr}")

    def issue(self, name: str, ip: str) -> tuple[Path, Path]:
        cert, key, csr = self.dir / f"{name}.pem", self.dir / f"{name}-key.pem", self.dir / f"{name}.csr"
        ext = self.dir / f"{name}.ext"
        ext.write_text(
            f"subjectAltName=DNS:localhost,IP:{ip}\nextendedKeyUsage=serverAuth,clientAuth\n"
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        )
        self._run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
        self._run("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial",
                  "-out", cert, "-days", "2", "-extfile", ext)
        return cert, key


class Proc:
    """One server process (Cairn or etcd) with its log file; `stop()` is idempotent."""

    live: list["Proc"] = []

    def __init__(self, name: str, directory: Path, args: list[str]):
        self.name = name
        self.dir = directory
        self.args = args
        self.log_path = directory / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.dir)
        Proc.live.append(self)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
            raise BenchError(f"{self.name} exited; log tail:\n{tail}")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill9(self):
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        if self in Proc.live:
            Proc.live.remove(self)

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self in Proc.live:
            Proc.live.remove(self)


def stop_all():
    for p in list(Proc.live):
        try:
            p.stop()
        except Exception as e:  # keep stopping the others
            print(f"warning: failed to stop {p.name}: {e}", file=sys.stderr)


# ------------------------------------------------------------ Cairn cluster


class CairnCluster:
    """Three `cairn server` nodes: node1 is initialised (one share) and
    unsealed, node2 / node3 join it with `retry_join` and are unsealed."""

    def __init__(self, binary: Path, directory: Path, pki: Pki):
        self.dir = directory
        self.nodes: list[Proc] = []
        self.addrs: list[str] = []
        self.key = ""
        self.token = ""
        for i, ip in enumerate(IPS):
            name = f"node{i + 1}"
            cert, key = pki.issue(f"cairn-{name}", ip)
            port, cport = free_port(ip), free_port(ip)
            join = f'  retry_join {{\n    leader_api_addr = "http://{self.addrs[0]}"\n  }}\n' if i else ""
            config = directory / f"{name}.hcl"
            config.write_text(
                f'listener "tcp" {{\n  address = "{ip}:{port}"\n  tls_disable = true\n}}\n'
                f'storage "raft" {{\n  path = "{directory / name}"\n  node_id = "{name}"\n'
                f'  cluster_tls_cert_file = "{cert}"\n  cluster_tls_key_file = "{key}"\n'
                f'  cluster_tls_ca_file = "{pki.ca}"\n{join}}}\n'
                f'cluster_addr = "https://{ip}:{cport}"\napi_addr = "http://{ip}:{port}"\n'
            )
            self.nodes.append(Proc(f"cairn-{name}", directory, [str(binary), "server", "--config", str(config)]))
            self.addrs.append(f"{ip}:{port}")

    def wait_listening(self, i: int):
        def answers():
            self.nodes[i].check_alive()
            call(self.addrs[i], "GET", "/v1/sys/health", timeout=2.0)
            return True

        wait_until(f"{self.nodes[i].name} to listen", answers)

    def unseal(self, i: int):
        """Unseal node i once it sees the cluster's data (a joiner gets it by replication)."""

        def initialized():
            self.nodes[i].check_alive()
            _, st = call(self.addrs[i], "GET", "/v1/sys/seal-status", timeout=2.0)
            return isinstance(st, dict) and st.get("initialized") is True

        wait_until(f"{self.nodes[i].name} to see the cluster's keyring", initialized)
        st = must(self.addrs[i], "PUT", "/v1/sys/unseal", {"key": self.key})
        if st.get("sealed") is not False:
            raise BenchError(f"{self.nodes[i].name} still sealed after unseal")

    def start(self):
        for i in range(len(self.nodes)):
            self.nodes[i].start()
            self.wait_listening(i)
            if i == 0:
                init = must(self.addrs[0], "PUT", "/v1/sys/init", {"secret_shares": 1, "secret_threshold": 1})
                self.key, self.token = init["keys"][0], init["root_token"]
                self.unseal(0)
        for i in range(1, len(self.nodes)):
            self.unseal(i)
        self.wait_voters()

    def wait_voters(self):
        def three():
            leader = self.leader()
            if leader is None:
                return False
            status, body = call(self.addrs[leader], "GET", "/v1/sys/storage/raft/configuration",
                                token=self.token, timeout=5.0)
            servers = body["data"]["config"]["servers"] if status == 200 else []
            return sum(1 for s in servers if s.get("voter")) == len(self.nodes)

        wait_until("three voters", three)

    def leader(self) -> int | None:
        for i, node in enumerate(self.nodes):
            if not node.alive():
                continue
            try:
                status, body = call(self.addrs[i], "GET", "/v1/sys/leader", timeout=2.0)
            except (ConnectionError, OSError, http.client.HTTPException):
                continue
            if status == 200 and body.get("is_self") is True:
                return i
        return None

    def indexes(self, i: int) -> tuple[int, int]:
        body = must(self.addrs[i], "GET", "/v1/sys/leader")
        return int(body.get("raft_committed_index") or 0), int(body.get("raft_applied_index") or 0)

    def stop(self):
        for n in self.nodes:
            n.stop()


# ------------------------------------------------------------- etcd cluster


class EtcdCluster:
    """Three etcd members with peer TLS (client certificates required) and
    plaintext client URLs, as the Cairn nodes' API listeners are."""

    def __init__(self, directory: Path, pki: Pki):
        self.nodes: list[Proc] = []
        self.addrs: list[str] = []
        peers = []
        specs = []
        for i, ip in enumerate(IPS):
            name = f"etcd{i + 1}"
            cert, key = pki.issue(name, ip)
            port, pport = free_port(ip), free_port(ip)
            peers.append(f"{name}=https://{ip}:{pport}")
            specs.append((name, ip, port, pport, cert, key))
            self.addrs.append(f"{ip}:{port}")
        for name, ip, port, pport, cert, key in specs:
            args = [
                "etcd", "--name", name, "--data-dir", str(directory / name),
                "--listen-client-urls", f"http://{ip}:{port}", "--advertise-client-urls", f"http://{ip}:{port}",
                "--listen-peer-urls", f"https://{ip}:{pport}", "--initial-advertise-peer-urls", f"https://{ip}:{pport}",
                "--initial-cluster", ",".join(peers), "--initial-cluster-state", "new",
                "--initial-cluster-token", "bench",
                "--peer-cert-file", str(cert), "--peer-key-file", str(key),
                "--peer-trusted-ca-file", str(pki.ca), "--peer-client-cert-auth",
                "--logger", "zap", "--log-level", "warn",
            ]
            self.nodes.append(Proc(name, directory, args))

    def start(self):
        for n in self.nodes:
            n.start()

        def healthy():
            for n in self.nodes:
                n.check_alive()
            for a in self.addrs:
                status, body = call(a, "GET", "/health", timeout=2.0)
                if status != 200 or not isinstance(body, dict) or body.get("health") != "true":
                    return False
            return True

        wait_until("etcd health", healthy)
        must(self.addrs[0], "POST", "/v3/kv/put", {"key": "YmVuY2g=", "value": "b2s="})

    def leader(self) -> int:
        """Index of the member that leads (from /v3/maintenance/status)."""
        ids = []
        leader = None
        for a in self.addrs:
            st = must(a, "POST", "/v3/maintenance/status", {})
            ids.append(st["header"]["member_id"])
            leader = st["leader"]
        if leader not in ids:
            raise BenchError(f"etcd reports leader {leader}, not one of {ids}")
        return ids.index(leader)

    def stop(self):
        for n in self.nodes:
            n.stop()


# ---------------------------------------------------------------------- wrk


def wrk(addr: str, script: str, duration: float, conns: int, env: dict[str, str]) -> dict:
    threads = min(2, conns)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{core.wrk_seconds(duration)}s", "--timeout", "10s",
           "-s", str(WRK_DIR / script), f"http://{addr}"]
    proc = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=duration + 90)
    m = core.BENCH_LINE.search(proc.stdout)
    if proc.returncode != 0 or not m:
        raise BenchError(f"wrk {script} failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    out: dict = {}
    for kv in m.group(1).split():
        k, _, v = kv.partition("=")
        out[k] = float(v) if "." in v else int(v)
    errs = out["non2xx"] + out["connect_err"] + out["read_err"] + out["write_err"] + out["timeouts"]
    if errs:
        raise BenchError(f"wrk {script} -c{conns} against {addr}: {errs} failed requests: {m.group(0)}")
    return out


def measured(nodes: list[Proc], addr: str, script: str, conns: int, args, env: dict, warm_env: dict) -> dict:
    """Warm-up, then the measured run, with the CPU time of all nodes of the cluster."""
    warm = wrk(addr, script, args.warmup, conns, warm_env)["requests"] if args.warmup > 0 else 0
    load = core.loadavg()
    cpu0 = sum(n.cpu_seconds() for n in nodes)
    r = wrk(addr, script, args.duration, conns, env)
    cpu = sum(n.cpu_seconds() for n in nodes) - cpu0
    for n in nodes:
        n.check_alive()
    r["warmup_requests"] = warm
    r["loadavg_1m"] = load
    r["cluster_cpu_us_per_req"] = round(cpu * 1e6 / max(1, r["requests"]), 1)
    return r


# ---------------------------------------------------------------- scenarios


def cairn_run(binary: Path, d: Path, pki: Pki, args) -> dict:
    c = CairnCluster(binary, d, pki)
    try:
        c.start()
        leader = c.leader()
        if leader is None:
            raise BenchError("the Cairn cluster has no leader")
        la = c.addrs[leader]
        must(la, "POST", "/v1/sys/mounts/secret", {"type": "kv", "options": {"version": "2"}}, c.token)
        out: dict = {"leader": c.nodes[leader].name}
        for conns in args.clients:
            env = {"BENCH_TOKEN": c.token, "BENCH_PREFIX": f"bench/c{conns}"}
            committed0, _ = c.indexes(leader)
            print(f"  cairn writes, {conns} clients", file=sys.stderr, flush=True)
            r = measured(c.nodes, la, "write.lua", conns, args, env, {**env, "BENCH_PREFIX": f"warm/c{conns}"})
            committed1, _ = c.indexes(leader)
            # Raft log entries per acknowledged write (warm-up included on both sides).
            r["log_entries_per_write"] = round((committed1 - committed0) / max(1, r["requests"] + r["warmup_requests"]), 3)
            out[f"write_c{conns}"] = r
        # Reads: the same secret through the leader, a follower (read-index) and a follower (stale).
        must(la, "POST", f"/v1/secret/data/{SECRET_PATH}", {"data": {"value": SECRET_VALUE}}, c.token)
        follower = next(i for i in range(len(c.nodes)) if i != leader)
        fa = c.addrs[follower]
        for a in (la, fa):
            status, got = call(a, "GET", f"/v1/secret/data/{SECRET_PATH}", token=c.token)
            if status != 200 or got["data"]["data"]["value"] != SECRET_VALUE:
                raise BenchError(f"the seeded secret did not read back from {a} ({status})")
        env = {"BENCH_TOKEN": c.token, "BENCH_PATH": SECRET_PATH}
        for key, addr, consistency in (
            ("read_leader", la, ""),
            ("read_leader_stale", la, "stale"),
            ("read_follower", fa, ""),
            ("read_follower_stale", fa, "stale"),
        ):
            print(f"  cairn {key.replace('_', ' ')}", file=sys.stderr, flush=True)
            e = {**env, "BENCH_CONSISTENCY": consistency}
            out[key] = measured(c.nodes, addr, "raft_read.lua", args.read_clients, args, e, e)
        return out
    finally:
        c.stop()


def etcd_run(d: Path, pki: Pki, args) -> dict:
    e = EtcdCluster(d, pki)
    try:
        e.start()
        leader = e.leader()
        out: dict = {"leader": e.nodes[leader].name}
        for conns in args.clients:
            print(f"  etcd puts, {conns} clients", file=sys.stderr, flush=True)
            env = {"BENCH_PREFIX": f"bench/c{conns}"}
            out[f"write_c{conns}"] = measured(e.nodes, e.addrs[leader], "etcd_put.lua", conns, args, env,
                                              {"BENCH_PREFIX": f"warm/c{conns}"})
        return out
    finally:
        e.stop()


def failover_run(binary: Path, d: Path, pki: Pki, rounds: int) -> list[dict]:
    """`rounds` × (SIGKILL the leader; time until a surviving node reports a new
    leader and until a write is acknowledged; restart the killed node, unseal it
    and wait until it has applied everything the leader committed)."""
    c = CairnCluster(binary, d, pki)
    out = []
    try:
        c.start()
        leader = wait_until("a leader", c.leader)
        must(c.addrs[leader], "POST", "/v1/sys/mounts/secret", {"type": "kv", "options": {"version": "2"}}, c.token)
        for rnd in range(rounds):
            leader = wait_until("a leader", c.leader)
            must(c.addrs[leader], "POST", f"/v1/secret/data/failover/r{rnd}/before", {"data": {"v": "1"}}, c.token)
            survivors = [i for i in range(len(c.nodes)) if i != leader]
            done = threading.Event()
            times: dict[str, float] = {}
            lock = threading.Lock()

            def note(key: str, t: float):
                with lock:
                    times.setdefault(key, t)

            def writer(i: int):
                n = 0
                while not done.is_set():
                    n += 1
                    try:
                        status, _ = call(c.addrs[i], "POST", f"/v1/secret/data/failover/r{rnd}/n{i}-{n}",
                                         {"data": {"v": "1"}}, c.token, timeout=10.0)
                    except (ConnectionError, OSError, http.client.HTTPException):
                        status = 0
                    if status in (200, 204):
                        note("write", time.perf_counter())
                        note("write_via", c.nodes[i].name)
                        done.set()
                    else:
                        time.sleep(0.005)

            def elected():
                end = time.perf_counter() + 60
                while time.perf_counter() < end:
                    for i in survivors:
                        try:
                            status, body = call(c.addrs[i], "GET", "/v1/sys/leader", timeout=1.0)
                        except (ConnectionError, OSError, http.client.HTTPException):
                            continue
                        if status == 200 and body.get("is_self") is True:
                            note("leader", time.perf_counter())
                            return
                    time.sleep(0.005)

            t0 = time.perf_counter()
            c.nodes[leader].kill9()
            workers = [threading.Thread(target=writer, args=(i,)) for i in survivors]
            workers.append(threading.Thread(target=elected))
            for w in workers:
                w.start()
            done.wait(timeout=60)
            done.set()
            for w in workers:
                w.join(timeout=30)
            if "write" not in times:
                raise BenchError(f"failover round {rnd + 1}: no write accepted within 60 s of the kill")
            row = {
                "killed": c.nodes[leader].name,
                "write_ms": round((times["write"] - t0) * 1000, 1),
                "leader_ms": round((times["leader"] - t0) * 1000, 1) if "leader" in times else None,
                "write_via": times["write_via"],
            }
            # Restart, unseal, catch up before the next round.
            t1 = time.perf_counter()
            c.nodes[leader].start()
            c.wait_listening(leader)
            c.unseal(leader)
            new_leader = wait_until("a leader", c.leader)
            target, _ = c.indexes(new_leader)
            wait_until(f"{c.nodes[leader].name} to catch up",
                       lambda: c.indexes(leader)[1] >= target, deadline_s=120)
            row["rejoin_ms"] = round((time.perf_counter() - t1) * 1000, 1)
            print(f"  failover {rnd + 1}/{rounds}: {row}", file=sys.stderr, flush=True)
            out.append(row)
        return out
    finally:
        c.stop()


def machine_meta(args, workdir: Path) -> dict:
    meta = core.machine_meta(args, workdir)
    ver = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout.splitlines()
    meta["etcd_version"] = ver[0].replace("etcd Version:", "etcd").strip() if ver else "etcd ?"
    meta["clients"] = args.clients
    meta["read_clients"] = args.read_clients
    meta["failover_rounds"] = args.failovers
    return meta


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", type=Path, required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=10, help="seconds of each measured wrk run")
    p.add_argument("--warmup", type=float, default=1, help="seconds of wrk before each measured run (0: none)")
    p.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 32, 256],
                   help="comma-separated write client counts")
    p.add_argument("--read-clients", type=int, default=32)
    p.add_argument("--failovers", type=int, default=20, help="leader kills (0: skip)")
    p.add_argument("--workdir", type=Path, default=None, help="parent of the temp dir (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    args = p.parse_args()
    # core.machine_meta records these.
    args.threads, args.connections = 2, max(args.clients)
    args.binary = args.binary.resolve()
    if not args.binary.is_file():
        raise BenchError(f"no binary at {args.binary}")
    for tool in ("wrk", "etcd", "openssl"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed")

    workdir = Path(tempfile.mkdtemp(prefix="cairn-raft-bench-", dir=args.workdir))
    meta = machine_meta(args, workdir)
    runs: list[dict] = []
    failovers: list[dict] = []
    try:
        pki = Pki(workdir)
        for i in range(args.runs):
            rundir = workdir / f"run-{i + 1}"
            (rundir / "cairn").mkdir(parents=True)
            (rundir / "etcd").mkdir()
            run: dict = {"fdatasync": core.fdatasync_probe(rundir), "commit_probe": core.commit_probe(rundir)}
            print(f"run {i + 1}/{args.runs}: Cairn", file=sys.stderr, flush=True)
            run["cairn"] = cairn_run(args.binary, rundir / "cairn", pki, args)
            print(f"run {i + 1}/{args.runs}: etcd", file=sys.stderr, flush=True)
            run["etcd"] = etcd_run(rundir / "etcd", pki, args)
            runs.append(run)
            print(f"run {i + 1}/{args.runs}: {json.dumps(run)}", file=sys.stderr, flush=True)
        if args.failovers > 0:
            print(f"failover: {args.failovers} leader kills", file=sys.stderr, flush=True)
            fdir = workdir / "failover"
            fdir.mkdir()
            failovers = failover_run(args.binary, fdir, pki, args.failovers)
    finally:
        stop_all()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    meta["loadavg_end"] = core.loadavg()
    meta["loadavg_runs_median"] = med(
        [v["loadavg_1m"] for r in runs for side in ("cairn", "etcd") for v in r[side].values() if isinstance(v, dict)]
    )
    table = build_table(runs, failovers, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "issue-3-raft.md").write_text(table)
    (args.out / "issue-3-raft.json").write_text(
        json.dumps({"meta": meta, "runs": runs, "failovers": failovers}, indent=2) + "\n"
    )
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
