"""deploy/k8s/ renders to valid Kubernetes objects that make up the same stack as polyllm.yaml.

Checked without a cluster: each overlay is rendered by the real kustomize (``kubectl kustomize``,
the kubectl client), every object is validated against the Kubernetes OpenAPI schemas
(``kubernetes-validate``, strict: unknown fields fail), and the project's own rules are checked
on what was rendered: probes, the router's registry against the Services, the dashboard and
rules ConfigMaps against the files Compose mounts, settings, resources, the GPU overlay.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from polyllm.inference.settings import InferenceSettings
from polyllm.router.backends import load_registry
from polyllm.router.settings import RouterSettings
from polyllm.stack.config import StackConfig, load_stack_config
from tests.deploy.test_compose import env_names, service_settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy/k8s"
OVERLAYS = ["cpu", "gpu"]
EXAMPLE = "examples/eks"  # a user's overlay on top of ours, as docs/deploy.md shows it
K8S_VERSION = "1.31"
MODELS = ["m1", "m2", "m3", "m4", "m5"]
# Resident memory of each service in the running native stack (ps RSS, n_ctx 4096, after hours
# of collection traffic): what the memory requests and limits are sized from.
MEASURED_RSS_MIB = {"m1": 299, "m2": 501, "m3": 707, "m4": 1966, "m5": 1911, "router": 69}
KUBECTL = shutil.which("kubectl")

pytestmark = pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl is not installed: these checks render deploy/k8s with `kubectl kustomize`",
)

Obj = dict[str, Any]


@functools.cache
def render(overlay: str) -> tuple[Obj, ...]:
    """The objects of ``overlay`` (``cpu``, ``gpu``, or a folder under deploy/k8s), as the
    kubectl client's kustomize renders them."""
    assert KUBECTL is not None
    folder = K8S / overlay if "/" in overlay else K8S / "overlays" / overlay
    result = subprocess.run(
        [KUBECTL, "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(overlay: str, kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in render(overlay) if o["kind"] == kind}


def config_data(overlay: str, name: str) -> dict[str, str]:
    """The data of the ConfigMap generated as ``name`` (kustomize adds a hash suffix)."""
    maps = of_kind(overlay, "ConfigMap")
    found = [m for n, m in maps.items() if re.fullmatch(f"{re.escape(name)}-[a-z0-9]{{10}}", n)]
    assert len(found) == 1, f"{name}: {sorted(maps)}"
    data: dict[str, str] = found[0]["data"]
    return data


def pod_spec(deployment: Obj) -> Obj:
    spec: Obj = deployment["spec"]["template"]["spec"]
    return spec


def container(deployment: Obj, name: str) -> Obj:
    return next(c for c in pod_spec(deployment)["containers"] if c["name"] == name)


def model_deployments(overlay: str) -> dict[str, Obj]:
    """Model id → its Deployment (by the pod label the service reads its MODEL_ID from)."""
    found = {}
    for deployment in of_kind(overlay, "Deployment").values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if labels.get("app.kubernetes.io/component") == "model":
            found[labels["polyllm.dev/model"]] = deployment
    return found


def resolved_env(overlay: str, deployment: Obj, c: Obj) -> dict[str, str]:
    """The container's environment as the kubelet sets it: envFrom, then env in order (with
    $(VAR) references), label fieldRefs, requests.cpu resourceFieldRefs, ConfigMap keys."""
    maps = of_kind(overlay, "ConfigMap")
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]]["data"])
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for var in c.get("env", []):
        if "value" in var:
            env[var["name"]] = expand(var["value"], env)
            continue
        ref = var["valueFrom"]
        if "fieldRef" in ref:
            label = re.fullmatch(r"metadata\.labels\['(.+)'\]", ref["fieldRef"]["fieldPath"])
            assert label is not None, ref
            env[var["name"]] = labels[label.group(1)]
        elif "configMapKeyRef" in ref:
            key = ref["configMapKeyRef"]
            env[var["name"]] = maps[key["name"]]["data"][key["key"]]
        else:
            field = ref["resourceFieldRef"]
            assert (field["resource"], field["divisor"]) == ("requests.cpu", "1")
            target = container(deployment, field["containerName"])
            env[var["name"]] = str(math.ceil(cpu_cores(target["resources"]["requests"]["cpu"])))
    return env


