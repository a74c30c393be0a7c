"""The Helm chart: lint, render with every values file, validate every object
against the Kubernetes schemas, and check what the chart promises (restricted
pod security, least-privilege RBAC, the webhook's namespace exclusions, the
program contracts, the Raft configuration of each node, the values schema)."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from conftest import (
    CHART,
    CI_VALUES,
    K8S_VERSIONS,
    NAMESPACE,
    RELEASE,
    VALUES_CASES,
    containers,
    env_of,
    find,
    one,
    pod_specs,
    render,
    render_case,
    run_helm,
    template_args,
    values_id,
)

FULL = f"{RELEASE}"  # the release name contains "cairn": objects are named after it
CORE_ADDR = f"https://{FULL}.{NAMESPACE}.svc:8200"
# Kinds defined by CRDs that are not part of Kubernetes, so kubernetes-validate
# has no schema for them. They are checked for shape instead.
CRD_GROUPS = {
    "cert-manager.io": "cert-manager CRD (Issuer, Certificate): no schema in kubernetes-validate",
    "monitoring.coreos.com": "Prometheus Operator CRD (ServiceMonitor): no schema in kubernetes-validate",
}
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def group_of(doc: dict) -> str:
    api = doc["apiVersion"]
    return api.split("/")[0] if "/" in api else ""


# ------------------------------------------------------------- lint/render ---


def test_ci_values_cover_the_issue_cases():
    names = {p.name for p in CI_VALUES}
    assert names >= {
        "single-node-values.yaml",
        "csi-off-values.yaml",
        "injector-off-values.yaml",
        "cert-manager-values.yaml",
        "observability-values.yaml",
    }


@pytest.mark.parametrize("case", VALUES_CASES, ids=values_id)
def test_helm_lint_strict(case):
    args = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE]
    if case:
        args += ["-f", case]
    proc = run_helm(*args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("case", VALUES_CASES, ids=values_id)
def test_every_rendered_object_validates(case, version):
    docs = render_case(case)
    validated, skipped = 0, []
    errors = []
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        name = f"{doc['kind']}/{doc['metadata'].get('name')}"
        if group_of(doc) in CRD_GROUPS:
            # Shape only: a name, a namespace (all of these are namespaced), a spec.
            assert doc["metadata"].get("name") and doc["metadata"].get("namespace") == NAMESPACE, name
            assert isinstance(doc.get("spec"), dict) and doc["spec"], name
            skipped.append((name, CRD_GROUPS[group_of(doc)]))
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            validated += 1
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            errors.append(f"{name}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"{name}: {e.message}")
    assert not errors, "\n".join(errors)
    assert validated >= 10, f"only {validated} objects validated"
    # Only the optional integrations produce CRD-typed objects.
    if case is None:
        assert skipped == []


def test_default_render_has_every_component():
    docs = render()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for expected in [
        ("StatefulSet", FULL),
        ("Service", FULL),
        ("Service", f"{FULL}-internal"),
        ("ConfigMap", f"{FULL}-config"),
        ("PodDisruptionBudget", FULL),
        ("Secret", f"{FULL}-tls"),
        ("Deployment", f"{FULL}-operator"),
        ("DaemonSet", f"{FULL}-csi-provider"),
        ("Deployment", f"{FULL}-injector"),
        ("Service", f"{FULL}-injector"),
        ("Secret", f"{FULL}-injector-tls"),
        ("MutatingWebhookConfiguration", f"{FULL}-injector"),
    ]:
        assert expected in kinds, expected
    sts = one(docs, "StatefulSet", FULL)
    assert sts["spec"]["replicas"] == 3
    affinity = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert affinity["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert one(docs, "Deployment", f"{FULL}-operator")["spec"]["replicas"] == 2
    assert not find(docs, "NetworkPolicy") and not find(docs, "ServiceMonitor")


def test_values_files_change_what_is_rendered():
    ci = {p.stem: str(p) for p in CI_VALUES}
    single = render((ci["single-node-values"],))
    assert one(single, "StatefulSet", FULL)["spec"]["replicas"] == 1
    assert not find(single, "PodDisruptionBudget"), "no PDB can be honoured with one replica"

    no_csi = render((ci["csi-off-values"],))
    assert not find(no_csi, "DaemonSet")
    assert not any(v.get("hostPath") for _, s in pod_specs(no_csi) for v in s.get("volumes") or [])

    no_injector = render((ci["injector-off-values"],))
    assert not find(no_injector, "MutatingWebhookConfiguration")
    assert not find(no_injector, "Secret", f"{FULL}-injector-tls")
    assert not [d for d in no_injector if d["metadata"]["name"].startswith(f"{FULL}-injector")]

    cm = render((ci["cert-manager-values"],))
    assert not find(cm, "Secret"), "cert-manager issues the TLS Secrets"
    certs = {d["metadata"]["name"]: d for d in find(cm, "Certificate")}
    assert set(certs) == {f"{FULL}-ca", f"{FULL}-tls", f"{FULL}-injector-tls"}
    assert certs[f"{FULL}-ca"]["spec"]["isCA"] is True
    assert {"server auth", "client auth"} <= set(certs[f"{FULL}-tls"]["spec"]["usages"])
    assert f"*.{FULL}-internal.{NAMESPACE}.svc" in certs[f"{FULL}-tls"]["spec"]["dnsNames"]
    hook = one(cm, "MutatingWebhookConfiguration", f"{FULL}-injector")
    assert hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/{FULL}-injector-tls"
    assert "caBundle" not in hook["webhooks"][0]["clientConfig"]
    assert hook["webhooks"][0]["failurePolicy"] == "Fail" and hook["webhooks"][0]["timeoutSeconds"] == 5

    obs = render((ci["observability-values"],))
    policies = {d["metadata"]["name"] for d in find(obs, "NetworkPolicy")}
    assert policies == {FULL, f"{FULL}-operator", f"{FULL}-csi-provider", f"{FULL}-injector"}
    monitors = {d["metadata"]["name"]: d for d in find(obs, "ServiceMonitor")}
    assert set(monitors) == {FULL, f"{FULL}-operator", f"{FULL}-csi-provider", f"{FULL}-injector"}
    core_endpoint = monitors[FULL]["spec"]["endpoints"][0]
    assert core_endpoint["path"] == "/v1/sys/metrics" and core_endpoint["params"] == {"format": ["prometheus"]}
    assert core_endpoint["authorization"]["credentials"]["name"] == "cairn-metrics-token"


def test_service_monitors_select_a_service_with_their_port():
    docs = render((str(CHART / "ci" / "observability-values.yaml"),))
    services = find(docs, "Service")
    for monitor in find(docs, "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        matching = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        assert len(matching) == 1, (monitor["metadata"]["name"], [s["metadata"]["name"] for s in matching])
        ports = {p["name"] for p in matching[0]["spec"]["ports"]}
        assert monitor["spec"]["endpoints"][0]["port"] in ports


def test_core_network_policy_keeps_the_cluster_port_to_core_pods():
    docs = render((str(CHART / "ci" / "observability-values.yaml"),))
    policy = one(docs, "NetworkPolicy", FULL)
    cluster_rule = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == 8201]
    assert len(cluster_rule) == 1
    assert cluster_rule[0]["from"] == [{"podSelector": policy["spec"]["podSelector"]}]
    operator = one(docs, "NetworkPolicy", f"{FULL}-operator")
    assert operator["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }


def _peers_admitting(policy: dict, port: int):
    """The `from` peers of the rule for `port` (None: any source)."""
    (rule,) = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == port]
    return rule.get("from")


def _pod_labels(docs) -> dict[str, dict]:
    return {o["metadata"]["labels"]["app.kubernetes.io/component"]: o["spec"]["template"]["metadata"]["labels"] for o, _ in pod_specs(docs)}


def _admits(peers, labels: dict) -> bool:
    """Whether a pod of the release namespace with `labels` matches one of `peers`."""
    return any(
        set(p) == {"podSelector"} and p["podSelector"]["matchLabels"].items() <= labels.items() for p in peers
    )


API_FROM = "networkPolicy.apiFrom[0].namespaceSelector.matchLabels.team=a"


def test_api_from_keeps_the_api_port_open_to_the_charts_own_callers():
    """With apiFrom set, port 8200 still takes the other core nodes (retry_join
    and forwarding use the API address), the operator and the CSI provider;
    the injector does not call the core."""
    default = one(render(sets=("networkPolicy.enabled=true",)), "NetworkPolicy", FULL)
    assert _peers_admitting(default, 8200) is None, "empty apiFrom admits any source"

    docs = render(sets=("networkPolicy.enabled=true", API_FROM))
    peers = _peers_admitting(one(docs, "NetworkPolicy", FULL), 8200)
    assert peers[0] == {"namespaceSelector": {"matchLabels": {"team": "a"}}}
    configs = one(docs, "ConfigMap", f"{FULL}-config")["data"]
    joins = {addr for hcl in configs.values() for addr in re.findall(r'leader_api_addr\s*=\s*"([^"]+)"', hcl)}
    assert joins and {int(a.rsplit(":", 1)[1]) for a in joins} == {8200}
    labels = _pod_labels(docs)
    for component in ("core", "operator", "csi-provider"):
        assert _admits(peers, labels[component]), component
    assert not _admits(peers, labels["injector"])
    # Without the CSI provider, no rule for it.
    no_csi = render(sets=("networkPolicy.enabled=true", API_FROM, "csi.enabled=false"))
    peers = _peers_admitting(one(no_csi, "NetworkPolicy", FULL), 8200)
    assert [p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in peers[1:]] == ["core", "operator"]


def test_api_from_admits_the_core_scraper():
    """The core's ServiceMonitor scrapes port 8200: with apiFrom set, the
    metricsFrom peers are admitted there too, and only when the core is scraped."""
    obs = str(CHART / "ci" / "observability-values.yaml")
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    docs = render((obs,), (API_FROM,))
    endpoint = one(docs, "ServiceMonitor", FULL)["spec"]["endpoints"][0]
    service = one(docs, "Service", FULL)
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert port["port"] == 8200
    peers = _peers_admitting(one(docs, "NetworkPolicy", FULL), port["port"])
    assert monitoring in peers
    unscraped = render((obs,), (API_FROM, "serviceMonitor.coreTokenSecret.name="))
    assert not find(unscraped, "ServiceMonitor", FULL)
    assert monitoring not in _peers_admitting(one(unscraped, "NetworkPolicy", FULL), 8200)


# ---------------------------------------------------------- values schema ---

BAD_VALUES = {
    "replicas-not-a-number": ({"core": {"replicas": "three"}}, "/core/replicas"),
    "unknown-top-level-key": ({"operater": {"enabled": True}}, "operater"),
    "misspelt-nested-key": ({"core": {"replica": 3}}, "replica"),
    "failure-policy": ({"injector": {"failurePolicy": "Sometimes"}}, "/injector/failurePolicy"),
    "webhook-timeout-too-long": ({"injector": {"timeoutSeconds": 60}}, "/injector/timeoutSeconds"),
    "anti-affinity": ({"core": {"antiAffinity": "maybe"}}, "/core/antiAffinity"),
    "path-template-without-namespace": ({"operator": {"pathTemplates": ["secret/data/*"]}}, "/operator/pathTemplates"),
    # `team` would reach `team-a`'s paths: {namespace} must end the name.
    "path-template-ambiguous": ({"operator": {"pathTemplates": ["database/creds/{namespace}-*"]}}, "/operator/pathTemplates"),
    "relative-socket-dir": ({"csi": {"socketDirs": ["var/run/x"]}}, "/csi/socketDirs"),
    "log-level": ({"logLevel": "loud"}, "/logLevel"),
    "cert-manager-duration": ({"tls": {"certManager": {"duration": "a year"}}}, "/tls/certManager/duration"),
}


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_values_schema_rejects_bad_values(name, tmp_path):
    values, where = BAD_VALUES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    proc = run_helm(*template_args((str(path),)), check=False)
    assert proc.returncode != 0, f"helm accepted {values}"
    assert "schema" in proc.stderr and where in proc.stderr, proc.stderr


def _schema_gaps(values, schema, path="") -> list[str]:
    gaps = []
    if not isinstance(values, dict) or schema.get("type") != "object" or "properties" not in schema:
        return gaps
    for key, value in values.items():
        sub = schema["properties"].get(key)
        if sub is None:
            gaps.append(f"{path}.{key}: not in values.schema.json")
            continue
        if "description" not in sub and "properties" not in sub:
            gaps.append(f"{path}.{key}: no description")
        gaps += _schema_gaps(value, sub, f"{path}.{key}")
    return gaps


def test_every_value_is_in_the_schema_and_documented():
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert _schema_gaps(VALUES, schema) == []
    # values.yaml: every field of the schema that is not a section (has no
    # properties of its own) has a "# --" comment above it. Kubernetes types
    # (resources) are documented as a whole.
    # Sections (fields with properties of their own) have a comment line
    # right above them.
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    bare_sections = []
    stack: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z][\w]*):", line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        keys = [k for _, k in stack]
        sub = schema
        for k in keys:
            sub = (sub.get("properties") or {}).get(k) if sub is not None else None
        if sub is None or "resources" in keys[:-1]:
            continue
        if "properties" in sub:
            if i == 0 or not lines[i - 1].strip().startswith("#"):
                bare_sections.append(".".join(keys))
            continue
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#") and not lines[j].strip().startswith("# --"):
            j -= 1
        if j < 0 or not lines[j].strip().startswith("# --"):
            undocumented.append(".".join(keys))
    assert undocumented == []
    assert bare_sections == []


# --------------------------------------------------------- pod security ---


def security_violations(docs, csi_socket_dirs) -> list[str]:
    """Everything in `docs` that breaks restricted Pod Security. The one
    exception: the CSI provider DaemonSet may run as root (uid 0, no
    capabilities, no escalation) because it mounts the root-owned socket
    directories, and only those, from the host."""
    bad = []
    for obj, spec in pod_specs(docs):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        host_paths = [v["hostPath"]["path"] for v in spec.get("volumes") or [] if "hostPath" in v]
        is_csi = obj["kind"] == "DaemonSet" and obj["metadata"]["labels"].get("app.kubernetes.io/component") == "csi-provider"
        root_allowed = is_csi and host_paths and sorted(host_paths) == sorted(csi_socket_dirs)
        if host_paths and not root_allowed:
            bad.append(f"{where}: hostPath volumes {host_paths}")
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(flag):
                bad.append(f"{where}: {flag}")
        pod_sc = spec.get("securityContext") or {}
        if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            bad.append(f"{where}: pod seccompProfile is not RuntimeDefault")
        for c in containers(spec):
            cw = f"{where} container {c['name']}"
            sc = c.get("securityContext") or {}
            if sc.get("privileged"):
                bad.append(f"{cw}: privileged")
            if sc.get("allowPrivilegeEscalation") is not False:
                bad.append(f"{cw}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                bad.append(f"{cw}: root filesystem is writable")
            caps = sc.get("capabilities") or {}
            if caps.get("drop") != ["ALL"] or caps.get("add"):
                bad.append(f"{cw}: capabilities are not drop [ALL] without add")
            seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
            if seccomp != "RuntimeDefault":
                bad.append(f"{cw}: seccompProfile is not RuntimeDefault")
            uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
            non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
            if root_allowed:
                continue
            if non_root is not True:
                bad.append(f"{cw}: runAsNonRoot is not true")
            if uid is None or uid == 0:
                bad.append(f"{cw}: runAsUser is {uid}")
    return bad


@pytest.mark.parametrize("case", VALUES_CASES, ids=values_id)
def test_no_container_runs_as_root_or_privileged(case):
    docs = render_case(case)
    assert security_violations(docs, VALUES["csi"]["socketDirs"]) == []
    assert list(pod_specs(docs)), "nothing rendered pods"


def test_only_the_csi_provider_runs_as_root_and_without_capabilities():
    docs = render()
    roots = []
    for obj, spec in pod_specs(docs):
        for c in containers(spec):
            uid = (c.get("securityContext") or {}).get("runAsUser", (spec.get("securityContext") or {}).get("runAsUser"))
            if uid == 0:
                roots.append((obj["kind"], obj["metadata"]["name"], c["name"]))
    assert roots == [("DaemonSet", f"{FULL}-csi-provider", "csi-provider")]


def test_security_check_catches_violations():
    """The checker above is what guards the chart: it must flag these."""
    pod = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": "bad", "labels": {"app.kubernetes.io/component": "csi-provider"}},
        "spec": {
            "hostNetwork": True,
            "securityContext": {"runAsUser": 0},
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
            "containers": [{"name": "c", "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}}}],
        },
    }
    found = "\n".join(security_violations([pod], ["/var/run/secrets-store-csi-providers"]))
    for expected in ["hostPath", "hostNetwork", "privileged", "allowPrivilegeEscalation", "capabilities", "runAsNonRoot", "runAsUser is 0", "seccompProfile"]:
        assert expected in found, expected
    # A CSI DaemonSet that mounts anything besides the socket directories gets no exception.
    ds = one(render(), "DaemonSet", f"{FULL}-csi-provider")
    tampered = yaml.safe_load(yaml.safe_dump(ds))
    tampered["spec"]["template"]["spec"]["volumes"].append({"name": "etc", "hostPath": {"path": "/etc"}})
    assert any("runAsUser is 0" in v for v in security_violations([tampered], VALUES["csi"]["socketDirs"]))


# --------------------------------------------------------------- webhook ---


def test_webhook_excludes_its_own_namespace_and_kube_system():
    docs = render(sets=("injector.excludeNamespaces={ci,kube-system}",), namespace="secrets")
    hook = one(docs, "MutatingWebhookConfiguration", f"{FULL}-injector")
    (webhook,) = hook["webhooks"]
    expressions = webhook["namespaceSelector"]["matchExpressions"]
    assert expressions == [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["secrets", "kube-system", "ci"]}
    ]
    assert webhook["rules"] == [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"], "scope": "Namespaced"}
    ]
    assert webhook["sideEffects"] == "None" and webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["failurePolicy"] == VALUES["injector"]["failurePolicy"]
    assert webhook["timeoutSeconds"] == VALUES["injector"]["timeoutSeconds"]
    service = webhook["clientConfig"]["service"]
    assert service == {"name": f"{FULL}-injector", "namespace": "secrets", "path": "/mutate", "port": 443}
    svc = one(docs, "Service", f"{FULL}-injector")
    port = [p for p in svc["spec"]["ports"] if p["port"] == 443][0]
    deploy = one(docs, "Deployment", f"{FULL}-injector")
    c = deploy["spec"]["template"]["spec"]["containers"][0]
    assert {"name": port["targetPort"], "containerPort": 8443, "protocol": "TCP"} in c["ports"]
    assert "--listen=0.0.0.0:8443" in c["args"]
    assert svc["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
