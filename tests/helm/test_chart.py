"""The chart as ``helm lint --strict``, ``helm template`` and kubernetes-validate see it: every
scenario in ci/ renders valid objects, unknown values are refused, and the pods are locked down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.helm.chart import CHART, CI_VALUES, HelmError, Rendered, lint, render

DEFAULT = CHART / "ci" / "default-values.yaml"
MONITORING = CHART / "ci" / "monitoring-values.yaml"
# Objects whose schemas Kubernetes does not ship: Prometheus Operator's CRDs.
CRD_GROUPS = ("monitoring.coreos.com/",)


def scenarios() -> list[Any]:
    return [pytest.param(v, id=v.name.removesuffix("-values.yaml")) for v in CI_VALUES]


def test_every_scenario_is_there() -> None:
    assert [v.name for v in CI_VALUES] == [
        "default-values.yaml",
        "external-kafka-values.yaml",
        "gpu-values.yaml",
        "monitoring-values.yaml",
    ]


@pytest.mark.parametrize("values", scenarios())
def test_lint_is_clean(values: Path) -> None:
    report = lint(values)
    assert "0 chart(s) failed" in report
    assert "[WARNING]" not in report and "[ERROR]" not in report, report


def test_lint_without_the_required_values_names_them() -> None:
    with pytest.raises(HelmError) as refused:
        lint()
    assert "at '/config': missing property 'schema'" in refused.value.output
    assert "at '/kafka/bootstrapServers': minLength" in refused.value.output


def _validate(rendered: Rendered) -> list[str]:
    """kubernetes-validate's strict verdict on every object; CRDs (no schema shipped) are listed."""
    skipped = []
    for doc in rendered.docs:
        try:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            assert doc["apiVersion"].startswith(CRD_GROUPS), f"no schema for {doc['apiVersion']} {doc['kind']}"
            skipped.append(doc["kind"])
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    return skipped


@pytest.mark.parametrize("values", scenarios())
def test_every_scenario_renders_valid_objects(values: Path) -> None:
    for rendered in (render(values, monitoring=True), render(values, sets=["replicas=3"], monitoring=True)):
        assert {"StatefulSet", "Service", "ServiceAccount", "ConfigMap", "NetworkPolicy"} <= set(rendered.kinds())
        skipped = _validate(rendered)
        assert sorted(skipped) == sorted(k for k in rendered.kinds() if k in ("ServiceMonitor", "PrometheusRule"))


def test_the_validator_does_catch_an_invalid_object() -> None:
    broken = json.loads(json.dumps(render(DEFAULT).statefulset))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "admin"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("colour=blue", "at '': additional properties 'colour' not allowed"),
        ("kafka.bootstrapServer=kafka:9092", "at '/kafka': additional properties 'bootstrapServer' not allowed"),
        ("metrics.serviceMonitor.enable=true", "additional properties 'enable' not allowed"),
        # inside config the daemon's own settings model speaks (tests/helm/values_schema.py)
        ("config.promotion.min_sample=3", "at '/config/promotion': additional properties 'min_sample' not allowed"),
        # settings the chart owns are set from its values only
        ("config.kafka.bootstrap_servers=kafka:9092", "at '/config/kafka': additional properties 'bootstrap_servers'"),
        ("config.registry.path=/data", "at '/config': additional properties 'registry' not allowed"),
        ("config.admin.token=hunter2", "at '/config/admin': additional properties 'token' not allowed"),
        # a secret never goes through a value into the ConfigMap
        (r"kafka.security.sasl\.password=hunter2", "at '/kafka/security/sasl.password': false schema"),
        ("replicas=0", "at '/replicas': minimum: got 0, want 1"),
        # an alert's threshold: a share, a Prometheus duration, no unknown threshold
        (
            "metrics.prometheusRule.alerts.deadLetterRatio.ratio=2",
            "at '/metrics/prometheusRule/alerts/deadLetterRatio/ratio': maximum",
        ),
        (
            "metrics.prometheusRule.alerts.notReady.for=5min",
            "at '/metrics/prometheusRule/alerts/notReady/for': '5min' does not match",
        ),
        (
            "metrics.prometheusRule.alerts.rollback.window=15m",
            "at '/metrics/prometheusRule/alerts/rollback': additional properties 'window'",
        ),
    ],
)
def test_an_unknown_or_misplaced_value_is_refused_with_the_schemas_message(setting: str, message: str) -> None:
    with pytest.raises(HelmError) as refused:
        render(DEFAULT, sets=[setting])
    assert "values don't meet the specifications of the schema" in refused.value.output
    assert message in refused.value.output


def test_secret_keys_without_a_secret_are_refused() -> None:
    with pytest.raises(HelmError) as refused:
        render(DEFAULT, sets=["admin.tokenKey=admin-token"])
    assert "set existingSecret to its name" in refused.value.output


def test_live_refresh_in_a_cluster_is_refused_at_install() -> None:
    with pytest.raises(HelmError) as refused:
        render(DEFAULT, sets=["replicas=2", "config.promotion.live_refresh=true"])
    assert "run one replica, or turn live_refresh off" in refused.value.output
    assert render(DEFAULT, sets=["config.promotion.live_refresh=true"]).statefulset


RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.mark.parametrize("replicas", [1, 3])
def test_every_container_runs_locked_down(replicas: int) -> None:
    rendered = render(DEFAULT, sets=[f"replicas={replicas}"])
    pod = rendered.pod
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    containers = pod["containers"] + pod["initContainers"]
    assert [c["name"] for c in containers] == ["headwater", "prepare"]
    for container in containers:
        assert container["securityContext"] == RESTRICTED, container["name"]
    # a read-only root with a writable /tmp (the lane server's socket, MOA's bridge)
    assert rendered.volume(rendered.mount_of("/tmp/x")["name"]) == {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}


