#!/usr/bin/env python3
"""Issue 2's figures for the single-node core: read, write, idle RSS, startup.

Run through `bench/run`, which builds the release binary first. Standard library
only. Every server runs on a free loopback port in its own temporary directory,
logs to a file there, and is stopped on exit, error or signal. Each figure is
measured `--runs` times; the table shows medians, the JSON keeps every run.

Benchmarks measure; they never fail on a missed target. The process exits
non-zero only when the measurement itself could not be made (a server that
does not start, an API call that fails, wrk reporting errors).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
WRK_DIR = BENCH_DIR / "wrk"
SECRET_PATH = "bench/read"
SECRET_VALUE = "s" * 256  # the 256-byte secret of the read figure
START_DEADLINE_S = 30.0


class BenchError(Exception):
    """The measurement could not be made (not a missed target)."""


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port: int, method: str, path: str, body=None, token: str | None = None, timeout=30.0):
    """One HTTP call to the server; returns (status, parsed JSON or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {}
        data = None
        if token:
            headers["X-Vault-Token"] = token
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return resp.status, parsed
    finally:
        conn.close()


def must(port: int, method: str, path: str, body=None, token=None, ok=(200, 204)):
    status, parsed = api(port, method, path, body, token)
    if status not in ok:
        errors = parsed.get("errors") if isinstance(parsed, dict) else parsed
        raise BenchError(f"{method} {path} answered {status}: {errors}")
    return parsed


class Server:
    """One `cairn server` process; stopped by `stop()` (idempotent)."""

    live: list["Server"] = []

    def __init__(self, binary: Path, workdir: Path, name: str, dev: bool = False):
        self.binary = binary
        self.dir = workdir / name
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.dev = dev
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "server.log"
        self.out_path = self.dir / "server.out"

    def start(self) -> float:
        """Spawn the process; returns the perf_counter() just before the spawn."""
        if self.dev:
            args = [str(self.binary), "server", "--dev", "--dev-listen-address", f"127.0.0.1:{self.port}"]
        else:
            data = self.dir / "data"
            config = self.dir / "server.hcl"
            config.write_text(
                f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n  tls_disable = true\n}}\n'
                f'storage "raft" {{\n  path = "{data}"\n  node_id = "n1"\n}}\n'
            )
            args = [str(self.binary), "server", "--config", str(config)]
        log = open(self.log_path, "ab")
        out = open(self.out_path, "ab")
        t0 = time.perf_counter()
        try:
            self.proc = subprocess.Popen(args, stdout=out, stderr=log, stdin=subprocess.DEVNULL, cwd=self.dir)
        finally:
            log.close()
            out.close()
        Server.live.append(self)
        return t0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self):
        if self.proc is None or self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise BenchError(f"server {self.dir.name} exited; log tail:\n{tail}")

    def wait_listening(self, deadline_s: float = START_DEADLINE_S):
        """Poll sys/health until the server answers anything (a fresh durable node says 501)."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            self.check_alive()
            try:
                status, _ = api(self.port, "GET", "/v1/sys/health", timeout=2.0)
                return status
            except (ConnectionError, OSError, http.client.HTTPException):
                time.sleep(0.01)
        raise BenchError(f"server {self.dir.name} did not answer within {deadline_s}s")

    def status(self) -> dict[str, int]:
        """VmRSS / VmHWM in kB from /proc."""
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0])
        return out

    def cpu_seconds(self) -> float:
        """utime + stime of the whole process (all threads)."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self in Server.live:
            Server.live.remove(self)


def stop_all():
    for s in list(Server.live):
        try:
            s.stop()
        except Exception as e:  # keep stopping the others
            print(f"warning: failed to stop server {s.dir}: {e}", file=sys.stderr)


# --------------------------------------------------------------- node setup


def init_unseal(server: Server) -> str:
    """Initialise with one share, unseal; returns the root token."""
    server.wait_listening()
    init = must(server.port, "PUT", "/v1/sys/init", {"secret_shares": 1, "secret_threshold": 1})
    unseal = must(server.port, "PUT", "/v1/sys/unseal", {"key": init["keys"][0]})
    if unseal.get("sealed") is not False:
        raise BenchError("node still sealed after unseal")
    return init["root_token"]


def mount_kv(server: Server, token: str):
    must(server.port, "POST", "/v1/sys/mounts/secret", {"type": "kv", "options": {"version": "2"}}, token)


def enable_audit(server: Server, token: str, fsync: str) -> Path:
    path = server.dir / f"audit-{fsync}.log"
    must(
        server.port,
        "PUT",
        "/v1/sys/audit/file",
        {"type": "file", "options": {"file_path": str(path), "fsync": fsync}},
        token,
    )
    return path


