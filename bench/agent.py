#!/usr/bin/env python3
"""Issue 7's figures for cairn-agent: idle RSS with 10 files, and change
propagation from `kv put` to the file updated (p50 / p99 over 100 changes).

Run through `bench/agent`, which builds the release agent first. Standard
library only. The core (`cairn server`, in-memory storage) and a TokenReview
stand-in for its Kubernetes auth run on free loopback ports; everything runs
in a temporary directory and is stopped on exit, error or signal.

Benchmarks measure; they never fail on a missed target. The process exits
non-zero only when the measurement itself could not be made.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import http.server
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
JWT = "bench-service-account-token"
REVIEWER = "bench-reviewer-token"
FILES = 10
DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TokenReview(http.server.BaseHTTPRequestHandler):
    """Answers the core's TokenReview for JWT as team-a/web."""

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ok = (
            self.headers.get("Authorization") == f"Bearer {REVIEWER}"
            and body["spec"]["token"] == JWT
        )
        status = {"authenticated": False}
        if ok:
            status = {
                "authenticated": True,
                "user": {"username": "system:serviceaccount:team-a:web", "uid": "uid-web"},
                "audiences": body["spec"].get("audiences", []),
            }
        out = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                          "status": status}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


class Core:
    def __init__(self, binary: Path, workdir: Path):
        self.port = free_port()
        config = workdir / "core.hcl"
        config.write_text(
            f'listener "tcp" {{\n address = "127.0.0.1:{self.port}"\n tls_disable = true\n}}\n'
            'storage "inmem" {}\n'
        )
        self.log = open(workdir / "core.log", "wb")
        self.proc = subprocess.Popen([str(binary), "server", "--config", str(config)],
                                     stdout=self.log, stderr=self.log)
        self.token = ""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                self.call("GET", "sys/health")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("bench: the core did not start (see core.log)")
                time.sleep(0.05)
        status, body = self.call("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
        self.token = body["root_token"]
        self.call("PUT", "sys/unseal", {"key": body["keys"][0]})
        while self.call("GET", "sys/health")[0] != 200:
            if time.monotonic() > deadline:
                raise SystemExit("bench: the core did not unseal")
            time.sleep(0.05)

    def call(self, method: str, path: str, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"X-Vault-Token": self.token} if self.token else {}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        conn.request(method, f"/v1/{path}", body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        if resp.status >= 400 and path != "sys/health":
            raise SystemExit(f"bench: {method} {path} answered {resp.status}: {raw[:300]!r}")
        return resp.status, (json.loads(raw) if raw.strip() else {})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def rss_kib(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, type=Path, help="cairn-agent binary (release)")
    ap.add_argument("--core", required=True, type=Path, help="cairn binary")
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--idle", type=float, default=5.0, help="seconds idle before the RSS reading")
    ap.add_argument("--out", type=Path, default=RESULTS / "issue-7-agent.md")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cairn-bench-agent-"))
    reviewer = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenReview)
    threading.Thread(target=reviewer.serve_forever, daemon=True).start()
    core = Core(args.core, work)
    agent = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        core.call("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
        core.call("POST", "sys/auth/kubernetes", {"type": "kubernetes"})
        core.call("POST", "auth/kubernetes/config", {
            "kubernetes_host": f"http://127.0.0.1:{reviewer.server_address[1]}",
            "token_reviewer_jwt": REVIEWER})
        core.call("PUT", "sys/policies/acl/web",
                  {"policy": 'path "secret/data/team-a/*" { capabilities = ["read"] }'})
        core.call("POST", "auth/kubernetes/role/team-a.web", {
            "bound_service_account_names": ["web"], "bound_service_account_namespaces": ["team-a"],
            "token_policies": ["web"], "token_ttl": 3600, "token_max_ttl": 7200,
            "audience": "cairn"})
        formats = ["json", "env", "raw", "yaml"]
        files = []
        for i in range(FILES):
            core.call("POST", f"secret/data/team-a/s{i}",
                      {"data": {"username": f"user{i}", "password": "p" * 32}})
            spec = {"name": f"f{i}", "path": f"secret/data/team-a/s{i}",
                    "format": formats[i % len(formats)]}
            if i == FILES - 1:
                spec["template"] = "{{ secret.data.username }}:{{ secret.data.password }}\n"
            files.append(spec)
        (work / "token").write_text(JWT)
        out = work / "secrets"
        out.mkdir()
        config = {"version": 1, "cairn_addr": f"http://127.0.0.1:{core.port}",
                  "auth_mount": "kubernetes", "role": "team-a.web", "token_file": str(work / "token"),
                  "output_dir": str(out), "mode": "sidecar", "revoke_on_shutdown": True,
                  "files": files}
        http_port = free_port()
        agent_log = open(work / "agent.log", "wb")
        agent = subprocess.Popen(
            [str(args.agent), "--http-addr", f"127.0.0.1:{http_port}"],
            env={**os.environ, "CAIRN_AGENT_CONFIG": json.dumps(config)},
            stdout=agent_log, stderr=agent_log)
        started = time.monotonic()
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if agent.poll() is not None or time.monotonic() - started > DEADLINE_S:
                raise SystemExit("bench: the agent did not become ready (see agent.log)")
            time.sleep(0.01)
        first_render_ms = (time.monotonic() - started) * 1000
        time.sleep(args.idle)
        idle_rss, idle_hwm = rss_kib(agent.pid)

        target = out / "f0"
        lat = []
        for i in range(args.changes):
            value = f"changed-{i}-" + "x" * 16
            t0 = time.perf_counter()
            core.call("POST", "secret/data/team-a/s0",
                      {"data": {"username": "user0", "password": value}})
            while True:
                try:
                    if value in target.read_text():
                        break
                except OSError:
                    pass
                if time.perf_counter() - t0 > 10:
                    raise SystemExit(f"bench: change {i} did not reach the file in 10 s")
                time.sleep(0.0005)
            lat.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.02)
        after_rss, after_hwm = rss_kib(agent.pid)
    finally:
        if agent is not None and agent.poll() is None:
            agent.terminate()
            try:
                agent.wait(10)
            except subprocess.TimeoutExpired:
                agent.kill()
        core.stop()
        reviewer.shutdown()

    commit = subprocess.run(["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    rows = [
        ("Agent RSS idle, 10 files (VmRSS)", f"{idle_rss / 1024:.1f} MiB", "≤ 10 MB"),
        ("Agent peak RSS until then (VmHWM)", f"{idle_hwm / 1024:.1f} MiB", ""),
        (f"Agent RSS after {args.changes} changes", f"{after_rss / 1024:.1f} MiB", ""),
        ("Change propagation p50 (kv put → file)", f"{statistics.median(lat):.1f} ms", ""),
        ("Change propagation p99", f"{pct(lat, 99):.1f} ms", "≤ 1 s"),
        ("Change propagation max", f"{max(lat):.1f} ms", ""),
        ("First render after start (10 files)", f"{first_render_ms:.0f} ms", ""),
    ]
    table = ["| Figure | Value | Target |", "|---|---|---|"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = "\n".join([
        "# Issue 7: cairn-agent figures",
        "",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs (shared), load average "
        f"{os.getloadavg()[0]:.1f}. Agent: `{args.agent}`; core: `{args.core}` (in-memory storage).",
        "",
        *table,
        "",
        f"RSS is `VmRSS` of the agent process after {args.idle:.0f} s idle with {FILES} files "
        "rendered (one KV v2 secret each, json/env/raw/yaml formats, one template), one "
        "long poll per secret open on the change stream. Propagation: time from sending "
        f"`POST secret/data/team-a/s0` to the new value being readable in the file "
        f"(polled every 0.5 ms), over {args.changes} sequential changes.",
        "",
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
