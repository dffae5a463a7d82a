"""k8s/ platform objects per overlay: every role present, default-deny network policies, selectors,
disruption budgets and autoscaler, engine replicas <= Kafka partitions, graceful engine shutdown,
least-privilege RBAC, Pod Security, and what the local and gke overlays change.

Checked on the objects rendered by the real kustomize; no API server runs here (DESIGN.md §4).
"""

from __future__ import annotations

import pytest

from tests.k8s_support import PLATFORM, find, render, workloads

# --- platform objects ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=sorted(PLATFORM))
def platform(request) -> tuple[str, list[dict]]:
    return request.param, render(PLATFORM[request.param])


def test_platform_has_every_role(platform):
    _, objects = platform
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for expected in [("Namespace", "bcistream"), ("Deployment", "bcistream-engine"),
                     ("Deployment", "bcistream-serving"), ("Service", "bcistream-serving"),
                     ("HorizontalPodAutoscaler", "bcistream-serving"), ("Deployment", "bcistream-mlflow"),
                     ("Service", "bcistream-mlflow"), ("CronJob", "bcistream-retrain"),
                     ("ConfigMap", "bcistream-settings"), ("ConfigMap", "bcistream-dashboard"),
                     ("NetworkPolicy", "default-deny-all")]:
        assert expected in kinds, expected
    settings = find(objects, "ConfigMap", "bcistream-settings")[0]["data"]
    for key in ("BCISTREAM_HOME", "BCISTREAM_TRACKING_URI", "BCISTREAM_MODEL_NAME", "BCISTREAM_WANDB_MODE",
                "BCISTREAM_KAFKA_BOOTSTRAP", "BCISTREAM_STORE"):
        assert settings.get(key), key
    from bcistream.settings import Settings

    assert {k.removeprefix("BCISTREAM_").lower() for k in settings if k.startswith("BCISTREAM_")} - {
        "data_url"} <= set(Settings.model_fields)


def test_network_policy_default_deny_and_dns(platform):
    _, objects = platform
    policies = find(objects, "NetworkPolicy")
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) ==
            {"Ingress", "Egress"} and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert deny, "no default-deny NetworkPolicy"
    dns = [p for p in policies if any(port.get("port") == 53 for rule in p["spec"].get("egress", [])
                                      for port in rule.get("ports", []))]
    assert dns, "default deny without a DNS egress rule breaks every Service name lookup"
    # Every role's pods are selected by at least one allow policy.
    components = {t["metadata"]["labels"]["app.kubernetes.io/component"] for _, t in workloads(objects)}
    components |= {"train", "tune"}
    for comp in components:
        assert any(_selects(p["spec"]["podSelector"], {"app.kubernetes.io/component": comp})
                   for p in policies if p["spec"]["podSelector"]), comp


def _selects(selector: dict, labels: dict) -> bool:
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def test_selectors_match_their_pods(platform):
    _, objects = platform
    pods = [t["metadata"]["labels"] for _, t in workloads(objects)]
    for svc in find(objects, "Service"):
        selector = {"matchLabels": svc["spec"]["selector"]}
        assert any(_selects(selector, p) for p in pods), svc["metadata"]["name"]
    for deploy in find(objects, "Deployment"):
        assert _selects(deploy["spec"]["selector"], deploy["spec"]["template"]["metadata"]["labels"])


def test_disruption_budgets_and_autoscaler(platform):
    overlay, objects = platform
    pdbs = find(objects, "PodDisruptionBudget")
    for deploy in find(objects, "Deployment"):
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        hpa = [h for h in find(objects, "HorizontalPodAutoscaler")
               if h["spec"]["scaleTargetRef"]["name"] == deploy["metadata"]["name"]]
        replicas = max([deploy["spec"]["replicas"]] + [h["spec"]["minReplicas"] for h in hpa])
        covering = [p for p in pdbs if _selects(p["spec"]["selector"], labels)]
        if replicas > 1:
            assert covering, f"{overlay}: {deploy['metadata']['name']} has {replicas} replicas and no PDB"
        for pdb in covering:
            # A budget that allows no eviction at all blocks node drains forever.
            assert pdb["spec"].get("minAvailable", 0) < replicas, pdb["metadata"]["name"]
    hpa = find(objects, "HorizontalPodAutoscaler", "bcistream-serving")[0]["spec"]
    assert hpa["scaleTargetRef"]["kind"] == "Deployment"
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    serving = find(objects, "Deployment", "bcistream-serving")[0]["spec"]["template"]["spec"]["containers"][0]
    assert "cpu" in serving["resources"]["requests"]  # Utilization targets need a request


