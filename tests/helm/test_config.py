"""The config the chart renders is one the daemon takes: ``headwater check-config`` passes it, with
the Secret's files where the pod would find them; and no secret value sits in a ConfigMap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon.config import mask_secrets
from tests.helm.chart import CHART, CI_VALUES, Rendered, render

EXTERNAL = CHART / "ci" / "external-kafka-values.yaml"
GPU = CHART / "ci" / "gpu-values.yaml"


def scenarios() -> list[Any]:
    return [pytest.param(v, id=v.name.removesuffix("-values.yaml")) for v in CI_VALUES]


def secret_files(rendered: Rendered) -> tuple[str, list[str]] | None:
    """Where the pod mounts existingSecret, and the keys it projects there; None: no Secret."""
    mounts = [m for m in rendered.daemon["volumeMounts"] if m["name"] == "secrets"]
    if not mounts:
        return None
    items = rendered.volume("secrets")["secret"]["items"]
    assert all(i["key"] == i["path"] for i in items)
    return mounts[0]["mountPath"], [i["path"] for i in items]


def check_config(rendered: Rendered, tmp: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``headwater check-config`` on the rendered config file, run as its own process.

    The file is the ConfigMap's text with one change: the Secret's mount point becomes a folder
    here holding a file per key the pod projects (as the kubelet would), so that the settings read
    from files (kafka.security_files) are read. The daemon's HEADWATER_* variables are the pod's."""
    text = rendered.config_text()
    secrets = secret_files(rendered)
    if secrets is not None:
        mount, keys = secrets
        folder = tmp / "secrets"
        folder.mkdir()
        for key in keys:
            (folder / key).write_text(f"value-of-{key}\n")
        text = text.replace(mount + "/", f"{folder}/")
    path = tmp / "config.yaml"
    path.write_text(text)
    pod_env = {k: v for k, v in rendered.env(rendered.daemon).items() if k.startswith("HEADWATER_")}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    done = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "check-config", "--config", str(path)],
        env=clean | pod_env | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"check-config refused the rendered config:\n{done.stderr[-3000:]}\n---\n{text}"
    checked: dict[str, Any] = json.loads(done.stdout)
    return checked


def _without_cuda() -> dict[str, str]:
    """On a machine without a GPU, a CUDA learner cannot be built: check the GPU config with the
    device moved to the CPU (by the environment, so the file stays as rendered)."""
    import torch

    return {} if torch.cuda.is_available() else {"HEADWATER_MODEL__PARAMS__DEVICE": "cpu"}


@pytest.mark.parametrize("replicas", [1, 3])
@pytest.mark.parametrize("values", scenarios())
def test_the_rendered_config_passes_check_config(values: Path, replicas: int, tmp_path: Path) -> None:
    rendered = render(values, sets=[f"replicas={replicas}"])
    given = yaml.safe_load(values.read_text())
    env = _without_cuda() if values == GPU else {}
    checked = check_config(rendered, tmp_path, env)
    kafka = given["kafka"]
    assert checked["kafka"]["bootstrap_servers"] == kafka["bootstrapServers"]
    assert checked["kafka"]["replication_factor"] == kafka.get("replicationFactor", 1)
    assert checked["kafka"]["security"].items() >= kafka.get("security", {}).items()
    assert checked["schema"]["features"] == given["config"]["schema"]["features"]
    assert checked["runtime"]["workers"] == 1 and checked["runtime"]["tail"] is True
    admin = {k: checked["admin"][k] for k in ("enabled", "host", "port")}
    assert admin == {"enabled": True, "host": "0.0.0.0", "port": 8080}  # what the probes and the Service reach
    token_file = rendered.config()["admin"].get("token_file")
    assert (token_file is None) == ("admin" not in given), "without admin.tokenKey the API takes no command"
    # the state lives on persistent volumes, not on the read-only root nor in an emptyDir
    for directory in (checked["registry"]["path"], checked["runtime"]["recovery_dir"]):
        volume = rendered.volume(rendered.mount_of(directory)["name"])
        assert {"claimTemplate", "persistentVolumeClaim"} & volume.keys(), (directory, volume)
    if values == GPU:
        assert rendered.config()["model"]["params"] == {"device": "cuda"}


def test_settings_from_the_secret_are_read_from_its_files(tmp_path: Path) -> None:
    rendered = render(EXTERNAL)
    config = rendered.config()
    secrets = secret_files(rendered)
    assert secrets is not None
    mount, keys = secrets
    assert sorted(keys) == ["admin-token", "kafka-ca.pem", "kafka-password"]
    assert config["kafka"]["security_files"] == {"sasl.password": f"{mount}/kafka-password"}
    assert config["kafka"]["security"]["ssl.ca.location"] == f"{mount}/kafka-ca.pem"
    assert config["admin"]["token_file"] == f"{mount}/admin-token"
    assert rendered.volume("secrets")["secret"]["secretName"] == "headwater-credentials"
    checked = check_config(rendered, tmp_path)
    assert checked["kafka"]["security_files"] == {"sasl.password": "***"}
    # and the check does read them: without the Secret's files the same config is refused
    bare = tmp_path / "bare.yaml"
    bare.write_text(rendered.config_text())
    done = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "check-config", "--config", str(bare)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert f"kafka.security_files.sasl.password: cannot read {mount}/kafka-password" in done.stderr


def _secret_looking(original: Any, masked: Any, where: str = "") -> list[tuple[str, Any]]:
    """(path, value) of every value `daemon.config.mask_secrets` would hide."""
    if isinstance(original, dict):
        return [hit for k in original for hit in _secret_looking(original[k], masked[k], f"{where}.{k}")]
    if isinstance(original, list):
        return [
            hit for i, (o, m) in enumerate(zip(original, masked, strict=True)) for hit in _secret_looking(o, m, where)
        ]
    return [(where, original)] if masked == "***" and original != "***" else []


@pytest.mark.parametrize("values", scenarios())
def test_no_secret_value_is_in_a_configmap(values: Path) -> None:
    rendered = render(values, sets=["replicas=3"], monitoring=True)
    secrets = secret_files(rendered)
    for configmap in rendered.all("ConfigMap"):
        for key, text in configmap["data"].items():
            data = json.loads(text) if key.endswith(".json") else yaml.safe_load(text)
            for where, value in _secret_looking(data, mask_secrets(data)):
                # a secret-looking setting holds only the path of a file of the mounted Secret
                assert secrets is not None, f"{configmap['metadata']['name']} {key}{where} = {value!r}"
                mount, keys = secrets
                assert isinstance(value, str) and value.removeprefix(mount + "/") in keys, (where, value)
