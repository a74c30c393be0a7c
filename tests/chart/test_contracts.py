"""What the chart hands each program: RBAC (least privilege, rendered from
files/rbac), the flags and files of the program contracts, the Raft
configuration of every core node, and the TLS material (generated with genCA /
genSignedCert, kept across upgrades through `lookup`)."""

from __future__ import annotations

import base64
import re
import subprocess

import pytest
import yaml

from conftest import (
    CHART,
    NAMESPACE,
    RELEASE,
    REPO_ROOT,
    FakeApiServer,
    containers,
    env_of,
    find,
    one,
    parse_docs,
    shell_command,
    pod_specs,
    render,
    run_helm,
    template_args,
)

FULL = RELEASE
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
RBAC_FILES = {
    "core": ("core.yaml", FULL),
    "operator": ("operator.yaml", f"{FULL}-operator"),
    "csi-provider": ("csi-provider.yaml", f"{FULL}-csi-provider"),
    "injector": ("injector.yaml", f"{FULL}-injector"),
}


def rbac_file(name: str) -> dict:
    return yaml.safe_load((CHART / "files" / "rbac" / name).read_text())


def mounted_path(spec: dict, container: dict, file_path: str) -> dict:
    """The volume that provides `file_path` in `container` (fails if none)."""
    for m in container.get("volumeMounts") or []:
        if file_path.startswith(m["mountPath"].rstrip("/") + "/"):
            volumes = {v["name"]: v for v in spec.get("volumes") or []}
            # A StatefulSet's volumeClaimTemplates are not in the pod's volumes.
            return volumes.get(m["name"], {"name": m["name"], "persistentVolumeClaim": True})
    pytest.fail(f"{file_path} is not under any volume mount of {container['name']}")


# ------------------------------------------------------------------ RBAC ---


@pytest.mark.parametrize("component", sorted(RBAC_FILES))
def test_rendered_rbac_is_exactly_the_rules_file(component):
    file, name = RBAC_FILES[component]
    rules = rbac_file(file)
    docs = render()
    cluster_roles = find(docs, "ClusterRole", name)
    roles = find(docs, "Role", name)
    assert [r["rules"] for r in cluster_roles] == ([rules["clusterRules"]] if rules["clusterRules"] else [])
    assert [r["rules"] for r in roles] == ([rules["namespaceRules"]] if rules["namespaceRules"] else [])
    sa = one(docs, "ServiceAccount", name)
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        for binding in find(docs, kind, name):
            assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name}
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]
    # The pods of the component run as that service account.
    pods = [s for o, s in pod_specs(docs) if o["metadata"]["name"] == name]
    assert len(pods) == 1 and pods[0]["serviceAccountName"] == sa["metadata"]["name"]


def test_no_rbac_rule_uses_wildcards_or_escalates():
    for obj in find(render(), "ClusterRole") + find(render(), "Role"):
        for rule in obj["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (obj["metadata"]["name"], rule)
            assert not {"escalate", "bind", "impersonate", "delete", "deletecollection"} & set(rule["verbs"]), rule
            assert not {"clusterroles", "roles", "clusterrolebindings", "rolebindings"} & set(rule["resources"]), rule


def _grants(rules, group, resource, verb) -> bool:
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)


def test_operator_rules_cover_the_design_and_nothing_cluster_wide_for_leases():
    rules = rbac_file("operator.yaml")
    cluster = rules["clusterRules"]
    for resource in ("secretpolicies", "dynamiccredentials"):
        for verb in ("get", "list", "watch", "patch"):
            assert _grants(cluster, "cairn.dev", resource, verb)
        assert _grants(cluster, "cairn.dev", f"{resource}/status", "patch")
    for verb in ("get", "list", "watch", "create", "patch"):
        assert _grants(cluster, "", "secrets", verb)
    assert _grants(cluster, "", "serviceaccounts/token", "create")
    assert _grants(cluster, "", "pods", "watch") and not _grants(cluster, "", "pods", "get")
    for kind in ("deployments", "statefulsets", "daemonsets"):
        assert _grants(cluster, "apps", kind, "patch")
    assert _grants(cluster, "", "events", "create")
    assert not _grants(cluster, "coordination.k8s.io", "leases", "get"), "leases only in the release namespace"
    assert _grants(rules["namespaceRules"], "coordination.k8s.io", "leases", "update")
    # The core, not the operator, reviews tokens.
    assert not _grants(cluster, "authentication.k8s.io", "tokenreviews", "create")
    assert _grants(rbac_file("core.yaml")["clusterRules"], "authentication.k8s.io", "tokenreviews", "create")