def test_engine_replicas_fit_the_kafka_partitions(platform):
    overlay, objects = platform
    kafka = find(objects, "ConfigMap", "bcistream-kafka")[0]["data"]
    partitions = int(kafka["input-partitions"])
    engine = find(objects, "Deployment", "bcistream-engine")[0]
    spec = engine["spec"]
    assert 1 <= spec["replicas"] <= partitions, f"{overlay}: {spec['replicas']} engines > {partitions}"
    # A rolling update must not start an extra consumer either.
    assert spec["strategy"]["rollingUpdate"]["maxSurge"] == 0
    for hpa in find(objects, "HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] == "bcistream-engine":
            assert hpa["spec"]["maxReplicas"] <= partitions
    args = spec["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--from") + 1] == f"kafka:{kafka['input-topic']}"
    assert args[args.index("--to") + 1] == f"kafka:{kafka['output-topic']}"


def test_engines_shut_down_gracefully(platform):
    _, objects = platform
    pod = find(objects, "Deployment", "bcistream-engine")[0]["spec"]["template"]["spec"]
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= 30
    pre_stop = pod["containers"][0].get("lifecycle", {}).get("preStop")
    assert pre_stop, "engines need a preStop hook"
    assert pre_stop["sleep"]["seconds"] < grace / 2  # leaves the engine time to commit after SIGTERM


def test_only_the_launcher_may_create_jobs(platform):
    _, objects = platform
    for sa in find(objects, "ServiceAccount"):
        expected = sa["metadata"]["name"] == "bcistream-launcher"
        assert sa.get("automountServiceAccountToken", True) is expected, sa["metadata"]["name"]
    for _, tmpl in workloads(objects):
        assert tmpl["spec"].get("automountServiceAccountToken") is False
    roles = find(objects, "Role") + find(objects, "ClusterRole")
    assert [r["metadata"]["name"] for r in roles] == ["bcistream-launcher"]
    for rule in roles[0]["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert "secrets" not in rule["resources"]
        if "create" in rule["verbs"]:
            assert rule["resources"] == ["jobs"] and rule["apiGroups"] == ["batch"]
    binding = find(objects, "RoleBinding")
    assert [s["name"] for b in binding for s in b["subjects"]] == ["bcistream-launcher"]


def test_namespace_enforces_restricted_pod_security(platform):
    _, objects = platform
    ns = find(objects, "Namespace", "bcistream")[0]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_local_overlay_keeps_data_on_the_shared_volume():
    objects = render("overlays/local") + render("overlays/local/jobs")
    for obj, tmpl in workloads(objects):
        if obj["metadata"]["name"] in ("bcistream-serving", "bcistream-mlflow"):
            continue
        home = [v for v in tmpl["spec"]["volumes"] if v["name"] == "home"][0]
        assert home == {"name": "home", "persistentVolumeClaim": {"claimName": "bcistream-data"}}, obj["kind"]
    mlflow = find(objects, "Deployment", "bcistream-mlflow")[0]["spec"]
    assert mlflow["replicas"] == 1 and mlflow["strategy"]["type"] == "Recreate"
    env = {e["name"]: e.get("value") for e in mlflow["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("sqlite:////mlflow/")
    tune = find(objects, "Job", "bcistream-tune")[0]["spec"]
    assert tune["parallelism"] == 1  # sqlite study: one worker


def test_gke_overlay_uses_gcs_postgres_and_the_highmem_pool():
    objects = render("overlays/gke")
    assert not find(objects, "PersistentVolumeClaim")
    settings = find(objects, "ConfigMap", "bcistream-settings")[0]["data"]
    assert settings["BCISTREAM_STORE"].startswith("gs://") and settings["BCISTREAM_WANDB_MODE"] == "online"
    mlflow = find(objects, "Deployment", "bcistream-mlflow")[0]["spec"]
    env = {e["name"]: e for e in mlflow["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["key"] == "mlflow-backend-uri"
    assert env["MLFLOW_ARTIFACTS_DESTINATION"]["value"].startswith("gs://")
    for sa in find(objects, "ServiceAccount"):
        if sa["metadata"]["name"] != "bcistream-launcher":
            assert sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(
                ".iam.gserviceaccount.com")
    for obj, tmpl in workloads(objects + render("overlays/gke/jobs")):
        batch = obj["kind"] in ("Job", "CronJob")
        assert (tmpl["spec"].get("nodeSelector") == {"bcistream.io/pool": "highmem"}) is batch, obj["kind"]