def test_probes_grace_and_ports() -> None:
    rendered = render(DEFAULT)
    daemon = rendered.daemon
    port = {p["name"]: p["containerPort"] for p in daemon["ports"]}["admin"]
    assert rendered.config()["admin"]["port"] == port
    assert daemon["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert daemon["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert daemon["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert rendered.pod["terminationGracePeriodSeconds"] == 90  # drain, flush (30 s), snapshot
    service = rendered.one("Service", "hw-headwater")
    assert service["spec"]["ports"] == [{"name": "admin", "port": port, "targetPort": "admin", "protocol": "TCP"}]
    assert daemon["args"] == ["run", "--config", "/etc/headwater/config.yaml"]
    assert daemon["image"] == "headwater:0.1.0"


def test_one_replica_keeps_both_stores_on_its_own_volume() -> None:
    rendered = render(DEFAULT)
    config, sts = rendered.config(), rendered.statefulset
    assert sts["spec"]["replicas"] == 1
    assert "initContainers" in rendered.pod and "BYTEWAX_HOSTFILE_PATH" not in rendered.env(rendered.daemon)
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    for path in (config["registry"]["path"], config["runtime"]["recovery_dir"]):
        assert rendered.mount_of(path)["name"] == claim["metadata"]["name"]
    assert "PersistentVolumeClaim" not in rendered.kinds()


def test_monitoring_objects_need_their_flag_and_the_operators_api() -> None:
    monitoring = {"ServiceMonitor", "PrometheusRule"}
    assert not monitoring & set(render(MONITORING).kinds()), "rendered without monitoring.coreos.com/v1"
    assert not monitoring & set(render(DEFAULT, monitoring=True).kinds()), "rendered without their flags"
    only_rules = render(DEFAULT, sets=["metrics.prometheusRule.enabled=true"], monitoring=True)
    assert monitoring & set(only_rules.kinds()) == {"PrometheusRule"}
    rendered = render(MONITORING, monitoring=True)
    assert monitoring <= set(rendered.kinds())
    monitor = rendered.one("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"] == [{"port": "admin", "path": "/metrics", "interval": "15s"}]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= rendered.one("Service", "hw-headwater")["metadata"]["labels"].items()
    )
    # Prometheus's own {{ $labels }} templates come through Helm untouched (tests/observability: the rules)
    rules = rendered.one("PrometheusRule")["spec"]
    assert any("{{ $labels" in str(r.get("annotations")) for g in rules["groups"] for r in g["rules"])


def test_the_dashboard_configmap_carries_the_sidecars_label() -> None:
    assert all("grafana_dashboard" not in c["metadata"]["labels"] for c in render(DEFAULT).all("ConfigMap")), (
        "off by default"
    )
    rendered = render(MONITORING)
    dashboard = rendered.one("ConfigMap", "hw-headwater-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Headwater"}
    assert json.loads(dashboard["data"]["headwater.json"]) == json.loads(
        (CHART / "dashboards" / "headwater.json").read_text()
    )
    relabelled = render(MONITORING, sets=["dashboard.label=dashboards", "dashboard.labelValue=headwater"])
    labels = relabelled.one("ConfigMap", "hw-headwater-dashboard")["metadata"]["labels"]
    assert labels["dashboards"] == "headwater" and "grafana_dashboard" not in labels


def test_network_policy_opens_only_the_admin_port_to_labelled_namespaces() -> None:
    alone = render(DEFAULT).one("NetworkPolicy")["spec"]
    assert alone["policyTypes"] == ["Ingress"]
    assert alone["ingress"] == [
        {
            "from": [{"namespaceSelector": {"matchLabels": {"headwater.io/admin-access": "true"}}}],
            "ports": [{"port": "admin", "protocol": "TCP"}],
        }
    ]
    cluster = render(DEFAULT, sets=["replicas=3"]).one("NetworkPolicy")["spec"]["ingress"]
    assert cluster[1] == {
        "from": [{"podSelector": {"matchLabels": alone["podSelector"]["matchLabels"]}}],
        "ports": [{"port": "cluster", "protocol": "TCP"}],
    }
    closed = render(DEFAULT, sets=["networkPolicy.adminNamespaceLabels=null"]).one("NetworkPolicy")["spec"]
    assert closed["ingress"] == []


def test_the_gpu_scenario_is_values_gpu_yaml_and_asks_for_a_gpu() -> None:
    overlay = yaml.safe_load((CHART / "values-gpu.yaml").read_text())
    scenario = yaml.safe_load((CHART / "ci" / "gpu-values.yaml").read_text())

    def within(part: Any, whole: Any) -> bool:
        if isinstance(part, dict):
            return isinstance(whole, dict) and all(k in whole and within(v, whole[k]) for k, v in part.items())
        return bool(part == whole)

    assert within(overlay, scenario), "ci/gpu-values.yaml must hold all of values-gpu.yaml"
    rendered = render(DEFAULT, CHART / "values-gpu.yaml")
    pod, daemon = rendered.pod, rendered.daemon
    assert daemon["image"] == "headwater:0.1.0-torch"
    assert daemon["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["runtimeClassName"] == "nvidia" and pod["nodeSelector"] and pod["tolerations"]
    assert rendered.config()["model"] == {"learner": "torch-mlp", "params": {"device": "cuda"}}