# kube-rs `Api` methods and the RBAC verb each needs.
KUBE_API_VERBS = {
    "get": "get",
    "get_opt": "get",
    "get_metadata": "get",
    "list": "list",
    "list_metadata": "list",
    "watch": "watch",
    "create": "create",
    "replace": "update",
    "replace_status": "update",
    "patch": "patch",
    "patch_status": "patch",
    "delete": "delete",
    "delete_collection": "deletecollection",
}


def test_lease_verbs_are_the_calls_of_leader_rs():
    """The leader-election Role grants the verbs of the calls in
    operator/src/leader.rs and no others (a verb the code stopped using is an
    unused right)."""
    source = (REPO_ROOT / "operator" / "src" / "leader.rs").read_text()
    assert "Api<Lease>" in source and "Api<" not in source.replace("Api<Lease>", "")
    methods = set(re.findall(r"\bapi\s*\.\s*(\w+)\s*\(", source))
    assert methods, "no Lease API call found in leader.rs"
    unknown = methods - set(KUBE_API_VERBS)
    assert not unknown, f"map these kube-rs methods to RBAC verbs: {unknown}"
    (rule,) = [r for r in rbac_file("operator.yaml")["namespaceRules"] if "leases" in r["resources"]]
    assert sorted(rule["verbs"]) == sorted({KUBE_API_VERBS[m] for m in methods})


