"""``replicas: 3`` renders one Bytewax cluster of three processes: the init step's hostfile, run
here as the pod runs it, and each pod's variables give `daemon.cluster.Member.from_env` its place."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from daemon.cluster import Member
from tests.helm.chart import CHART, NAMESPACE, Rendered, render

DEFAULT = CHART / "ci" / "default-values.yaml"


def _run_prepare(rendered_env: dict[str, str], script: str, root: Path) -> None:
    """The init container's script under ``sh``, every absolute path it is given moved into ``root``."""
    env = {k: " ".join(str(root) + p for p in v.split()) if v.startswith("/") else v for k, v in rendered_env.items()}
    Path(env["BYTEWAX_HOSTFILE_PATH"]).parent.mkdir(parents=True)
    done = subprocess.run(
        ["/bin/sh", "-ec", script], env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_three_replicas_render_a_three_process_cluster(tmp_path: Path) -> None:
    rendered = render(DEFAULT, sets=["replicas=3"])
    sts = rendered.statefulset
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["podManagementPolicy"] == "Parallel"  # the processes start together
    headless = rendered.one("Service", sts["spec"]["serviceName"])["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True  # peers resolve before /readyz says 200
    assert headless["selector"].items() <= pod_labels(rendered).items()
    (cluster_port,) = [p for p in rendered.daemon["ports"] if p["name"] == "cluster"]
    assert headless["ports"][0]["port"] == cluster_port["containerPort"]

    prepare = rendered.prepare
    assert prepare["command"] == ["/bin/sh", "-ec"]
    _run_prepare(rendered.env(prepare), prepare["args"][0], tmp_path)
    daemon_env = rendered.env(rendered.daemon)
    hostfile = daemon_env["BYTEWAX_HOSTFILE_PATH"]
    assert hostfile == rendered.env(prepare)["BYTEWAX_HOSTFILE_PATH"]
    assert rendered.mount_of(hostfile)["name"] == rendered.mount_of(hostfile, prepare)["name"] == "hostfile"
    assert [e["valueFrom"] for e in rendered.daemon["env"] if e["name"] == "BYTEWAX_POD_NAME"] == [
        {"fieldRef": {"fieldPath": "metadata.name"}}
    ]
    name = sts["metadata"]["name"]
    expected = tuple(
        f"{name}-{i}.{sts['spec']['serviceName']}.{NAMESPACE}.svc.cluster.local:{cluster_port['containerPort']}"
        for i in range(3)
    )
    for i in range(3):
        member = Member.from_env(
            {
                "BYTEWAX_POD_NAME": f"{name}-{i}",  # what the StatefulSet names pod i
                "BYTEWAX_STATEFULSET_NAME": daemon_env["BYTEWAX_STATEFULSET_NAME"],
                "BYTEWAX_HOSTFILE_PATH": str(tmp_path) + hostfile,
            }
        )
        assert member == Member(i, expected)
    # and the directories the daemon expects exist on every pod, the first one or not
    config = rendered.config()
    for directory in (config["runtime"]["recovery_dir"], config["registry"]["path"]):
        assert (tmp_path / directory.lstrip("/")).is_dir()
        assert rendered.mount_of(directory)["name"] == rendered.mount_of(directory, prepare)["name"]


def pod_labels(rendered: Rendered) -> dict[str, str]:
    labels: dict[str, str] = rendered.statefulset["spec"]["template"]["metadata"]["labels"]
    return labels


def test_a_cluster_shares_the_registry_and_keeps_a_recovery_store_per_pod() -> None:
    rendered = render(DEFAULT, sets=["replicas=3"])
    config = rendered.config()
    (claim_template,) = rendered.statefulset["spec"]["volumeClaimTemplates"]
    recovery = rendered.mount_of(config["runtime"]["recovery_dir"])
    assert recovery["name"] == claim_template["metadata"]["name"]  # one ReadWriteOnce volume per pod
    registry = rendered.volume(rendered.mount_of(config["registry"]["path"])["name"])
    claim = rendered.one("PersistentVolumeClaim", registry["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    given = render(DEFAULT, sets=["replicas=3", "sharedRegistry.existingClaim=models"])
    assert "PersistentVolumeClaim" not in given.kinds()
    assert given.volume("registry")["persistentVolumeClaim"]["claimName"] == "models"

    same_node = render(DEFAULT, sets=["replicas=3", "sharedRegistry.sameNode=true"]).pod["affinity"]
    (term,) = same_node["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= pod_labels(rendered).items()


def test_one_replica_runs_alone() -> None:
    rendered = render(DEFAULT)
    env = rendered.env(rendered.daemon)
    assert Member.from_env(env) is None  # no BYTEWAX_* variable: not a member of a cluster
    assert [p["name"] for p in rendered.daemon["ports"]] == ["admin"]
