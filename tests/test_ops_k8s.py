"""Kubernetes manifests: render the Kustomize base and the example overlay, validate every
manifest, and check what the worker needs.

Rendering: with the real kustomize when one is on PATH (`kubectl kustomize`, as on this kind of
machine, or `kustomize build`); otherwise with the small renderer below, which implements just
the features k8s/ uses (resources, namespace, nameSuffix, images, replicas, strategic-merge
patches, by name or by a target's kind, name and label selector, ``$patch: delete``, JSON
patches that add,
configMapGenerator with options and behavior: merge, generated-name references). Where both
exist, a test checks that they agree, so the fallback is known to be faithful.

Validation: every built-in kind with kubernetes-validate in strict mode (no unknown fields) for
its newest Kubernetes schemas and for 1.31. ServiceMonitor and PrometheusRule are Prometheus
Operator CRDs, which kubernetes-validate ships no schema for: they are checked structurally
here (apiVersion, kind, metadata, the spec fields the operator needs).
"""

from __future__ import annotations

import copy
import hashlib
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib
from typing import Any, Iterable

import kubernetes_validate
import pytest
import yaml

from stream_lis.config import load_config

ROOT = pathlib.Path(__file__).resolve().parent.parent
BASE = ROOT / "k8s" / "base"
OVERLAY = ROOT / "k8s" / "overlays" / "example"
STAGES = ROOT / "k8s" / "overlays" / "stages"
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass"}
K8S_VERSIONS = sorted({kubernetes_validate.latest_version(), "1.31.0"})

pytestmark = pytest.mark.timeout(120)


# --------------------------------------------------------------------------------------------
# rendering
def _kustomize_cmd() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        try:
            ok = subprocess.run(["kubectl", "kustomize", "--help"], capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return ["kubectl", "kustomize"]
    return None


KUSTOMIZE = _kustomize_cmd()


def render_kustomize(path: pathlib.Path) -> list[dict]:
    assert KUSTOMIZE is not None
    res = subprocess.run([*KUSTOMIZE, str(path)], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge, as far as k8s/ needs: maps merge, lists of named maps merge by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and all(isinstance(x, dict) and "name" in x for x in base + patch)):
        out = [copy.deepcopy(x) for x in base]
        for item in patch:
            idx = next((i for i, x in enumerate(out) if x["name"] == item["name"]), None)
            if idx is None:
                out.append(copy.deepcopy(item))
            else:
                out[idx] = _merge(out[idx], item)
        return out
    return copy.deepcopy(patch)


def _suffix(cm: dict) -> str:
    digest = hashlib.sha256(json.dumps([cm.get("data", {}), cm["metadata"]["name"]], sort_keys=True).encode()).hexdigest()
    return "".join("bcdfghkmt2456789"[int(c, 16)] for c in digest[:10])


def render_fallback(path: pathlib.Path) -> list[dict]:
    """A small Kustomize: only what k8s/ uses (see the module docstring)."""
    resources, generated = _render(path)
    # generated ConfigMaps get a content hash in their name, and references follow it
    names = {}
    for cm in generated:
        opts = cm.pop("_options")
        if not opts.get("disableNameSuffixHash"):
            old = cm["metadata"]["name"]
            cm["metadata"]["name"] = f"{old}-{_suffix(cm)}"
            names[old] = cm["metadata"]["name"]
    for doc in resources:
        for spec in _pod_specs(doc):
            for vol in spec.get("volumes", []):
                if "configMap" in vol:
                    vol["configMap"]["name"] = names.get(vol["configMap"]["name"], vol["configMap"]["name"])
            for c in spec.get("containers", []) + spec.get("initContainers", []):
                for env in c.get("env", []):
                    ref = env.get("valueFrom", {}).get("configMapKeyRef")
                    if ref:
                        ref["name"] = names.get(ref["name"], ref["name"])
                for src in c.get("envFrom", []):
                    if "configMapRef" in src:
                        src["configMapRef"]["name"] = names.get(src["configMapRef"]["name"], src["configMapRef"]["name"])
    return generated + resources


def _json_patch(doc: dict, ops: list[dict]) -> None:
    """JSON Patch (RFC 6902), as far as k8s/ needs: ``add`` to a map key or the end of a list."""
    for op in ops:
        assert op["op"] == "add", op
        *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in op["path"].split("/")[1:]]
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), copy.deepcopy(op["value"]))
        else:
            node[last] = copy.deepcopy(op["value"])


