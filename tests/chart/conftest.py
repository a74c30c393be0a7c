"""Helpers of the Helm chart tests.

The chart is rendered with the real `helm` binary (scripts/test puts
`.tools/bin/helm` on PATH; `HELM` overrides) and every rendered object is
parsed with PyYAML. Renders are cached per argument list: `helm template` is
deterministic except for the certificates it generates, and tests that look
at certificates compare objects of one render only.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "cairn"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
EXAMPLES = REPO_ROOT / "examples"
# The release every test renders unless it says otherwise.
RELEASE = "cairn"
NAMESPACE = "cairn-system"
# The Kubernetes versions rendered objects must be valid for: the chart's
# minimum (Chart.yaml kubeVersion) and a recent release.
K8S_VERSIONS = ("1.29.0", "1.34.0")


def helm_binary() -> str:
    """The helm binary: $HELM, then PATH, then this checkout's .tools/bin."""
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    found = shutil.which("helm")
    if found:
        return found
    local = REPO_ROOT / ".tools" / "bin" / "helm"
    if local.exists():
        return str(local)
    pytest.fail("no helm binary: run scripts/test --install-only, or set HELM")


def run_helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run helm with `args`; on failure (when `check`) fail the test with its stderr."""
    proc = subprocess.run(
        [helm_binary(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HELM_CACHE_HOME": "/tmp/cairn-helm-cache", "HELM_CONFIG_HOME": "/tmp/cairn-helm-config"},
    )
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def template_args(
    values: tuple[str, ...] = (),
    sets: tuple[str, ...] = (),
    namespace: str = NAMESPACE,
    release: str = RELEASE,
) -> list[str]:
    args = ["template", release, str(CHART), "--namespace", namespace, "--include-crds"]
    for v in values:
        args += ["-f", v]
    for s in sets:
        args += ["--set", s]
    return args


def parse_docs(text: str) -> list[dict]:
    """The non-empty YAML documents of a multi-document stream."""
    return [d for d in yaml.safe_load_all(text) if d]


@functools.lru_cache(maxsize=None)
def render(
    values: tuple[str, ...] = (),
    sets: tuple[str, ...] = (),
    namespace: str = NAMESPACE,
    release: str = RELEASE,
) -> tuple[dict, ...]:
    """Rendered objects of the chart (cached; do not mutate them)."""
    proc = run_helm(*template_args(values, sets, namespace, release))
    return tuple(parse_docs(proc.stdout))


def shell_command(text: str, program: str) -> list[str]:
    """The shell words of the one command line in `text` (NOTES, README) that
    runs `program` through `kubectl`, with its `\\` continuation lines (a
    pipeline's `|` is a word of its own)."""
    lines = text.splitlines()
    (start,) = [i for i, line in enumerate(lines) if "kubectl " in line and program in line]
    command = ""
    for line in lines[start:]:
        command += line.strip()
        if not command.endswith("\\"):
            break
        command = command[:-1] + " "
    return shlex.split(command)


def values_id(path: str | None) -> str:
    return "default" if path is None else Path(path).stem


# Every values case: the chart defaults and each file under charts/cairn/ci/.
VALUES_CASES = [None] + [str(p) for p in CI_VALUES]


def render_case(case: str | None) -> tuple[dict, ...]:
    return render(() if case is None else (case,))


def find(docs, kind: str, name: str | None = None) -> list[dict]:
    """Objects of `kind` (and `name`, when given)."""
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs, kind: str, name: str) -> dict:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_specs(docs) -> Iterator[tuple[dict, dict]]:
    """(object, pod spec) of every object that runs pods."""
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            yield d, d["spec"]["template"]["spec"]
        elif d["kind"] == "CronJob":
            yield d, d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            yield d, d["spec"]


def containers(spec: dict) -> list[dict]:
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env") or []}


CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "CustomResourceDefinition", "Namespace"}


class FakeApiServer:
    """Just enough of a Kubernetes API server for `helm template
    --dry-run=server`: discovery of the kinds (apiVersion, kind) it is given
    (helm maps every rendered object), and GET of the Secrets it holds (404 for
    any other), so the chart's `lookup` calls see them. Records the paths
    requested."""

    def __init__(self, secrets: dict[tuple[str, str], dict], kinds: set[tuple[str, str]]):
        self.secrets = secrets
        self.requests: list[str] = []
        # groupVersion -> APIResourceList
        self.resources: dict[str, dict] = {}
        for api_version, kind in sorted(kinds | {("v1", "Secret")}):
            lst = self.resources.setdefault(
                api_version, {"kind": "APIResourceList", "groupVersion": api_version, "resources": []}
            )
            lst["resources"].append(
                {
                    "name": kind.lower() + "s",
                    "singularName": kind.lower(),
                    "namespaced": kind not in CLUSTER_SCOPED,
                    "kind": kind,
                    "verbs": ["get", "list"],
                }
            )
        groups: dict[str, list[str]] = {}
        for gv in self.resources:
            if "/" in gv:
                group, version = gv.split("/")
                groups.setdefault(group, []).append(version)
        self.groups = {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                    "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                }
                for g, vs in sorted(groups.items())
            ],
        }
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                fake.requests.append(path)
                status, body = 200, None
                if path == "/version":
                    body = {"major": "1", "minor": "34", "gitVersion": "v1.34.0", "platform": "linux/amd64"}
                elif path == "/api":
                    body = {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
                elif path == "/apis":
                    body = fake.groups
                elif path == "/api/v1":
                    body = fake.resources["v1"]
                elif path.startswith("/apis/") and path[len("/apis/"):] in fake.resources:
                    body = fake.resources[path[len("/apis/"):]]
                else:
                    parts = path.strip("/").split("/")
                    # /api/v1/namespaces/<ns>/secrets/<name>
                    if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
                        body = fake.secrets.get((parts[3], parts[5]))
                    if body is None:
                        status = 404
                        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeApiServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, directory: Path) -> Path:
        host, port = self.server.server_address[:2]
        path = directory / "kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": f"http://{host}:{port}"}}],
                    "users": [{"name": "fake", "user": {"token": "not-a-real-token"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": "fake",
                }
            )
        )
        path.chmod(0o600)
        return path