def test_only_components_that_call_the_api_get_a_token():
    docs = render()
    automount = {o["metadata"]["name"]: s.get("automountServiceAccountToken") for o, s in pod_specs(docs)}
    assert automount == {
        FULL: True,
        f"{FULL}-operator": True,
        f"{FULL}-csi-provider": False,
        f"{FULL}-injector": False,
    }
    for sa in find(docs, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is automount[sa["metadata"]["name"]]


# ------------------------------------------------------- program contracts ---


def test_core_nodes_each_get_their_own_raft_config():
    docs = render()
    sts = one(docs, "StatefulSet", FULL)
    spec = sts["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["args"] == ["server", "--config", "/etc/cairn/config/$(POD_NAME).hcl"]
    assert env_of(c)["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    config_volume = mounted_path(spec, c, "/etc/cairn/config/x.hcl")
    configs = one(docs, "ConfigMap", config_volume["configMap"]["name"])["data"]
    pods = [f"{FULL}-{i}" for i in range(3)]
    assert sorted(configs) == [f"{p}.hcl" for p in pods]
    internal = one(docs, "Service", sts["spec"]["serviceName"])
    assert internal["spec"]["clusterIP"] == "None" and internal["spec"]["publishNotReadyAddresses"] is True
    assert {p["port"] for p in internal["spec"]["ports"]} == {8200, 8201}
    domain = f"{internal['metadata']['name']}.{NAMESPACE}.svc"
    for pod in pods:
        hcl = configs[f"{pod}.hcl"]
        assert f'node_id               = "{pod}"' in hcl
        assert f'api_addr     = "https://{pod}.{domain}:8200"' in hcl
        assert f'cluster_addr = "{pod}.{domain}:8201"' in hcl
        joins = re.findall(r'leader_api_addr\s*=\s*"([^"]+)"', hcl)
        assert joins == [f"https://{p}.{domain}:8200" for p in pods if p != pod]
        assert 'log_format   = "json"' in hcl and "seal " not in hcl
        for tls_file in re.findall(r'(?:tls_\w+_file|ca_cert_file)\s*=\s*"([^"]+)"', hcl):
            volume = mounted_path(spec, c, tls_file)
            assert volume["secret"]["secretName"] == f"{FULL}-tls"
        storage = re.search(r'^\s*path\s*=\s*"([^"]+)"', hcl, re.M).group(1)
        assert mounted_path(spec, c, storage + "/x") == {"name": "data", "persistentVolumeClaim": True}
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["data"]
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert c["readinessProbe"]["httpGet"] == {"path": "/v1/sys/health?standbyok=true", "port": "api", "scheme": "HTTPS"}


def test_single_node_has_no_peers_and_auto_unseals():
    docs = render((str(CHART / "ci" / "single-node-values.yaml"),))
    configs = one(docs, "ConfigMap", f"{FULL}-config")["data"]
    assert list(configs) == [f"{FULL}-0.hcl"]
    hcl = configs[f"{FULL}-0.hcl"]
    assert "retry_join" not in hcl
    assert 'key_file = "/etc/cairn/seal/seal.key"' in hcl
    spec = one(docs, "StatefulSet", FULL)["spec"]["template"]["spec"]
    volume = mounted_path(spec, spec["containers"][0], "/etc/cairn/seal/seal.key")
    assert volume["secret"]["secretName"] == "cairn-seal-key"


def test_operator_contract():
    docs = render()
    spec = one(docs, "Deployment", f"{FULL}-operator")["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    env = {k: v.get("value") for k, v in env_of(c).items()}
    assert c["args"][0] == "run"
    assert f"--lease-name={FULL}-operator" in c["args"]
    assert "--leader-election-namespace=$(POD_NAMESPACE)" in c["args"]
    assert env_of(c)["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["CAIRN_ADDR"] == f"https://{FULL}.{NAMESPACE}.svc:8200"
    assert env["CAIRN_AUTH_MOUNT"] == "kubernetes" and env["CAIRN_AUTH_ROLE"] == "cairn-operator"
    assert env["CAIRN_TOKEN_AUDIENCE"] == "cairn"
    assert env["CAIRN_PATH_TEMPLATES"] == (
        "secret/data/{namespace}/*,secret/metadata/{namespace}/*,database/creds/{namespace}_*,"
        "transit/encrypt/{namespace}_*,transit/decrypt/{namespace}_*"
    )
    token = mounted_path(spec, c, env["CAIRN_TOKEN_FILE"])
    assert env["CAIRN_TOKEN_FILE"] == "/var/run/secrets/cairn/token"
    (source,) = token["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "cairn" and source["serviceAccountToken"]["path"] == "token"
    ca = mounted_path(spec, c, env["CAIRN_CACERT"])
    assert ca["secret"] == {"secretName": f"{FULL}-tls", "defaultMode": 0o444, "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    ports = {p["containerPort"] for p in c["ports"]}
    assert ports == {8080} and "--http-addr=0.0.0.0:8080" in c["args"]
    # The client Service answers at CAIRN_ADDR.
    svc = one(docs, "Service", FULL)
    assert [p["port"] for p in svc["spec"]["ports"]] == [8200]


def rust_long_flags(path, struct: str) -> dict[str, dict]:
    """The `--long` flags of a clap derive struct in a Rust file: flag ->
    {field, env, required}. `required`: not an Option, no default."""
    text = path.read_text()
    body = re.search(rf"pub struct {struct} \{{(.*?)\n\}}", text, re.S)
    assert body, f"no struct {struct} in {path}"
    flags = {}
    for attr, field, ty in re.findall(r"#\[arg\((.*?)\)\]\s*pub (\w+)\s*:\s*([^,]+),", body.group(1), re.S):
        if not re.search(r"\blong\b", attr):
            continue
        explicit = re.search(r'\blong\s*=\s*"([^"]+)"', attr)
        env = re.search(r'\benv\s*=\s*"([^"]+)"', attr)
        flags[explicit.group(1) if explicit else field.replace("_", "-")] = {
            "field": field,
            "env": env.group(1) if env else None,
            "required": not ty.strip().startswith("Option<") and "default_value" not in attr,
        }
    return flags


def test_notes_bootstrap_command_names_the_release_objects():
    """`cairn-operator bootstrap` as the NOTES print it, for a release name and
    namespace that are not the binary's defaults: it runs in the release's
    operator Deployment, with flags bootstrap.rs defines, naming the
    operator's namespace, service account, auth mount and role."""
    release, ns = "payments", "secrets-prod"
    sets = ("operator.authMount=k8s-prod", "operator.authRole=payments-operator")
    proc = run_helm(
        "install", release, str(CHART), "--namespace", ns, "--dry-run=client", *[a for s in sets for a in ("--set", s)]
    )
    notes = proc.stdout[proc.stdout.index("NOTES:") :]
    words = shell_command(notes, "cairn-operator bootstrap")
    # The root token goes on standard input: an exec's command line is part
    # of the request URI the API server writes to its audit log.
    bar = words.index("|")
    assert words[:bar] == ["printf", "%s\\n", "$CAIRN_TOKEN"], words
    words = words[bar + 1 :]
    assert words[:5] == ["kubectl", "-n", ns, "exec", "-i"], words
    target, dashdash, binary, subcommand = words[5:9]
    assert (dashdash, binary, subcommand) == ("--", "cairn-operator", "bootstrap")
    assert "--token-stdin" in words[9:] and not any("CAIRN_TOKEN" in w for w in words)
    args = dict(w[2:].split("=", 1) if "=" in w else (w[2:], True) for w in words[9:])

    docs = render(sets=sets, namespace=ns, release=release)
    deployment = one(docs, "Deployment", target.removeprefix("deploy/"))
    assert deployment["metadata"]["namespace"] == ns
    spec = deployment["spec"]["template"]["spec"]
    # Every flag is one of bootstrap.rs; every required one is passed or set
    # in the operator container's environment (which `kubectl exec` inherits).
    main = (REPO_ROOT / "operator" / "src" / "main.rs").read_text()
    assert re.search(r"^\s*Bootstrap\(Box<BootstrapArgs>\),", main, re.M)
    flags = rust_long_flags(REPO_ROOT / "operator" / "src" / "bootstrap.rs", "BootstrapArgs")
    assert {"operator-namespace", "operator-service-account", "auth-mount", "auth-role", "kubernetes-host"} <= set(flags)
    assert set(args) <= set(flags), f"not flags of bootstrap.rs: {set(args) - set(flags)}"

    assert args.get("operator-namespace") == ns
    assert args.get("operator-service-account") == spec["serviceAccountName"] == f"{release}-cairn-operator"
    assert args.get("auth-mount") == "k8s-prod" and args.get("auth-role") == "payments-operator"
    assert "token" not in args
    (c,) = spec["containers"]
    env = env_of(c)
    for flag, info in flags.items():
        if info["required"]:
            assert flag in args or info["env"] in env, f"--{flag} is required and not given"
    # The core's address and CA come from the container; the API server's
    # address (KUBERNETES_SERVICE_HOST) and CA come with the service-account
    # token, which the operator pod mounts.
    assert flags["cairn-addr"]["env"] == "CAIRN_ADDR" and env["CAIRN_ADDR"]["value"] == f"https://{release}-cairn.{ns}.svc:8200"
    assert flags["cairn-ca-cert"]["env"] == "CAIRN_CACERT"
    assert mounted_path(spec, c, env["CAIRN_CACERT"]["value"])["secret"]["secretName"] == f"{release}-cairn-tls"
    assert "kubernetes-host" not in args and spec["automountServiceAccountToken"] is True


def test_csi_provider_contract():
    docs = render()
    spec = one(docs, "DaemonSet", f"{FULL}-csi-provider")["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    env = {k: v.get("value") for k, v in env_of(c).items()}
    dirs = env["CAIRN_CSI_SOCKET_DIRS"].split(",")
    assert dirs == ["/var/run/secrets-store-csi-providers", "/etc/kubernetes/secrets-store-csi-providers"]
    for d in dirs:
        volume = mounted_path(spec, c, d + "/cairn.sock")
        assert volume["hostPath"] == {"path": d, "type": "DirectoryOrCreate"}
    assert "--provider-name=cairn" in c["args"] and "--http-addr=0.0.0.0:8081" in c["args"]
    assert env["CAIRN_ADDR"] == f"https://{FULL}.{NAMESPACE}.svc:8200"
    assert mounted_path(spec, c, env["CAIRN_CACERT"])["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    assert {"operator": "Exists"} in spec["tolerations"]


def test_injector_contract():
    docs = render(sets=("image.tag=1.2.3", "injector.agentImage.tag=9.9.9"))
    spec = one(docs, "Deployment", f"{FULL}-injector")["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["image"] == "ghcr.io/cairn-dev/cairn-injector:1.2.3"
    args = dict(a[2:].split("=", 1) for a in c["args"])
    assert args["cairn-addr"] == f"https://{FULL}.{NAMESPACE}.svc:8200"
    assert args["own-namespace"] == "$(POD_NAMESPACE)" and args["native-sidecar"] == "true"
    assert args["cairn-ca-configmap"] == "cairn-ca"
    for f in ("tls-cert", "tls-key"):
        assert mounted_path(spec, c, args[f])["secret"]["secretName"] == f"{FULL}-injector-tls"
    assert env_of(c)["CAIRN_AGENT_IMAGE"]["value"] == "ghcr.io/cairn-dev/cairn-agent:9.9.9"
    images = {cc["image"] for _, s in pod_specs(docs) for cc in containers(s)}
    assert images == {
        f"ghcr.io/cairn-dev/{name}:1.2.3" for name in ("cairn", "cairn-operator", "cairn-csi-provider", "cairn-injector")
    }


# ------------------------------------------------------------------- TLS ---


def openssl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True, timeout=30)


def secret_pem(secret: dict, key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def test_generated_certificates_chain_and_name_every_endpoint(tmp_path):
    docs = render()
    core = one(docs, "Secret", f"{FULL}-tls")
    webhook = one(docs, "Secret", f"{FULL}-injector-tls")
    assert core["type"] == webhook["type"] == "kubernetes.io/tls"
    for name, secret in (("core", core), ("webhook", webhook)):
        for key in ("ca.crt", "tls.crt", "tls.key"):
            (tmp_path / f"{name}-{key}").write_text(secret_pem(secret, key))
    # The core's one certificate serves the API and both ends of the cluster port.
    for purpose in ("sslserver", "sslclient"):
        proc = openssl("verify", "-purpose", purpose, "-CAfile", str(tmp_path / "core-ca.crt"), str(tmp_path / "core-tls.crt"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = openssl("verify", "-purpose", "sslserver", "-CAfile", str(tmp_path / "webhook-ca.crt"), str(tmp_path / "webhook-tls.crt"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Separate CAs: the API server's trust in the webhook says nothing about the core.
    proc = openssl("verify", "-CAfile", str(tmp_path / "webhook-ca.crt"), str(tmp_path / "core-tls.crt"))
    assert proc.returncode != 0
    text = openssl("x509", "-noout", "-ext", "subjectAltName", "-in", str(tmp_path / "core-tls.crt")).stdout
    for name in (
        f"DNS:{FULL}.{NAMESPACE}.svc",
        f"DNS:*.{FULL}-internal.{NAMESPACE}.svc",
        f"DNS:*.{FULL}-internal.{NAMESPACE}.svc.cluster.local",
        "DNS:localhost",
        "IP Address:127.0.0.1",
    ):
        assert name in text, (name, text)
    text = openssl("x509", "-noout", "-ext", "subjectAltName", "-in", str(tmp_path / "webhook-tls.crt")).stdout
    assert f"DNS:{FULL}-injector.{NAMESPACE}.svc" in text
    # The key matches its certificate.
    for name in ("core", "webhook"):
        pub_cert = openssl("x509", "-noout", "-pubkey", "-in", str(tmp_path / f"{name}-tls.crt")).stdout
        pub_key = openssl("pkey", "-pubout", "-in", str(tmp_path / f"{name}-tls.key")).stdout
        assert pub_cert and pub_cert == pub_key
    hook = one(docs, "MutatingWebhookConfiguration", f"{FULL}-injector")
    assert hook["webhooks"][0]["clientConfig"]["caBundle"] == webhook["data"]["ca.crt"]


def test_each_render_without_a_cluster_generates_new_certificates():
    first = one(render(), "Secret", f"{FULL}-tls")["data"]["ca.crt"]
    second = one(parse_docs(run_helm(*template_args()).stdout), "Secret", f"{FULL}-tls")["data"]["ca.crt"]
    assert first != second


def _server_render(tmp_path, secrets: dict) -> tuple[list[dict], list[str]]:
    kinds = {(d["apiVersion"], d["kind"]) for d in render()}
    with FakeApiServer(secrets, kinds) as api:
        kubeconfig = api.kubeconfig(tmp_path)
        proc = run_helm(
            *template_args(),
            "--dry-run=server",
            "--disable-openapi-validation",
            "--kubeconfig",
            str(kubeconfig),
        )
        return parse_docs(proc.stdout), list(api.requests)


def installed_secret(rendered: dict, data: dict | None = None) -> dict:
    """`rendered` as the API server returns it after `helm install`: with
    Helm's ownership metadata (helm refuses to adopt objects without it)."""
    meta = dict(rendered["metadata"])
    meta["labels"] = {**meta.get("labels", {}), "app.kubernetes.io/managed-by": "Helm"}
    meta["annotations"] = {"meta.helm.sh/release-name": RELEASE, "meta.helm.sh/release-namespace": NAMESPACE}
    meta["resourceVersion"] = "1"
    return {**rendered, "metadata": meta, "data": dict(rendered["data"] if data is None else data)}


def test_upgrade_keeps_the_existing_certificates(tmp_path):
    """An upgrade (a render that can `lookup` the live Secrets) reuses them:
    clients keep trusting the core and the API server keeps trusting the
    webhook."""
    installed = render()
    live = {}
    for name in (f"{FULL}-tls", f"{FULL}-injector-tls"):
        secret = one(installed, "Secret", name)
        live[(NAMESPACE, name)] = installed_secret(secret)
    upgraded, requests = _server_render(tmp_path, live)
    assert f"/api/v1/namespaces/{NAMESPACE}/secrets/{FULL}-tls" in requests
    for name in (f"{FULL}-tls", f"{FULL}-injector-tls"):
        assert one(upgraded, "Secret", name)["data"] == live[(NAMESPACE, name)]["data"]
    hook = one(upgraded, "MutatingWebhookConfiguration", f"{FULL}-injector")
    assert hook["webhooks"][0]["clientConfig"]["caBundle"] == live[(NAMESPACE, f"{FULL}-injector-tls")]["data"]["ca.crt"]


def test_upgrade_generates_only_the_missing_certificate(tmp_path):
    installed = render()
    core = one(installed, "Secret", f"{FULL}-tls")
    upgraded, _ = _server_render(tmp_path, {(NAMESPACE, f"{FULL}-tls"): installed_secret(core)})
    assert one(upgraded, "Secret", f"{FULL}-tls")["data"] == core["data"]
    webhook = one(upgraded, "Secret", f"{FULL}-injector-tls")
    assert webhook["data"] != one(installed, "Secret", f"{FULL}-injector-tls")["data"]
    hook = one(upgraded, "MutatingWebhookConfiguration", f"{FULL}-injector")
    assert hook["webhooks"][0]["clientConfig"]["caBundle"] == webhook["data"]["ca.crt"]


def test_an_incomplete_secret_is_replaced(tmp_path):
    installed = render()
    core = one(installed, "Secret", f"{FULL}-tls")
    broken = installed_secret(core, {"tls.crt": core["data"]["tls.crt"]})
    upgraded, _ = _server_render(tmp_path, {(NAMESPACE, f"{FULL}-tls"): broken})
    data = one(upgraded, "Secret", f"{FULL}-tls")["data"]
    assert set(data) == {"ca.crt", "tls.crt", "tls.key"} and data["tls.crt"] != core["data"]["tls.crt"]


def test_pod_options_reach_every_component():
    docs = render(
        sets=(
            "imagePullSecrets={regcred}",
            "core.antiAffinity=soft",
            "core.priorityClassName=cairn-critical",
            "operator.nodeSelector.pool=system",
            "csi.podAnnotations.a=b",
            "injector.tolerations[0].operator=Exists",
        )
    )
    specs = {o["metadata"]["name"]: (o, s) for o, s in pod_specs(docs)}
    for _, spec in specs.values():
        assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    core = specs[FULL][1]
    assert "preferredDuringSchedulingIgnoredDuringExecution" in core["affinity"]["podAntiAffinity"]
    assert core["priorityClassName"] == "cairn-critical"
    assert specs[f"{FULL}-operator"][1]["nodeSelector"] == {"pool": "system"}
    assert specs[f"{FULL}-csi-provider"][0]["spec"]["template"]["metadata"]["annotations"] == {"a": "b"}
    assert specs[f"{FULL}-injector"][1]["tolerations"] == [{"operator": "Exists"}]
    none = render(sets=("core.antiAffinity=none",))
    assert "affinity" not in one(none, "StatefulSet", FULL)["spec"]["template"]["spec"]
