"""k8s/: every overlay renders with the real kustomize, validates with kubernetes-validate --strict, and
every rendered workload meets the house policy (non-root, read-only root, no capabilities, resources,
probes on long-running containers, pinned images, no inline secrets, Job and CronJob rules, DNS-1123
names, references that resolve). Platform-level checks are in test_k8s_platform.py.

No API server runs here (DESIGN.md §4); rules only a server would enforce are checked by these tests.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.k8s_support import (
    CRD_KINDS,
    JOBS,
    K8S,
    PLATFORM,
    RENDERS,
    ROOT,
    find,
    pod_template,
    render,
    render_tool,
    workloads,
)

K8S_VERSION = "1.33.0"  # a current release kubernetes-validate ships schemas for (1.25-1.37)
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
# Kinds whose names become DNS labels (Service DNS, pod hostnames, the job-name label).
LABEL_NAMED = {"Namespace", "Service", "Job", "CronJob", "Deployment", "StatefulSet"}
SECRET_LIKE_ENV = re.compile(r"(KEY|TOKEN|PASSWORD|SECRET|CREDENTIAL)", re.I)
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def containers(template: dict) -> list[dict]:
    spec = template["spec"]
    return spec.get("initContainers", []) + spec["containers"]


@pytest.fixture(scope="module", params=RENDERS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(request.param)


# --- real validators ---------------------------------------------------------------------------


@pytest.mark.slow
def test_every_rendered_object_passes_kubernetes_validate_strict(tmp_path: Path):
    files = []
    for rel in RENDERS:
        proc = subprocess.run([render_tool.kubectl(), "kustomize", str(K8S / rel)], capture_output=True,
                              text=True, check=True)
        path = tmp_path / (rel.replace("/", "-") + ".yaml")
        path.write_text(proc.stdout)
        files.append(str(path))
    import yaml

    (tmp_path / "gpu").mkdir()
    gpu = tmp_path / "gpu-variant.yaml"
    gpu.write_text(yaml.safe_dump_all(render_gpu_variant(tmp_path / "gpu")))
    files.append(str(gpu))
    exe = Path(render_tool.kubectl()).with_name("kubernetes-validate")
    proc = subprocess.run([str(exe), "--strict", "-k", K8S_VERSION, *files], capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "ERROR" not in output, output
    # Objects it has no schema for must be exactly the Prometheus Operator CRDs (checked elsewhere).
    for line in output.splitlines():
        if "Couldn't find schema" in line:
            assert any(f"kind {kind} " in line for kind in CRD_KINDS), line
    # Each object was validated: the count of INFO/WARN lines covers every document.
    total = sum(len(render(rel)) for rel in RENDERS)
    assert total > 40


def test_kubernetes_validate_rejects_an_unknown_field(tmp_path: Path):
    """The validator is live: a stray field in a Deployment fails strict validation."""
    import yaml

    deploy = dict(find(render("overlays/local"), "Deployment", "bcistream-engine")[0])
    deploy["spec"] = {**deploy["spec"], "replicaz": 1}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(deploy))
    exe = Path(render_tool.kubectl()).with_name("kubernetes-validate")
    proc = subprocess.run([str(exe), "--strict", "-k", K8S_VERSION, str(path)], capture_output=True,
                          text=True)
    assert proc.returncode != 0 and "replicaz" in proc.stdout + proc.stderr


def test_launcher_templates_match_the_manifests():
    """bcistream/k8s_templates/*.yaml are exactly what the overlays render (run `make k8s-templates`)."""
    for overlay in render_tool.OVERLAYS:
        expected = find(render(JOBS[overlay]), "Job") + find(render(PLATFORM[overlay]), "CronJob")
        shipped = (ROOT / "bcistream" / "k8s_templates" / f"{overlay}.yaml").read_text()
        assert shipped == render_tool.dump(expected, overlay), (
            f"bcistream/k8s_templates/{overlay}.yaml is stale: run `make k8s-templates`")


def test_profiles_configmap_is_the_package_profile():
    packaged = ROOT / "bcistream" / "data" / "profiles"
    for path in packaged.glob("*.toml"):
        assert (K8S / "base" / "profiles" / path.name).read_text() == path.read_text(), path.name
    cm = find(render("overlays/gke"), "ConfigMap", "bcistream-profiles")[0]
    assert set(cm["data"]) == {p.name for p in packaged.glob("*.toml")}


# --- policy over every rendered object ---------------------------------------------------------


def test_pods_run_as_non_root_with_read_only_root_and_no_capabilities(rendered):
    rel, objects = rendered
    assert workloads(objects), rel
    for obj, tmpl in workloads(objects):
        where = f"{rel}: {obj['kind']}/{obj['metadata']['name']}"
        pod_sc = tmpl["spec"].get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, where
        assert pod_sc.get("runAsUser", 0) != 0, where
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert tmpl["spec"].get("hostNetwork") is not True and tmpl["spec"].get("hostPID") is not True, where
        for c in containers(tmpl):
            sc = c.get("securityContext", {})
            assert sc.get("readOnlyRootFilesystem") is True, (where, c["name"])
            assert sc.get("allowPrivilegeEscalation") is False, (where, c["name"])
            assert sc.get("privileged") is not True, (where, c["name"])
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), (where, c["name"])
            assert not sc.get("capabilities", {}).get("add"), (where, c["name"])
            assert sc.get("runAsUser", pod_sc["runAsUser"]) != 0, (where, c["name"])
            # A read-only root needs a writable /tmp for Python, MNE, MLflow and BentoML caches.
            assert any(m["mountPath"] == "/tmp" for m in c.get("volumeMounts", [])), (where, c["name"])


def test_runtime_uid_matches_the_dockerfile_user(rendered):
    _, objects = rendered
    user = re.search(r"^USER\s+(\d+)", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    for _, tmpl in workloads(objects):
        assert str(tmpl["spec"]["securityContext"]["runAsUser"]) == user


def test_every_container_has_resources_and_long_running_ones_have_probes(rendered):
    rel, objects = rendered
    for obj, tmpl in workloads(objects):
        for c in containers(tmpl):
            where = f"{rel}: {obj['kind']}/{obj['metadata']['name']}/{c['name']}"
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res.get(part, {})), (where, part)
            if obj["kind"] in LONG_RUNNING:
                assert "readinessProbe" in c and "livenessProbe" in c, where
                declared = c.get("ports", [])
                ports = {p.get("name") for p in declared} | {p["containerPort"] for p in declared}
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    if probe in c and "httpGet" in c[probe]:
                        assert c[probe]["httpGet"]["port"] in ports, (where, probe)


def test_images_are_pinned(rendered):
    rel, objects = rendered
    for _obj, tmpl in workloads(objects):
        for c in containers(tmpl):
            image = c["image"]
            assert c.get("imagePullPolicy") == "IfNotPresent", f"{rel}: {image}"
            if "@sha256:" in image:
                continue
            last = image.rsplit("/", 1)[-1]
            assert ":" in last, f"{rel}: untagged image {image}"
            tag = last.split(":", 1)[1]
            assert tag and not tag.startswith("latest"), f"{rel}: image {image} is not pinned"
            if rel.startswith("overlays/gke"):
                assert image.startswith("europe-west4-docker.pkg.dev/"), f"{rel}: {image} not in the registry"


def test_no_inline_secrets(rendered):
    rel, objects = rendered
    assert not [o for o in objects if o["kind"] == "Secret"], f"{rel}: Secret objects must not be committed"
    for _obj, tmpl in workloads(objects):
        for c in containers(tmpl):
            for env in c.get("env", []):
                if "value" in env:
                    assert not SECRET_LIKE_ENV.search(env["name"]), (rel, env["name"])
                    assert not URL_WITH_PASSWORD.search(str(env["value"])), (rel, env["name"])
                else:
                    ref = env["valueFrom"]
                    assert "secretKeyRef" in ref or "configMapKeyRef" in ref or "fieldRef" in ref, env
                if "secretKeyRef" in env.get("valueFrom", {}):
                    assert env["valueFrom"]["secretKeyRef"]["name"] == "bcistream-secrets", env
    for cm in find(objects, "ConfigMap"):
        for key, value in cm.get("data", {}).items():
            where = (rel, cm["metadata"]["name"], key)
            assert not SECRET_LIKE_ENV.search(key) or key.endswith("_MODE"), where
            assert not URL_WITH_PASSWORD.search(value), (rel, cm["metadata"]["name"], key)


def test_jobs_restart_policy_and_cronjob_settings(rendered):
    rel, objects = rendered
    for obj, tmpl in workloads(objects):
        if obj["kind"] in ("Job", "CronJob"):
            assert tmpl["spec"]["restartPolicy"] in ("Never", "OnFailure"), (rel, obj["metadata"]["name"])
            spec = obj["spec"] if obj["kind"] == "Job" else obj["spec"]["jobTemplate"]["spec"]
            assert "backoffLimit" in spec or "backoffLimitPerIndex" in spec, obj["metadata"]["name"]
            assert spec.get("activeDeadlineSeconds", 0) > 0 and spec.get("ttlSecondsAfterFinished", 0) > 0
            if spec.get("completionMode") == "Indexed":
                assert 1 <= spec["parallelism"] <= spec["completions"]
                assert spec.get("maxFailedIndexes", 0) <= spec["completions"]
    for cron in find(objects, "CronJob"):
        spec = cron["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        assert 0 < spec["successfulJobsHistoryLimit"] <= 5 and 0 < spec["failedJobsHistoryLimit"] <= 5
        assert spec.get("startingDeadlineSeconds", 0) > 0
        assert len(spec["schedule"].split()) == 5


def test_names_are_dns_1123(rendered):
    rel, objects = rendered
    for obj in objects:
        name = obj["metadata"]["name"]
        limit, pattern = (63, DNS1123_LABEL) if obj["kind"] in LABEL_NAMED else (253, DNS1123_SUBDOMAIN)
        assert len(name) <= limit and pattern.match(name), f"{rel}: {obj['kind']} name {name!r}"
        if "namespace" in obj["metadata"]:
            assert obj["metadata"]["namespace"] == "bcistream"
        tmpl = pod_template(obj)
        for c in containers(tmpl) if tmpl else []:
            assert DNS1123_LABEL.match(c["name"]) and len(c["name"]) <= 63, c["name"]
            for port in c.get("ports", []):
                assert len(port.get("name", "")) <= 15, port
    # Launcher-generated Job names (<template>-YYYYmmdd-HHMMSS-xxxx) stay within the label limit.
    for job in find(objects, "Job") + find(objects, "CronJob"):
        assert len(job["metadata"]["name"]) + len("-20260101-000000-abcd") <= 63


def test_references_resolve_within_the_overlay(rendered):
    """ConfigMaps, ServiceAccounts and PVCs named by pods exist in the platform render."""
    rel, objects = rendered
    overlay = rel.split("/")[1]
    platform = render(PLATFORM[overlay])
    names = {(o["kind"], o["metadata"]["name"]) for o in platform}
    for obj, tmpl in workloads(objects):
        spec = tmpl["spec"]
        assert ("ServiceAccount", spec["serviceAccountName"]) in names, spec["serviceAccountName"]
        for vol in spec.get("volumes", []):
            if "configMap" in vol:
                assert ("ConfigMap", vol["configMap"]["name"]) in names, vol
            if "persistentVolumeClaim" in vol:
                assert ("PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"]) in names, vol
        for c in containers(tmpl):
            for src in c.get("envFrom", []):
                assert ("ConfigMap", src["configMapRef"]["name"]) in names
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            assert mounts <= {v["name"] for v in spec.get("volumes", [])}, obj["metadata"]["name"]


def render_gpu_variant(tmp_path: Path) -> list[dict]:
    """gke's Job templates plus the optional gpu-training component, as a user would compose them."""
    import os

    import yaml

    rel = os.path.relpath(K8S, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [f"{rel}/overlays/gke/jobs"], "components": [f"{rel}/components/gpu-training"]}))
    return render_tool.render(tmp_path)


def test_optional_gpu_component_targets_only_training(tmp_path: Path):
    objects = render_gpu_variant(tmp_path)
    train = find(objects, "Job", "bcistream-train")[0]["spec"]["template"]["spec"]
    assert train["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert train["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    tune = find(objects, "Job", "bcistream-tune")[0]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in tune["containers"][0]["resources"]["limits"]
    test_pods_run_as_non_root_with_read_only_root_and_no_capabilities(("gpu", objects))
    test_every_container_has_resources_and_long_running_ones_have_probes(("gpu", objects))
