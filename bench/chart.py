"""Issue 8's chart figures (run through bench/chart): rendered manifests per
values file, and the time of `helm template` and of validating every rendered
object with kubernetes-validate. Medians of --runs runs. Measures only; the
exit code is non-zero only when a render or a validation fails."""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "cairn"
RESULTS = REPO / "bench" / "results" / "issue-8-chart.md"
CRD_GROUPS = ("cert-manager.io", "monitoring.coreos.com")


def render(values: Path | None) -> tuple[str, float]:
    args = ["helm", "template", "cairn", str(CHART), "--namespace", "cairn", "--include-crds"]
    if values:
        args += ["-f", str(values)]
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"helm template failed for {values or 'default values'}:\n{proc.stderr}")
    return proc.stdout, elapsed


def validate(docs: list[dict], version: str) -> tuple[int, int, float]:
    """(validated, skipped CRD-typed, seconds)."""
    start = time.perf_counter()
    validated = skipped = 0
    for doc in docs:
        if doc["apiVersion"].split("/")[0] in CRD_GROUPS:
            skipped += 1
            continue
        kubernetes_validate.validate(doc, version, strict=True)
        validated += 1
    return validated, skipped, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kubernetes-version", default="1.34.0")
    opts = parser.parse_args()

    cases = [None] + sorted((CHART / "ci").glob("*.yaml"))
    rows = []
    for case in cases:
        template_s, validate_s = [], []
        for _ in range(opts.runs):
            text, t = render(case)
            docs = [d for d in yaml.safe_load_all(text) if d]
            validated, skipped, v = validate(docs, opts.kubernetes_version)
            template_s.append(t)
            validate_s.append(v)
        kinds = collections.Counter(d["kind"] for d in docs)
        rows.append(
            {
                "case": "default values" if case is None else f"`ci/{case.name}`",
                "objects": len(docs),
                "validated": validated,
                "skipped": skipped,
                "kinds": ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
                "bytes": len(text.encode()),
                "template": statistics.median(template_s),
                "validate": statistics.median(validate_s),
                "total": statistics.median(a + b for a, b in zip(template_s, validate_s)),
            }
        )

    helm = subprocess.run(["helm", "version", "--short"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", str(CHART)], capture_output=True, text=True
    ).stdout.strip()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # The page is the table and one line saying when and what was measured.
    lines = [
        f"Issue 8 chart figures: `charts/cairn` at commit `{commit}`{' with uncommitted chart changes' if dirty else ''}, "
        f"measured {now} on {platform.machine()} ({os.cpu_count()} CPUs, 1-min load {load:.1f}); medians of {opts.runs} runs of "
        f"`helm template --include-crds` ({helm}) and strict kubernetes-validate {kubernetes_validate.__version__} "
        f"(Kubernetes {opts.kubernetes_version}; CRD-typed objects have no schema there and are not validated).",
        "",
        "| values | manifests (validated + CRD-typed) | objects per kind | rendered size | `helm template` | validation | total |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['objects']} ({r['validated']} + {r['skipped']}) | {r['kinds']} | {r['bytes'] / 1024:.1f} KiB "
            f"| {r['template'] * 1000:.0f} ms | {r['validate'] * 1000:.0f} ms | {r['total'] * 1000:.0f} ms |"
        )
    lines.append("")
    table = "\n".join(lines)
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table)
    print(f"wrote {RESULTS.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    if not shutil.which("helm"):
        sys.exit("no helm on PATH")
    main()