def disable_audit(server: Server, token: str):
    must(server.port, "DELETE", "/v1/sys/audit/file", token=token)


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


# ---------------------------------------------------------------------- wrk

BENCH_LINE = re.compile(r"^BENCH (.*)$", re.M)


def wrk_seconds(duration: float) -> int:
    return max(1, int(round(duration)))


def wrk(port: int, script: str, duration: float, threads: int, conns: int, env: dict[str, str]) -> dict:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{wrk_seconds(duration)}s",
        "--timeout",
        "5s",
        "-s",
        str(WRK_DIR / script),
        f"http://127.0.0.1:{port}",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=duration + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = BENCH_LINE.search(proc.stdout)
    if proc.returncode != 0 or not m:
        raise BenchError(f"wrk {script} failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    out: dict = {}
    for kv in m.group(1).split():
        k, _, v = kv.partition("=")
        out[k] = float(v) if "." in v else int(v)
    # wrk's own CPU time (children's rusage grows by the one child just reaped).
    client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out["client_cpu_us_per_req"] = round(client_cpu * 1e6 / max(1, out["requests"]), 1)
    errs = out["non2xx"] + out["connect_err"] + out["read_err"] + out["write_err"] + out["timeouts"]
    if errs:
        raise BenchError(f"wrk {script}: {errs} failed requests: {m.group(0)}")
    return out


def measured(server: Server, port_script: str, args, env: dict[str, str], warmup_env=None) -> dict:
    """A short warm-up, then the measured wrk run, with the server's CPU time."""
    warm = 0
    if args.warmup > 0:
        warm = wrk(server.port, port_script, args.warmup, args.threads, args.connections, warmup_env or env)["requests"]
    load = loadavg()
    cpu0 = server.cpu_seconds()
    result = wrk(server.port, port_script, args.duration, args.threads, args.connections, env)
    cpu = server.cpu_seconds() - cpu0
    result["warmup_requests"] = warm
    # The 1-minute load average just before the run: other work on the machine
    # (builds, tests) shows here and explains outliers.
    result["loadavg_1m"] = load
    result["server_cpu_s"] = round(cpu, 3)
    result["server_cpu_us_per_req"] = round(cpu * 1e6 / max(1, result["requests"]), 1)
    server.check_alive()
    return result


# ---------------------------------------------------------------- scenarios


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def percentiles(samples: list[float]) -> dict:
    samples = sorted(samples)
    return {
        "p50_us": round(samples[len(samples) // 2] * 1e6, 1),
        "p99_us": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e6, 1),
    }


def fdatasync_probe(directory: Path, iterations: int = 500) -> dict:
    """p50 / p99 of a 256-byte append + fdatasync on the data's filesystem."""
    path = directory / "fdatasync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    samples = []
    try:
        buf = b"x" * 256
        for _ in range(iterations):
            t = time.perf_counter()
            os.write(fd, buf)
            os.fdatasync(fd)
            samples.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    return percentiles(samples)


def commit_probe(directory: Path, iterations: int = 200, pages: int = 20) -> dict:
    """p50 / p99 of `pages` random 4 KiB overwrites in a 32 MiB file + fdatasync:
    roughly the shape of one redb commit of a small group of KV writes (measured
    at about 20 page writes per commit), which flushes more than one small append."""
    path = directory / "commit.probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    samples = []
    try:
        size_pages = 8192
        os.ftruncate(fd, size_pages * 4096)
        for i in range(0, size_pages, 256):
            os.pwrite(fd, b"\0" * (256 * 4096), i * 4096)
        os.fsync(fd)
        page = os.urandom(4096)
        rng = random.Random(1)
        for _ in range(iterations):
            t = time.perf_counter()
            for _ in range(pages):
                os.pwrite(fd, page, rng.randrange(size_pages) * 4096)
            os.fdatasync(fd)
            samples.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    return percentiles(samples)


def read_run(binary: Path, workdir: Path, args) -> dict:
    """One durable node: idle RSS, then no-op, then reads with audit off / batch / always."""
    server = Server(binary, workdir, "read")
    try:
        server.start()
        token = init_unseal(server)
        time.sleep(args.settle)
        rss_unsealed = server.status()["VmRSS"]
        mount_kv(server, token)
        must(server.port, "POST", f"/v1/secret/data/{SECRET_PATH}", {"data": {"value": SECRET_VALUE}}, token)
        status, got = api(server.port, "GET", f"/v1/secret/data/{SECRET_PATH}", token=token)
        if status != 200 or got["data"]["data"]["value"] != SECRET_VALUE:
            raise BenchError(f"the seeded secret did not read back ({status})")
        time.sleep(args.settle)
        rss_ready = server.status()["VmRSS"]
        env = {"BENCH_TOKEN": token, "BENCH_PATH": SECRET_PATH}

        out: dict = {"rss_idle_unsealed_kb": rss_unsealed, "rss_idle_ready_kb": rss_ready}
        out["noop"] = measured(server, "noop.lua", args, env)
        out["read_audit_off"] = measured(server, "read.lua", args, env)
        for mode in ("batch", "always"):
            log = enable_audit(server, token, mode)
            r = measured(server, "read.lua", args, env)
            disable_audit(server, token)
            r["audit_lines"] = count_lines(log)
            out[f"read_audit_{mode}"] = r
        st = server.status()
        out["rss_after_load_kb"] = st["VmRSS"]
        out["rss_peak_kb"] = st["VmHWM"]
        return out
    finally:
        server.stop()


def write_run(binary: Path, workdir: Path, args, audit: str | None) -> dict:
    """One fresh durable node per audit mode, so each starts from an empty database."""
    server = Server(binary, workdir, f"write-{audit or 'off'}")
    try:
        server.start()
        token = init_unseal(server)
        mount_kv(server, token)
        log = enable_audit(server, token, audit) if audit else None
        env = {"BENCH_TOKEN": token, "BENCH_PREFIX": "bench/write"}
        r = measured(server, "write.lua", args, env, warmup_env={**env, "BENCH_PREFIX": "bench/warmup"})
        if log is not None:
            r["audit_lines"] = count_lines(log)
        # Everything the durable node keeps on disk: the Raft log segments
        # and the state machine.
        data = server.dir / "data"
        r["db_bytes"] = sum(f.stat().st_size for f in data.rglob("*") if f.is_file()) if data.exists() else None
        r["rss_peak_kb"] = server.status()["VmHWM"]
        return r
    finally:
        server.stop()


def startup_run(binary: Path, workdir: Path, index: int) -> dict:
    """Spawn `--dev` and poll sys/health every 1 ms until the first 200."""
    server = Server(binary, workdir, f"dev-{index}", dev=True)
    try:
        t0 = server.start()
        end = t0 + START_DEADLINE_S
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2.0)
                try:
                    conn.request("GET", "/v1/sys/health")
                    status = conn.getresponse().status
                finally:
                    conn.close()
                if status == 200:
                    ms = (time.perf_counter() - t0) * 1000
                    break
            except (ConnectionError, OSError, http.client.HTTPException):
                pass
            if time.perf_counter() > end:
                raise BenchError("dev server gave no 200 from sys/health before the deadline")
            server.check_alive()
            time.sleep(0.001)
        banner = server.out_path.read_text(errors="replace")
        m = re.search(r"started in (\d+) ms", banner)
        return {"ms": round(ms, 2), "server_reported_ms": int(m.group(1)) if m else None}
    finally:
        server.stop()


# ------------------------------------------------------------------ report


def phases(run: dict) -> list[dict]:
    """The wrk measurements of one run."""
    out = [v for k, v in run.items() if k.startswith("write_")]
    out += [v for k, v in run["read"].items() if isinstance(v, dict) and "rps" in v]
    return out


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_rps(v):
    return "—" if v is None else f"{v:,.0f}/s"


def fmt_us(v):
    if v is None:
        return "—"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"


def fmt_mb(kib):
    """/proc reports KiB; the target is in MB (10^6 bytes)."""
    return "—" if kib is None else f"{kib * 1024 / 1e6:.1f} MB"


def yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def cpu_per_req(m: dict) -> float:
    return m["server_cpu_us_per_req"] + m["client_cpu_us_per_req"]


def build_table(runs: list[dict], starts: list[dict], meta: dict) -> str:
    reads = [r["read"] for r in runs]

    def load(key, src):
        rps = med([x[key]["rps"] for x in src])
        p50 = med([x[key]["p50_us"] for x in src])
        p99 = med([x[key]["p99_us"] for x in src])
        cpu = med([x[key]["server_cpu_us_per_req"] for x in src])
        ccpu = med([x[key]["client_cpu_us_per_req"] for x in src])
        return rps, p50, p99, f"{cpu:.0f} + {ccpu:.0f} µs"

    rows = []
    head = "| scenario | throughput | p50 | p99 | vs no-op | CPU / req (server + wrk) | RSS | target | met? |"
    rows.append(head)
    rows.append("|---|---:|---:|---:|---:|---:|---:|---|---|")

    n_rps, n_p50, n_p99, n_cpu = load("noop", reads)
    rows.append(
        f"| no-op route `sys/cairn/noop` (HTTP ceiling) | {fmt_rps(n_rps)} | {fmt_us(n_p50)} | {fmt_us(n_p99)} "
        f"| 100 % | {n_cpu} | | — | — |"
    )
    for key, label, target in (
        ("read_audit_off", "KV v2 read 256 B, audit off", None),
        ("read_audit_batch", "KV v2 read 256 B, audit on (`fsync=batch`, default)", True),
        ("read_audit_always", "KV v2 read 256 B, audit on (`fsync=always`)", True),
    ):
        rps, p50, p99, cpu = load(key, reads)
        ratio = med([x[key]["rps"] / x["noop"]["rps"] for x in reads])
        cpu_ratio = med([cpu_per_req(x["noop"]) / cpu_per_req(x[key]) for x in reads])
        if target:
            met = yes(ratio >= 0.5 and p99 <= 2000)
            tgt = "≥ 50 % of no-op, p99 ≤ 2 ms"
        else:
            met, tgt = "—", "(reference)"
        rows.append(
            f"| {label} | {fmt_rps(rps)} | {fmt_us(p50)} | {fmt_us(p99)} | {ratio * 100:.0f} % (CPU: {cpu_ratio * 100:.0f} %) | {cpu} | | {tgt} | {met} |"
        )
    for key, label in (
        ("write_audit_off", "KV v2 write 256 B, durable, audit off"),
        ("write_audit_batch", "KV v2 write 256 B, durable, audit on (`fsync=batch`)"),
        ("write_audit_always", "KV v2 write 256 B, durable, audit on (`fsync=always`)"),
    ):
        src = [r for r in runs if key in r]
        rps, p50, p99, cpu = load(key, src)
        rows.append(
            f"| {label} | {fmt_rps(rps)} | {fmt_us(p50)} | {fmt_us(p99)} | | {cpu} | | ≥ 10,000 writes/s | {yes(rps >= 10000)} |"
        )
    rss = med([r["rss_idle_unsealed_kb"] for r in reads])
    rows.append(f"| idle RSS after init + unseal | | | | | | {fmt_mb(rss)} | ≤ 30 MB | {yes(rss * 1024 <= 30e6)} |")
    rows.append(
        f"| idle RSS after mount + 1 secret | | | | | | {fmt_mb(med([r['rss_idle_ready_kb'] for r in reads]))} | (reference) | — |"
    )
    rows.append(
        f"| RSS after the read loads (peak) | | | | | | {fmt_mb(med([r['rss_after_load_kb'] for r in reads]))} "
        f"({fmt_mb(med([r['rss_peak_kb'] for r in reads]))}) | (reference) | — |"
    )
    start_ms = med([s["ms"] for s in starts])
    srv_ms = med([s["server_reported_ms"] for s in starts])
    rows.append(
        f"| start to first 200 from `sys/health`, `--dev` (median of {len(starts)}) | | {start_ms:.0f} ms | "
        f"{max(s['ms'] for s in starts):.0f} ms (max) | | | | ≤ 200 ms | {yes(start_ms <= 200)} |"
    )
    fs50 = med([r["fdatasync"]["p50_us"] for r in runs])
    fs99 = med([r["fdatasync"]["p99_us"] for r in runs])
    rows.append(f"| disk: 256 B append + `fdatasync` (500×) | | {fmt_us(fs50)} | {fmt_us(fs99)} | | | | (reference) | — |")
    cp50 = med([r["commit_probe"]["p50_us"] for r in runs])
    cp99 = med([r["commit_probe"]["p99_us"] for r in runs])
    rows.append(
        f"| disk: 20 × 4 KiB random overwrite + `fdatasync` (200×, a redb commit's shape) | | {fmt_us(cp50)} | {fmt_us(cp99)} | | | | (reference) | — |"
    )

    notes = [
        f"# Issue 2 — single-node core figures",
        "",
        f"Measured {meta['date']} on {meta['host']} ({meta['cpus']} CPUs, kernel {meta['kernel']}), "
        f"binary built {meta['binary_built']} from the tree at commit `{meta['commit']}`"
        f"{' (with uncommitted changes in core/)' if meta['dirty'] else ''}.",
        f"Medians of {meta['runs']} runs; wrk `-t{meta['threads']} -c{meta['connections']} -d{wrk_seconds(meta['duration'])}s` "
        f"after a {meta['warmup']:g} s warm-up, on loopback; client and server share the same {meta['cpus']} cores. "
        "Durable node = `storage \"raft\"` (append-only segment-file Raft log with group commit, one fdatasync per group; in-memory state machine with snapshot files) in a temp dir on the same "
        f"filesystem as the fdatasync probe ({meta['fs']}). Startup: median of {len(starts)} `--dev` starts, "
        "timed from spawn to the first 200, polling every 1 ms "
        f"(the server's own banner reports {srv_ms:.0f} ms from the start of `cairn server` to listening; the rest is "
        "process start-up and the poll). "
        f"Machine load (1-min load average) before the measured wrk runs: median {meta['loadavg_runs_median']:.1f} "
        f"on {meta['cpus']} CPUs — anything well above 2 means other work shared the cores.",
        "",
        *rows,
        "",
        "\"vs no-op\" is each run's read throughput over the no-op throughput of the same server in the same run. "
        "\"CPU / req\" is user + system CPU time over the measured run divided by its requests, of the server process "
        "and of wrk. It depends little on how much of the machine other work took; \"(CPU: N %)\" is (server + wrk) CPU "
        "per no-op over (server + wrk) CPU per read, the ratio a quiet machine would show with both sides CPU-bound. "
        "Raw per-run numbers: `issue-2-core.json`.",
        "",
    ]
    return "\n".join(notes)


def machine_meta(args, workdir: Path) -> dict:
    repo = BENCH_DIR.parent

    def git(*a):
        p = subprocess.run(["git", "-C", str(repo), *a], capture_output=True, text=True)
        return p.stdout.strip()

    fs = subprocess.run(["df", "-T", str(workdir)], capture_output=True, text=True).stdout.splitlines()
    fs_type = fs[-1].split()[1] if len(fs) > 1 else "?"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.machine(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", "core", "Cargo.toml", "Cargo.lock")),
        "fs": fs_type,
        "runs": args.runs,
        "duration": args.duration,
        "warmup": args.warmup,
        "threads": args.threads,
        "connections": args.connections,
        "binary": str(args.binary),
        "binary_built": datetime.datetime.fromtimestamp(args.binary.stat().st_mtime, datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "loadavg_start": loadavg(),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", type=Path, required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--duration", type=float, default=10, help="seconds of each measured wrk run")
    p.add_argument("--warmup", type=float, default=1, help="seconds of wrk before each measured run (0: none)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--starts", type=int, default=10, help="dev-server starts for the startup figure")
    p.add_argument("--settle", type=float, default=1.0, help="idle seconds before reading RSS")
    p.add_argument("--workdir", type=Path, default=None, help="parent of the temp dir (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (server logs, audit files)")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    args = p.parse_args()
    args.binary = args.binary.resolve()
    if not args.binary.is_file():
        raise BenchError(f"no binary at {args.binary}")
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed")

    workdir = Path(tempfile.mkdtemp(prefix="cairn-bench-", dir=args.workdir))
    meta = machine_meta(args, workdir)
    runs: list[dict] = []
    starts: list[dict] = []
    try:
        for i in range(args.runs):
            rundir = workdir / f"run-{i + 1}"
            rundir.mkdir()
            run: dict = {"fdatasync": fdatasync_probe(rundir), "commit_probe": commit_probe(rundir)}
            print(f"run {i + 1}/{args.runs}: reads", file=sys.stderr, flush=True)
            run["read"] = read_run(args.binary, rundir, args)
            for mode in (None, "batch", "always"):
                print(f"run {i + 1}/{args.runs}: writes, audit {mode or 'off'}", file=sys.stderr, flush=True)
                run[f"write_audit_{mode or 'off'}"] = write_run(args.binary, rundir, args, mode)
            runs.append(run)
            print(f"run {i + 1}/{args.runs}: {json.dumps(run)}", file=sys.stderr, flush=True)
        print(f"startup: {args.starts} dev starts", file=sys.stderr, flush=True)
        startdir = workdir / "starts"
        startdir.mkdir()
        for i in range(args.starts):
            starts.append(startup_run(args.binary, startdir, i))
    finally:
        stop_all()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    meta["loadavg_end"] = loadavg()
    meta["loadavg_runs_median"] = med([phase["loadavg_1m"] for r in runs for phase in phases(r)])
    table = build_table(runs, starts, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "issue-2-core.md").write_text(table)
    (args.out / "issue-2-core.json").write_text(json.dumps({"meta": meta, "runs": runs, "starts": starts}, indent=2) + "\n")
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