def expand(text: str, env: dict[str, str]) -> str:
    """``text`` with its ``$(VAR)`` references replaced, as the kubelet does."""
    return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], text)


def cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def mib(quantity: str) -> float:
    units = {"Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.fixture(scope="module")
def stack() -> StackConfig:
    return load_stack_config(REPO / "polyllm.yaml")


# -- valid Kubernetes --------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", [*OVERLAYS, EXAMPLE])
def test_every_object_follows_the_kubernetes_schemas(overlay: str) -> None:
    errors = []
    for obj in render(overlay):
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    assert not errors, "\n".join(errors)
    assert {o["kind"] for o in render(overlay)} >= {
        "Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget",
    }  # fmt: skip


def test_the_schemas_are_strict() -> None:
    """The validator is the real thing: a misspelt field and a wrong type are both caught."""
    deployment = copy.deepcopy(model_deployments("cpu")["m1"])
    container(deployment, "model")["readinesProbe"] = {"httpGet": {"path": "/health"}}
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    del deployment["spec"]["replicas"]
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


# -- the model services ------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_five_model_services_each_ready_when_health_says_so(overlay: str) -> None:
    deployments = model_deployments(overlay)
    assert sorted(deployments) == MODELS
    for model, deployment in deployments.items():
        c = container(deployment, "model")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("startupProbe", "readinessProbe"):
            check = c[probe]["httpGet"]
            assert check["path"] == "/health" and check["port"] in ports, (model, probe)
        # The startup probe gives a model time to load and warm up: several minutes.
        startup = c["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, model


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_model_env_is_understood_by_the_service(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for model, deployment in model_deployments(overlay).items():
        c = container(deployment, "model")
        env = resolved_env(overlay, deployment, c)
        assert set(env) <= env_names(InferenceSettings), model
        settings = service_settings(InferenceSettings, env, monkeypatch)
        assert (settings.model_id, settings.host) == (model, "0.0.0.0")
        assert settings.port == c["ports"][0]["containerPort"]
        assert settings.resolved_model_path == Path("/models") / f"{model}.gguf"
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/models"].get("readOnly") is True
        assert settings.n_threads == math.ceil(cpu_cores(c["resources"]["requests"]["cpu"]))
        assert settings.use_gpu is (overlay == "gpu" and model == "m5")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_an_init_container_fetches_each_model_from_s3(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = config_data(overlay, "polyllm-model-storage")
    assert storage["MODELS_S3_URI"].startswith("s3://")
    for model, deployment in model_deployments(overlay).items():
        (init,) = pod_spec(deployment)["initContainers"]
        env = resolved_env(overlay, deployment, init)
        command = [expand(word, env) for word in init["command"]]
        assert command == ["polyllm", "models", "fetch", model, "--no-progress"]
        assert env["MODEL_URI"] == f"{storage['MODELS_S3_URI']}/{model}.gguf"
        # It writes where the service reads: the same volume, at the models directory.
        main = container(deployment, "model")
        dirs = {
            c["name"]: resolved_env(overlay, deployment, c)["POLYLLM_MODELS_DIR"]
            for c in (init, main)
        }
        volumes = {
            c["name"]: {m["mountPath"]: m["name"] for m in c["volumeMounts"]} for c in (init, main)
        }
        for name, directory in dirs.items():
            assert volumes[name][directory] == "models", (model, name)
        assert init["image"].split(":")[0] == main["image"].split(":")[0]
        assert pod_spec(deployment)["serviceAccountName"] == "polyllm-model"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_memory_is_sized_from_the_measured_rss(overlay: str) -> None:
    sized = dict(model_deployments(overlay))
    sized["router"] = of_kind(overlay, "Deployment")["polyllm-router"]
    for name, deployment in sized.items():
        resources = pod_spec(deployment)["containers"][0]["resources"]
        request = mib(resources["requests"]["memory"])
        limit = mib(resources["limits"]["memory"])
        assert request >= 1.2 * MEASURED_RSS_MIB[name], (name, request)
        assert limit >= 1.25 * request, (name, limit)
        assert cpu_cores(resources["requests"]["cpu"]) > 0
    for deployment in of_kind(overlay, "Deployment").values():
        for c in pod_spec(deployment)["containers"] + pod_spec(deployment).get(
            "initContainers", []
        ):
            assert {"memory"} <= set(c["resources"]["limits"]), c["name"]


# -- the router --------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_registry_names_the_model_services(
    overlay: str, stack: StackConfig, tmp_path: Path
) -> None:
    router = of_kind(overlay, "Deployment")["polyllm-router"]
    env = resolved_env(overlay, router, container(router, "router"))
    mounted = {m["name"]: m["mountPath"] for m in container(router, "router")["volumeMounts"]}
    path = Path(env["POLYLLM_REGISTRY"])
    assert path.parent == Path(mounted["registry"])
    registry_file = tmp_path / path.name
    registry_file.write_text(config_data(overlay, "polyllm-registry")[path.name])
    registry = load_registry(str(registry_file))

    services, deployments = of_kind(overlay, "Service"), model_deployments(overlay)
    assert sorted(registry) == MODELS
    for model, spec in registry.items():
        match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", spec.url)
        assert match, spec.url
        service = services[match.group(1)]
        (port,) = [p for p in service["spec"]["ports"] if p["port"] == int(match.group(2))]
        # The Service sends to the pods of that model's Deployment, on the service's port.
        pods = [
            m for m, d in deployments.items()
            if selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]  # fmt: skip
        assert pods == [model], (model, pods)
        ports = {
            p["name"]: p["containerPort"] for p in container(deployments[model], "model")["ports"]
        }
        assert port["targetPort"] in ports
        native = stack.registry()[model]
        assert (spec.tier, spec.cost) == (native["tier"], native["cost"])
        assert port["port"] == stack.models[model].port  # the conventional 8101..8105
        assert spec.backend == ("gpu" if overlay == "gpu" and model == "m5" else "cpu")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_router_settings_match_polyllm_yaml(
    overlay: str, stack: StackConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = of_kind(overlay, "Deployment")["polyllm-router"]
    env = resolved_env(overlay, router, container(router, "router"))
    assert set(env) <= env_names(RouterSettings)
    expected = {k: v for k, v in stack.router_env().items() if k != "REDIS_URL"}
    assert {k: env.get(k) for k in expected} == expected
    redis = re.fullmatch(r"redis://([a-z0-9-]+):(\d+)/0", env["REDIS_URL"])
    assert redis is not None
    ports = [p["port"] for p in of_kind(overlay, "Service")[redis.group(1)]["spec"]["ports"]]
    assert int(redis.group(2)) in ports
    settings = service_settings(RouterSettings, env, monkeypatch)
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_router_runs_twice_or_more_and_scales_on_cpu_and_request_rate(overlay: str) -> None:
    router = of_kind(overlay, "Deployment")["polyllm-router"]
    assert router["spec"]["replicas"] >= 2
    (hpa,) = of_kind(overlay, "HorizontalPodAutoscaler").values()
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "polyllm-router")
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > 2
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "polyllm_router_requests_per_second"
    # The router must answer its liveness probe even when every model is down: not /health.
    assert "httpGet" not in container(router, "router")["livenessProbe"]
    assert container(router, "router")["readinessProbe"]["httpGet"]["path"] == "/health"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_cover_the_router_and_every_model(overlay: str) -> None:
    budgets = of_kind(overlay, "PodDisruptionBudget").values()
    covered = dict(model_deployments(overlay))
    covered["router"] = of_kind(overlay, "Deployment")["polyllm-router"]
    for name, deployment in covered.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(matching) == 1, name
    (router_budget,) = [b for b in budgets if b["metadata"]["name"] == "polyllm-router"]
    assert router_budget["spec"]["minAvailable"] >= 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_scrapes_every_service(overlay: str) -> None:
    scraped = list(of_kind(overlay, "Deployment").values()) + list(
        of_kind(overlay, "DaemonSet").values()
    )
    for workload in scraped:
        template = workload["spec"]["template"]
        if template["metadata"]["labels"].get("app.kubernetes.io/component") == "redis":
            continue
        notes = template["metadata"].get("annotations", {})
        assert notes.get("prometheus.io/scrape") == "true", workload["metadata"]["name"]
        ports = [p["containerPort"] for p in template["spec"]["containers"][0]["ports"]]
        assert int(notes["prometheus.io/port"]) in ports
        assert notes["prometheus.io/path"] == "/metrics"


# -- the same dashboard and rules as Compose ---------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_dashboard_and_rules_are_the_committed_files(overlay: str) -> None:
    dashboard = config_data(overlay, "polyllm-grafana-dashboard")
    assert dashboard == {
        "polyllm.json": (REPO / "deploy/grafana/dashboards/polyllm.json").read_text()
    }
    rules = config_data(overlay, "polyllm-prometheus-rules")
    assert rules == {"rules.yml": (REPO / "deploy/prometheus/rules.yml").read_text()}
    compose = yaml.safe_load((REPO / "deploy/compose.yaml").read_text())["services"]
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in compose["grafana"]["volumes"]
    assert "./prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in compose["prometheus"]["volumes"]


# -- the GPU overlay ---------------------------------------------------------------------------


def gpu_limits(overlay: str) -> dict[str, int]:
    """Workload name → nvidia.com/gpu limit, for every workload that asks for a GPU."""
    found = {}
    for kind in ("Deployment", "DaemonSet"):
        for name, workload in of_kind(overlay, kind).items():
            for c in pod_spec(workload)["containers"]:
                limit = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
                if limit is not None:
                    found[name] = int(limit)
    return found


def test_the_gpu_overlay_puts_m5_on_a_gpu_node() -> None:
    m5 = model_deployments("gpu")["m5"]
    spec = pod_spec(m5)
    assert container(m5, "model")["image"] == "polyllm/inference:gpu-ready"
    assert gpu_limits("gpu") == {"polyllm-m5": 1}
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    for model, deployment in model_deployments("gpu").items():
        if model != "m5":
            assert "nodeSelector" not in pod_spec(deployment), model


def test_the_gpu_overlay_exports_gpu_metrics_from_the_gpu_nodes() -> None:
    (dcgm,) = of_kind("gpu", "DaemonSet").values()
    spec = pod_spec(dcgm)
    assert spec["containers"][0]["image"].startswith("nvcr.io/nvidia/k8s/dcgm-exporter:")
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    rules = (REPO / "deploy/prometheus/rules.yml").read_text()
    assert "DCGM_FI_DEV_GPU_UTIL" in rules  # what the dashboard's GPU panels read


def test_the_cpu_overlay_asks_for_no_gpu() -> None:
    assert gpu_limits("cpu") == {}
    assert not of_kind("cpu", "DaemonSet")
    images = {
        c["image"] for d in of_kind("cpu", "Deployment").values() for c in pod_spec(d)["containers"]
    }
    assert not any("gpu" in image for image in images)


def test_the_example_overlay_customises_what_docs_deploy_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = config_data(EXAMPLE, "polyllm-model-storage")
    assert storage["MODELS_S3_URI"] == "s3://my-models-bucket/models"
    for model, deployment in model_deployments(EXAMPLE).items():
        (init,) = pod_spec(deployment)["initContainers"]
        assert resolved_env(EXAMPLE, deployment, init)["MODEL_URI"].startswith(
            "s3://my-models-bucket/models/"
        )
        assert container(deployment, "model")["image"].startswith("123456789012.dkr.ecr."), model
    (account,) = of_kind(EXAMPLE, "ServiceAccount").values()
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
    router = of_kind(EXAMPLE, "Deployment")["polyllm-router"]
    env = resolved_env(EXAMPLE, router, container(router, "router"))
    assert service_settings(RouterSettings, env, monkeypatch).redis_url.startswith("rediss://")
    assert not any("redis" in name for name in of_kind(EXAMPLE, "Deployment"))
    assert not any("redis" in name for name in of_kind(EXAMPLE, "Service"))
