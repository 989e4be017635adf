"""The README's walk-through pushes the image with `crane push`: the tarball `scripts/build-image`
writes goes into a real registry (crane's own, serving on 127.0.0.1) and comes back the same image,
with the entrypoint, user and working directory a pod runs it with."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image.test_image import ROOT, _scratch
from tests.tools import tool


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """crane's registry on a free port of 127.0.0.1, its blobs in tmp_path: ``host:port``."""
    log = tmp_path / "registry.log"
    (tmp_path / "blobs").mkdir()
    with log.open("wb") as out:
        serving = subprocess.Popen(
            [tool("crane"), "registry", "serve", "--address", "127.0.0.1:0", "--disk", str(tmp_path / "blobs")],
            stderr=out,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (port := re.search(r"serving on port (\d+)", log.read_text())):
            assert serving.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield f"127.0.0.1:{port.group(1)}"
    finally:
        serving.terminate()
        serving.wait(30)


def test_crane_push_puts_the_built_image_in_a_registry_as_the_walkthrough_says(registry: str) -> None:
    section = (ROOT / "README.md").read_text().split("## Deploying on Kubernetes", 1)[1]
    push = re.search(r"crane push (\S+) REGISTRY/(\S+)", section)
    assert push is not None, "the walk-through no longer pushes with crane"
    with tempfile.TemporaryDirectory(prefix="headwater-push-", dir=_scratch()) as into:
        built = subprocess.run([str(ROOT / "scripts" / "build-image"), "--out", into],
                               capture_output=True, text=True, check=False)  # fmt: skip
        assert built.returncode == 0, f"scripts/build-image failed:\n{built.stderr[-4000:]}"
        tarball = Path(dict(line.split("=", 1) for line in built.stdout.splitlines() if "=" in line)["image"])
        assert tarball.name == push.group(1), "the walk-through pushes a file build-image does not write"
        ref = f"{registry}/{push.group(2)}"
        pushed = subprocess.run([tool("crane"), "push", str(tarball), ref], capture_output=True, text=True,
                                check=False, timeout=600)  # fmt: skip
        assert pushed.returncode == 0, pushed.stderr[-3000:]
    config = json.loads(subprocess.run([tool("crane"), "config", ref], capture_output=True, text=True,
                                       check=True, timeout=60).stdout)  # fmt: skip
    assert config["config"]["Entrypoint"] == ["headwater"]
    assert config["config"]["User"] == "10001" and config["config"]["WorkingDir"] == "/var/lib/headwater"
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    digest = subprocess.run([tool("crane"), "digest", ref], capture_output=True, text=True, check=True, timeout=60)
    assert pushed.stdout.strip().endswith(digest.stdout.strip())  # what was pushed is what the registry serves
