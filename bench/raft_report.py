"""Issue 3's report: the Markdown tables of `bench/raft.py`'s runs (medians).

Kept apart from the runner so a recorded `issue-3-raft.json` can be
re-rendered: `python3 bench/raft_report.py bench/results/issue-3-raft.json`.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import core  # bench/core.py: formatting, wrk_seconds


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def build_table(runs: list[dict], failovers: list[dict], meta: dict) -> str:
    fmt_rps, fmt_us = core.fmt_rps, core.fmt_us

    def stat(side: str, key: str, field: str):
        return med([r[side][key][field] for r in runs if key in r[side]])

    rows = [
        "| figure | Cairn | p50 | p99 | CPU / req (3 nodes) | etcd | p50 | p99 | CPU / req (3 nodes) | Cairn / etcd | target | met? |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for conns in meta["clients"]:
        key = f"write_c{conns}"
        ratio = med([r["cairn"][key]["rps"] / r["etcd"][key]["rps"] for r in runs])
        c_rps, e_rps = stat("cairn", key, "rps"), stat("etcd", key, "rps")
        if conns == max(meta["clients"]):
            target, met = "≥ 1.0 × etcd and ≥ 10,000/s", yes(ratio >= 1.0 and c_rps >= 10000)
        else:
            target, met = "(reference)", "—"
        rows.append(
            f"| durable write 256 B, {conns} client{'s' if conns > 1 else ''} | {fmt_rps(c_rps)} "
            f"| {fmt_us(stat('cairn', key, 'p50_us'))} | {fmt_us(stat('cairn', key, 'p99_us'))} "
            f"| {stat('cairn', key, 'cluster_cpu_us_per_req'):.0f} µs "
            f"| {fmt_rps(e_rps)} | {fmt_us(stat('etcd', key, 'p50_us'))} | {fmt_us(stat('etcd', key, 'p99_us'))} "
            f"| {stat('etcd', key, 'cluster_cpu_us_per_req'):.0f} µs | {ratio:.2f} | {target} | {met} |"
        )
    fs50 = med([r["fdatasync"]["p50_us"] for r in runs])
    fs99 = med([r["fdatasync"]["p99_us"] for r in runs])
    one = f"write_c{min(meta['clients'])}"
    c1 = stat("cairn", one, "p50_us")
    margin = med([r["cairn"][one]["p50_us"] - r["fdatasync"]["p50_us"] for r in runs])
    rows.append(
        f"| single-client write p50 − disk `fdatasync` p50 (same run) | | {fmt_us(margin)} | | | | "
        f"{fmt_us(med([r['etcd'][one]['p50_us'] - r['fdatasync']['p50_us'] for r in runs]))} | | | "
        f"| ≤ 0.5 ms | {yes(margin <= 500)} |"
    )
    rows.append(f"| disk: 256 B append + `fdatasync` (500×) | | {fmt_us(fs50)} | {fmt_us(fs99)} | | | | | | | (reference) | — |")
    cp50 = med([r["commit_probe"]["p50_us"] for r in runs])
    cp99 = med([r["commit_probe"]["p99_us"] for r in runs])
    rows.append(
        f"| disk: 20 × 4 KiB random overwrite + `fdatasync` (200×) | | {fmt_us(cp50)} | {fmt_us(cp99)} | | | | | | | (reference) | — |"
    )

    reads = [
        "| read (KV v2, 256 B, %d clients) | throughput | p50 | p99 | CPU / req (3 nodes) | vs leader |" % meta["read_clients"],
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in (
        ("read_leader", "leader, linearizable (default: read-index round on the leader)"),
        ("read_leader_stale", "leader, `X-Cairn-Consistency: stale` (no read-index round)"),
        ("read_follower", "follower, linearizable (default: read-index through the leader)"),
        ("read_follower_stale", "follower, `X-Cairn-Consistency: stale` (local)"),
    ):
        ratio = med([r["cairn"][key]["rps"] / r["cairn"]["read_leader"]["rps"] for r in runs])
        reads.append(
            f"| {label} | {fmt_rps(stat('cairn', key, 'rps'))} | {fmt_us(stat('cairn', key, 'p50_us'))} "
            f"| {fmt_us(stat('cairn', key, 'p99_us'))} | {stat('cairn', key, 'cluster_cpu_us_per_req'):.0f} µs "
            f"| {ratio * 100:.0f} % |"
        )

    fail = []
    if failovers:
        w = sorted(f["write_ms"] for f in failovers)
        el = sorted(f["leader_ms"] for f in failovers if f["leader_ms"] is not None)
        rj = sorted(f["rejoin_ms"] for f in failovers)
        fail = [
            f"| leader failover ({len(failovers)} × SIGKILL) | median | max |",
            "|---|---:|---:|",
            f"| kill → first write acknowledged (through a survivor) | {med(w):.0f} ms | {w[-1]:.0f} ms |",
            f"| kill → a survivor reports itself leader (`sys/leader`) | {med(el):.0f} ms | {el[-1]:.0f} ms |"
            if el else "| kill → a survivor reports itself leader | — | — |",
            f"| restart → unsealed and caught up (reference) | {med(rj):.0f} ms | {rj[-1]:.0f} ms |",
        ]

    epw = med([r["cairn"][f"write_c{c}"]["log_entries_per_write"] for r in runs for c in meta["clients"]])
    text = [
        "# Issue 3 — three-node Raft core figures",
        "",
        f"Measured {meta['date']} on {meta['host']} ({meta['cpus']} CPUs, kernel {meta['kernel']}), "
        f"Cairn built {meta['binary_built']} from commit `{meta['commit']}`"
        f"{' (with uncommitted changes in core/)' if meta['dirty'] else ''}; {meta['etcd_version']}. "
        f"Medians of {meta['runs']} runs, each on a fresh 3-node Cairn cluster and a fresh 3-node etcd cluster "
        f"(127.0.0.1 / .2 / .3, peer TLS with client certificates, data on {meta['fs']}). "
        f"wrk `-t2 -c<clients> -d{core.wrk_seconds(meta['duration'])}s` (`-t1` for 1 client) after a "
        f"{meta['warmup']:g} s warm-up, against the leader's plaintext HTTP API; client and all six servers share "
        f"the same {meta['cpus']} cores. 1-min load average before the measured runs: median "
        f"{meta['loadavg_runs_median']:.1f} (anything well above {meta['cpus']} means other work shared the cores"
        f"{': it did here, so absolute figures are pessimistic and the Cairn / etcd ratio, measured in the same conditions run by run, is the steadier figure' if meta['loadavg_runs_median'] > 1.5 * meta['cpus'] else ''}).",
        "",
        *rows,
        "",
        *reads,
        "",
        *fail,
        "",
        "Writes: Cairn `POST /v1/secret/data/bench/c<clients>/t<thread>/k<n>` (KV v2, a new key per request, "
        "256-byte value); etcd `POST /v3/kv/put` (gRPC-gateway JSON, base64 key `bench/c<clients>/t<thread>/k<n>` "
        "and 256-byte value). Both acknowledge after a quorum has the entry on disk (fsync). "
        f"Cairn wrote {epw:.2f} Raft log entries per acknowledged write (median). "
        "\"CPU / req\" is the user + system CPU of the three server processes over the measured run divided by "
        "the requests answered (wrk's own CPU not included). The single-client row subtracts the `fdatasync` p50 "
        "of the same run's probe (on the filesystem of the data directories) from the 1-client write p50. "
        "Reads: `GET /v1/secret/data/bench/read` with the root token. Failover: SIGKILL the node `sys/leader` "
        "names; two threads write in a loop through the two survivors (a follower forwards to whichever leader "
        "it knows); the first acknowledged write ends the measurement; the killed node is restarted, unsealed and "
        "waits until it has applied the leader's commit index before the next round. Raw numbers: `issue-3-raft.json`.",
        "",
    ]
    return "\n".join(text)


if __name__ == "__main__":
    recorded = json.loads(Path(sys.argv[1]).read_text())
    table = build_table(recorded["runs"], recorded["failovers"], recorded["meta"])
    Path(sys.argv[1]).with_suffix(".md").write_text(table)
    print(table)