def _selected(doc: dict, selector: str) -> bool:
    """Label selector terms as k8s/ uses them: ``key=value`` and ``!key``, comma-separated."""
    labels = doc["metadata"].get("labels", {})
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if term.startswith("!"):
            ok = term[1:] not in labels
        else:
            key, _, value = term.partition("=")
            ok = labels.get(key) == value
        if not ok:
            return False
    return True


def _pod_specs(doc: dict) -> Iterable[dict]:
    if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
        yield doc["spec"]["template"]["spec"]


def _render(path: pathlib.Path) -> tuple[list[dict], list[dict]]:
    k = yaml.safe_load((path / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "namespace", "nameSuffix", "resources", "images", "replicas", "patches", "configMapGenerator"}
    assert set(k) <= known, f"the fallback renderer does not implement {set(k) - known}"
    resources: list[dict] = []
    generated: list[dict] = []
    for res in k.get("resources", []):
        p = (path / res).resolve()
        if p.is_dir():
            r, g = _render(p)
            resources += r
            generated += g
        else:
            resources += [d for d in yaml.safe_load_all(p.read_text()) if d]
    for gen in k.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for f in gen.get("files", []):
            key, _, file = f.partition("=") if "=" in f else (pathlib.Path(f).name, "", f)
            data[key] = (path / file).read_text()
        for lit in gen.get("literals", []):
            key, _, value = lit.partition("=")
            data[key] = value
        opts = gen.get("options", {})
        behavior = gen.get("behavior", "create")
        existing = next((c for c in generated if c["metadata"]["name"] == gen["name"]), None)
        if behavior == "create":
            assert existing is None, gen["name"]
            md: dict[str, Any] = {"name": gen["name"]}
            if opts.get("labels"):
                md["labels"] = dict(opts["labels"])
            if opts.get("annotations"):
                md["annotations"] = dict(opts["annotations"])
            generated.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": data, "_options": opts})
        else:
            assert existing is not None and behavior in ("merge", "replace"), gen
            existing["data"] = {**existing["data"], **data} if behavior == "merge" else data
    for patch in k.get("patches", []):
        assert set(patch) <= {"path", "patch", "target"}, patch
        p = yaml.safe_load((path / patch["path"]).read_text() if "path" in patch else patch["patch"])
        if "target" in patch:
            t = patch["target"]
            assert set(t) <= {"kind", "name", "labelSelector"}, t
            targets = [d for d in resources if d["kind"] == t["kind"] and d["metadata"]["name"] == t.get("name", d["metadata"]["name"])
                       and _selected(d, t.get("labelSelector", ""))]
        else:
            targets = [d for d in resources if d["kind"] == p["kind"] and d["metadata"]["name"] == p["metadata"]["name"]]
            assert len(targets) == 1, p["metadata"]
        for target in targets:
            if isinstance(p, list):
                _json_patch(target, p)
            elif p.get("$patch") == "delete":
                resources.remove(target)
            else:
                target.update(_merge(target, p))
    for rep in k.get("replicas", []):
        for d in resources:
            if d["metadata"]["name"] == rep["name"] and d["kind"] in {"Deployment", "StatefulSet"}:
                d["spec"]["replicas"] = rep["count"]
    for img in k.get("images", []):
        for d in resources:
            for spec in _pod_specs(d):
                for c in spec["containers"]:
                    name, _, _tag = c["image"].partition(":")
                    if name == img["name"]:
                        c["image"] = f"{img.get('newName', name)}:{img.get('newTag', _tag)}"
    if "nameSuffix" in k:
        for d in resources:
            d["metadata"]["name"] += k["nameSuffix"]
    if "namespace" in k:
        for d in resources + generated:
            if d["kind"] not in CLUSTER_SCOPED:
                d["metadata"]["namespace"] = k["namespace"]
            elif d["kind"] == "Namespace":
                d["metadata"]["name"] = k["namespace"]
    return resources, generated


def render(path: pathlib.Path) -> list[dict]:
    return render_kustomize(path) if KUSTOMIZE else render_fallback(path)


PATHS = {"base": BASE, "overlay": OVERLAY, "stages": STAGES}


@pytest.fixture(scope="module", params=list(PATHS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    return request.param, render(PATHS[request.param])


def _one(docs: list[dict], kind: str, name_prefix: str = "stream-lis") -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name_prefix)]
    assert len(found) == 1, (kind, name_prefix, [d["metadata"]["name"] for d in found])
    return found[0]


def _workers(docs: list[dict]) -> list[dict]:
    """The worker Deployments: one in the base, one per stage in overlays/stages."""
    found = [d for d in docs if d["kind"] == "Deployment"]
    assert found
    return found


def _container(dep: dict) -> dict:
    [c] = dep["spec"]["template"]["spec"]["containers"]
    return c


def _configmap(docs: list[dict], name: str) -> dict:
    found = [d for d in docs if d["kind"] == "ConfigMap" and re.fullmatch(rf"{name}(-[a-z0-9]{{10}})?", d["metadata"]["name"])]
    assert len(found) == 1, name
    return found[0]


# --------------------------------------------------------------------------------------------
# tests
def _normalise(docs: list[dict]) -> list[dict]:
    text = json.dumps(sorted(docs, key=lambda d: (d["kind"], d["metadata"]["name"])), sort_keys=True)
    return json.loads(re.sub(r'"(stream-lis-[a-z-]+?)-[a-z0-9]{10}"', r'"\1-HASH"', text))


@pytest.mark.skipif(KUSTOMIZE is None, reason="no kustomize binary (kubectl kustomize / kustomize build) to compare with")
@pytest.mark.parametrize("path", list(PATHS.values()), ids=list(PATHS))
def test_the_fallback_renderer_agrees_with_kustomize(path: pathlib.Path) -> None:
    assert _normalise(render_fallback(path)) == _normalise(render_kustomize(path))


def test_every_builtin_manifest_passes_strict_validation(rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    checked = 0
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for Kubernetes {version}: {exc.message}")
        checked += 1
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "ServiceAccount"} <= kinds
    assert checked == len([d for d in docs if (d["apiVersion"], d["kind"]) not in CRDS])


def test_crds_have_no_schema_in_kubernetes_validate_and_are_checked_structurally(rendered: tuple[str, list[dict]]) -> None:
    name, docs = rendered
    crds = [d for d in docs if (d["apiVersion"], d["kind"]) in CRDS]
    assert {d["kind"] for d in crds} == {"ServiceMonitor", "PrometheusRule"}
    for doc in crds:
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
        assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
        md = doc["metadata"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", md["name"])
        assert all(isinstance(v, str) for v in md.get("labels", {}).values())
        if name == "overlay":
            assert md["namespace"] == "recsys-lis"
    sm = _one(docs, "ServiceMonitor")
    assert set(sm["spec"]) <= {"jobLabel", "selector", "endpoints", "namespaceSelector", "targetLabels", "podTargetLabels"}
    svc = _one(docs, "Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    # the scrape job is "stream-lis", as the alert rules expect
    assert svc["metadata"]["labels"][sm["spec"]["jobLabel"]] == "stream-lis"
    for ep in sm["spec"]["endpoints"]:
        assert set(ep) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels", "relabelings", "metricRelabelings"}
        assert ep["port"] in {p["name"] for p in svc["spec"]["ports"]}
        assert re.fullmatch(r"\d+s", ep["interval"]) and re.fullmatch(r"\d+s", ep["scrapeTimeout"])
        assert int(ep["scrapeTimeout"][:-1]) <= int(ep["interval"][:-1])
    rule = _one(docs, "PrometheusRule")
    assert set(rule["spec"]) == {"groups"}
    for g in rule["spec"]["groups"]:
        assert set(g) <= {"name", "interval", "rules"} and g["rules"]
        for r in g["rules"]:
            assert ("record" in r) != ("alert" in r) and isinstance(r["expr"], str)
            assert set(r) <= {"record", "alert", "expr", "for", "labels", "annotations"}


def test_prometheus_rule_embeds_exactly_the_rule_file(rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    rules = yaml.safe_load((ROOT / "monitoring" / "prometheus-rules.yaml").read_text())
    assert _one(docs, "PrometheusRule")["spec"]["groups"] == rules["groups"]


def test_the_k8s_copies_of_the_monitoring_files_are_up_to_date() -> None:
    res = subprocess.run([sys.executable, str(ROOT / "monitoring" / "sync_k8s.py"), "--check"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert (BASE / "grafana-dashboard.json").read_text() == (ROOT / "monitoring" / "grafana-dashboard.json").read_text()


def test_grafana_dashboard_configmap_for_the_sidecar(rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    cm = _configmap(docs, "stream-lis-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    [(key, text)] = cm["data"].items()
    assert key.endswith(".json")
    assert json.loads(text) == json.loads((ROOT / "monitoring" / "grafana-dashboard.json").read_text())


def test_config_configmap_is_a_valid_stream_lis_config(rendered: tuple[str, list[dict]], tmp_path: pathlib.Path) -> None:
    _, docs = rendered
    cm = _configmap(docs, "stream-lis-config")
    text = cm["data"]["config.toml"]
    assert tomllib.loads(text)["experiments"], "experiments are declared"
    kafka = _configmap(docs, "stream-lis-kafka")["data"]
    path = tmp_path / "config.toml"
    path.write_text(text)
    # what the worker loads: the file plus the --set overrides of deployment.yaml
    cfg = load_config(str(path), {"kafka.security_protocol": kafka["security_protocol"],
                                  "kafka.sasl_mechanism": kafka["sasl_mechanism"]})
    assert cfg.experiments and cfg.experiments[0].arms
    # every worker Deployment mounts that ConfigMap where the command reads it
    for dep in _workers(docs):
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["mountPath"]: m for m in _container(dep)["volumeMounts"]}
        assert vols[mounts["/etc/stream-lis"]["name"]]["configMap"]["name"] == cm["metadata"]["name"]


def test_worker_command_probes_resources_and_security(rendered: tuple[str, list[dict]]) -> None:
    name, docs = rendered
    for dep in _workers(docs):
        _check_worker(name, docs, dep)


def _check_worker(name: str, docs: list[dict], dep: dict) -> None:
    pod = dep["spec"]["template"]["spec"]
    c = _container(dep)
    assert c["command"] + c["args"][:2] == ["stream-lis", "worker", "--config", "/etc/stream-lis/config.toml"]
    assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in c["ports"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in ("metrics", 9464)
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= c["resources"][kind].keys()
    # The memory a worker uses at its bounds (about 400 MiB with no arm, 115 MiB an arm, 1.8 KB
    # per waiting impression or example; stream-lis.toml) is requested, not only allowed: the
    # scheduler places by requests, and the limit is the request.
    cfg = load_config(ROOT / "k8s" / "base" / "stream-lis.toml")
    lim = cfg.limits
    waiting = lim.max_pending_impressions * cfg.kafka.partitions + lim.max_held_examples * lim.max_arms
    assert _mib(c["resources"]["requests"]["memory"]) >= 400 + 115 * lim.max_arms + 1.8e3 * waiting / 2**20
    assert c["resources"]["requests"]["memory"] == c["resources"]["limits"]["memory"]
    psc, sc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 10001
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert pod["automountServiceAccountToken"] is False
    pdb = _one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    svc = _one(docs, "Service")
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert {"name": "metrics", "port": 9464, "targetPort": "metrics", "protocol": "TCP"} in svc["spec"]["ports"]
    if name == "overlay":
        assert dep["spec"]["replicas"] == 3
        assert c["image"] == "registry.example.com/recsys/stream-lis:0.1.0"
        assert c["resources"]["limits"]["memory"] == "4Gi"
        assert all(d["metadata"].get("namespace") == "recsys-lis" for d in docs if d["kind"] != "Namespace")
        assert _one(docs, "Namespace", "recsys-lis")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_kafka_settings_and_credentials_are_by_reference(rendered: tuple[str, list[dict]]) -> None:
    from stream_lis.config import KafkaConfig

    _, docs = rendered
    kafka_cm = _configmap(docs, "stream-lis-kafka")["metadata"]["name"]
    for dep in _workers(docs):
        env = {e["name"]: e for e in _container(dep)["env"]}
        assert env["STREAM_LIS_BOOTSTRAP"]["valueFrom"]["configMapKeyRef"] == {"name": kafka_cm, "key": "bootstrap_servers"}
        for var, key in (("STREAM_LIS_KAFKA_SASL_USERNAME", "username"), ("STREAM_LIS_KAFKA_SASL_PASSWORD", "password")):
            ref = env[var]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "stream-lis-kafka-credentials", "key": key, "optional": True}
        # the password variable is the one stream_lis reads
        assert KafkaConfig().sasl_password_env in env


def test_no_plaintext_secrets(rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    assert not [d for d in docs if d["kind"] == "Secret"], "no Secret is shipped; the worker references one"
    secretish = re.compile(r"pass(word)?|secret|token|credential|api[_-]?key", re.I)
    for doc in docs:
        for spec in _pod_specs(doc):
            for c in spec["containers"]:
                for e in c.get("env", []):
                    if secretish.search(e["name"]):
                        assert "value" not in e, f"{e['name']} has a literal value"
        if doc["kind"] == "ConfigMap":
            for key, value in doc["data"].items():
                if key.endswith(".json"):
                    continue
                for line in value.splitlines():
                    line = line.split("#", 1)[0]
                    assert not re.search(r"(password|secret|token)\s*=", line, re.I), (doc["metadata"]["name"], line)


def test_stages_overlay_runs_each_stage_as_a_deployment_of_the_base_worker() -> None:
    """overlays/stages: the base's worker twice, once per ``--stage``, identical otherwise."""
    from stream_lis.cli import build_parser

    [base] = _workers(render(BASE))
    docs = render(STAGES)
    deps = {d["metadata"]["name"]: d for d in _workers(docs)}
    assert sorted(deps) == ["stream-lis-eval", "stream-lis-join"]
    selectors = []
    for stage in ("join", "eval"):
        dep = deps[f"stream-lis-{stage}"]
        c = _container(dep)
        assert c["args"] == _container(base)["args"] + ["--stage", stage]
        args = build_parser().parse_args(["worker", *c["args"]])
        assert args.stage == stage
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"]["stream-lis/stage"] == stage == labels["stream-lis/stage"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
        selectors.append(dep["spec"]["selector"]["matchLabels"])
        # the Service (hence the ServiceMonitor's job) and the disruption budget cover both stages
        assert _one(docs, "Service")["spec"]["selector"].items() <= labels.items()
        assert _one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
        # everything else is the base's worker
        same = copy.deepcopy(dep)
        same["metadata"]["name"] = base["metadata"]["name"]
        for md in (same["metadata"], same["spec"]["template"]["metadata"]):
            md["labels"].pop("stream-lis/stage")
        same["spec"]["selector"]["matchLabels"].pop("stream-lis/stage")
        _container(same)["args"] = _container(base)["args"]
        assert _normalise([same]) == _normalise([base])
    # neither Deployment selects the other's pods
    assert selectors[0]["stream-lis/stage"] != selectors[1]["stream-lis/stage"]


def _mib(quantity: str) -> float:
    """A Kubernetes memory quantity (``2Gi``, ``512Mi``) in MiB."""
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 ** 2}
    return float(quantity[:-2]) * units[quantity[-2:]]
