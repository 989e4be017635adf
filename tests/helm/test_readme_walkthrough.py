"""The README's "Deploying on Kubernetes" walk-through, read from the README itself and tried as far as
a machine without a cluster allows: its values file renders valid objects whose config passes
`headwater check-config` (the admin token a file from the Secret it creates, the vote on), and the
names it then uses (the StatefulSet it waits for, the Service and port it forwards) are the ones
the chart makes. The image steps are `tests/image/test_push.py`."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.helm.chart import ROOT, render
from tests.helm.test_chart import _validate
from tests.helm.test_config import check_config

README = ROOT / "README.md"


def _section() -> str:
    text = README.read_text()
    start = text.index("## Deploying on Kubernetes")
    return text[start : text.index("\n## ", start + 1)]


def _values(tmp_path: Path) -> tuple[Path, str]:
    """The walk-through's my-values.yaml (with a registry filled in), and its whole script."""
    script = re.search(r"```bash\n(.*?)```", _section(), re.DOTALL)
    assert script is not None, "the walk-through's script is gone from the README"
    values = re.search(r"cat > my-values.yaml <<'VALUES'\n(.*?)\nVALUES\n", script.group(1), re.DOTALL)
    assert values is not None, "the walk-through no longer writes my-values.yaml"
    path = tmp_path / "my-values.yaml"
    path.write_text(values.group(1).replace("REGISTRY", "registry.example.com/team"))
    return path, script.group(1)


def test_the_walkthroughs_values_render_valid_objects_and_a_config_the_daemon_takes(tmp_path: Path) -> None:
    values, script = _values(tmp_path)
    release = re.search(r"helm install (\S+) helm/headwater -f my-values.yaml", script)
    assert release is not None
    rendered = render(values)
    assert _validate(rendered) == []
    assert rendered.daemon["image"].startswith("registry.example.com/team/headwater:0.1.0")
    secret = re.search(r"kubectl create secret generic (\S+) --from-literal=([\w-]+)=", script)
    assert secret is not None
    assert rendered.volume("secrets")["secret"]["secretName"] == secret.group(1)
    checked = check_config(rendered, tmp_path)
    assert checked["model"]["vote"]["enabled"] is True
    assert rendered.config()["admin"]["token_file"].endswith("/" + secret.group(2))  # a file check-config read
    given = yaml.safe_load(values.read_text())
    assert checked["kafka"]["bootstrap_servers"] == given["kafka"]["bootstrapServers"]


def test_the_names_the_walkthrough_uses_are_the_charts(tmp_path: Path) -> None:
    values, script = _values(tmp_path)
    rendered = render(values, release="headwater")
    waited = re.search(r"kubectl rollout status statefulset/(\S+)", script)
    forwarded = re.search(r"kubectl port-forward svc/(\S+) (\d+):(\d+)", script)
    assert waited is not None and forwarded is not None
    assert rendered.statefulset["metadata"]["name"] == waited.group(1)
    service = rendered.one("Service", forwarded.group(1))
    assert [p["port"] for p in service["spec"]["ports"]] == [int(forwarded.group(3))]
    assert f"localhost:{forwarded.group(2)}/readyz" in script
