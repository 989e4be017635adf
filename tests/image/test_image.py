"""The container image, built here without an engine (`scripts/build-image`), run as Kubernetes runs it.

The fixture builds the default image (or finds it in the cache), checks the OCI tarball's blobs against
their digests and unpacks its layers, in the manifest's order, into a fresh directory: what is tested is
the tarball, not the build's scratch files. The image then runs in a chroot with its own config's
entrypoint, user, working directory and environment: uid 10001, the root read-only, /tmp a fresh tmpfs,
the config and the state directory bind-mounted as the chart's ConfigMap and volume are, and the host's
network (the local broker). Building needs root, mmdebstrap (installed with apt-get when missing), Go
(crane) and pip: where one is missing the build fails, and so does every test here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from daemon.kafka_client import make_producer, produce_all, read_all
from daemon.registry import SqliteRegistry
from daemon.workload import Workload, WorkloadSpec
from tests.integration.conftest import SettingsFactory

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]  # a cold build is a few minutes

ROOT = Path(__file__).resolve().parents[2]
UID = 10001
EVENTS = 2000
CONFIG = "/etc/headwater/config.yaml"  # where the chart mounts it
CHECK_CONFIG = ("check-config", "--config", CONFIG)
CUDA_LIBRARY = re.compile(r"lib(cuda|cudart|cublas|cudnn|cufft|curand|cusolver|cusparse|cupti|nccl|nvrtc|nvjitlink)\b")

# Mounts as a container runtime makes them, then the root made read-only, then the image's command as
# uid 10001 in its working directory with exactly the given environment. Runs in new mount and PID
# namespaces: every mount goes with the process.
RUN_IN_CHROOT = r"""
set -eu
root=$1 config=$2 state=$3 user=$4 workdir=$5; shift 5
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mount -t tmpfs -o mode=755 tmpfs "$root/dev"
for dev in null zero full random urandom tty; do
  touch "$root/dev/$dev"; mount --bind "/dev/$dev" "$root/dev/$dev"
done
mkdir "$root/dev/shm" && mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
mkdir -p "$root/etc/headwater"  # a runtime makes the mount point, as Kubernetes does for the ConfigMap
mount --bind -o ro "$config" "$root/etc/headwater"
mount --bind "$state" "$root$workdir"
mount -o remount,bind,ro "$root"
exec chroot --userspec="$user:$user" "$root" /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$workdir" "$@"
"""


@dataclass(frozen=True)
class Image:
    rootfs: Path
    config: dict[str, Any]  # the OCI image config's "config": Entrypoint, Env, User, WorkingDir
    platform: tuple[str, str]
    ref_names: list[str]  # the OCI index's names (podman, containerd)
    repo_tags: list[str]  # Docker's manifest.json (docker load)


def _blob(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    return layout / "blobs" / algorithm / hexdigest


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return f"sha256:{hashlib.file_digest(f, 'sha256').hexdigest()}"


def _unpack(tarball: Path, into: Path) -> Image:
    layout = into / "layout"
    rootfs = into / "rootfs"
    layout.mkdir()
    rootfs.mkdir()
    subprocess.run(["tar", "-C", str(layout), "-xf", str(tarball)], check=True)
    tarball.unlink()
    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    manifest = json.loads(_blob(layout, entry["digest"]).read_text())
    config = json.loads(_blob(layout, manifest["config"]["digest"]).read_text())
    (docker,) = json.loads((layout / "manifest.json").read_text())
    assert docker["Config"] == f"blobs/{manifest['config']['digest'].replace(':', '/')}"
    assert docker["Layers"] == [f"blobs/{layer['digest'].replace(':', '/')}" for layer in manifest["layers"]]
    for layer in manifest["layers"]:
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        blob = _blob(layout, layer["digest"])
        assert blob.stat().st_size == layer["size"]
        assert _sha256(blob) == layer["digest"]
        subprocess.run(["tar", "-C", str(rootfs), "-xzf", str(blob), "--numeric-owner"], check=True)
        blob.unlink()
    whiteouts = list(rootfs.rglob(".wh.*"))
    assert not whiteouts, f"the layers delete files: {whiteouts[:5]}"
    return Image(
        rootfs=rootfs,
        config=config["config"],
        platform=(config["os"], config["architecture"]),
        ref_names=[entry.get("annotations", {}).get("org.opencontainers.image.ref.name", "")],
        repo_tags=docker["RepoTags"],
    )


def _scratch() -> str | None:
    """Where to unpack the image's 1.2 GB: a tmpfs where there is room (writing its 30,000 files to
    disk took 15 to 30 s here, into memory 8 s), else the temporary directory."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and shutil.disk_usage(shm).free > 4 * 2**30 else None


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    into = Path(tempfile.mkdtemp(prefix="headwater-image-", dir=_scratch()))  # removed at the end, not kept by pytest
    try:
        # --out: a hard link of the cached tarball (a copy across filesystems), which a build running beside
        # this one cannot remove while it is unpacked.
        built = subprocess.run([str(ROOT / "scripts" / "build-image"), "--out", str(into)],
                               capture_output=True, text=True, check=False)  # fmt: skip
        assert built.returncode == 0, f"scripts/build-image failed:\n{built.stderr[-4000:]}"
        printed = dict(line.split("=", 1) for line in built.stdout.splitlines() if "=" in line)
        assert Path(printed["image"]).parent == into
        yield _unpack(Path(printed["image"]), into)
    finally:
        shutil.rmtree(into)


@dataclass
class Mounts:
    """The host's side of what the pod mounts: the config (read-only) and the state volume (uid 10001)."""

    config: Path
    state: Path

    @classmethod
    def make(cls, tmp_path: Path, config: dict[str, Any]) -> Mounts:
        made = cls(tmp_path / "config", tmp_path / "state")
        made.config.mkdir(parents=True)
        (made.config / "config.yaml").write_text(yaml.safe_dump(config))
        made.state.mkdir()
        os.chown(made.state, UID, UID)
        return made


def _in_image(image: Image, mounts: Mounts, *argv: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """``argv`` in the image as its config runs the entrypoint: its user, working directory and Env, nothing else."""
    user, workdir = image.config["User"], image.config["WorkingDir"]
    return subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--kill-child", "sh", "-c", RUN_IN_CHROOT, "run-in-chroot",
         str(image.rootfs), str(mounts.config), str(mounts.state), user, workdir,
         "/usr/bin/env", "-i", *image.config["Env"], *argv],
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip


def _headwater(image: Image, mounts: Mounts, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return _in_image(image, mounts, *image.config["Entrypoint"], *args, timeout_s=timeout_s)


def _site_packages(image: Image) -> Path:
    (path,) = image.rootfs.glob("opt/headwater/lib/python3.*/site-packages")
    return path


def test_the_config_runs_headwater_as_uid_10001(image: Image) -> None:
    assert image.config["Entrypoint"] == ["headwater"]
    assert image.config["User"] == str(UID)
    assert image.platform == ("linux", "amd64")
    assert image.ref_names == ["0.1.0"]
    assert image.repo_tags == ["headwater:0.1.0"]
    env = dict(item.split("=", 1) for item in image.config["Env"])
    assert env["PATH"].split(":")[0] == "/opt/headwater/bin"
    assert (image.rootfs / "opt/headwater/bin/headwater").is_file()
    workdir = image.rootfs / image.config["WorkingDir"].lstrip("/")
    assert (workdir.stat().st_uid, workdir.stat().st_gid) == (UID, UID)
    passwd = (image.rootfs / "etc/passwd").read_text().splitlines()
    assert any(line.split(":")[2:4] == [str(UID), str(UID)] for line in passwd)
    # MOA compiles its bridge: the JDK's compiler, not only a Java runtime.
    assert list(image.rootfs.glob("usr/lib/jvm/java-17-openjdk-*/bin/javac"))


def test_the_chroot_is_what_a_restricted_pod_gets(image: Image, tmp_path: Path) -> None:
    """The harness itself: uid 10001, the root read-only, /tmp and the state volume writable."""
    mounts = Mounts.make(tmp_path, {})
    probe = "id -u; touch /tmp/t; touch state-file; touch /opt/headwater/x 2>&1 || echo refused"
    ran = _in_image(image, mounts, "/bin/sh", "-c", probe)
    assert ran.returncode == 0, ran.stderr
    uid, read_only, refused = ran.stdout.splitlines()
    assert (uid, refused) == (str(UID), "refused")
    assert "Read-only file system" in read_only
    assert (mounts.state / "state-file").stat().st_uid == UID


def test_the_default_image_holds_no_torch_nvidia_or_triton(image: Image) -> None:
    """PyPI's torch is the CUDA build: torch, its nvidia-* libraries and triton are gigabytes that only
    the -torch image carries. nvidia-ml-py is not one of them: it is NVML's bindings (pure Python,
    60 KB), which the daemon's GPU telemetry imports as ``pynvml`` in every image."""
    names = sorted(p.name.lower() for p in _site_packages(image).iterdir())
    assert "river" in names and "capymoa" in names  # the walk looks where the packages are
    heavy = [n for n in names if n.startswith(("torch", "triton", "nvidia")) and not n.startswith("nvidia_ml_py")]
    assert heavy == []
    assert "pynvml.py" in names
    cuda = [p.name for p in image.rootfs.rglob("lib*.so*") if CUDA_LIBRARY.match(p.name)]
    assert cuda == []


def _config(settings_dump: dict[str, Any], learner: str) -> dict[str, Any]:
    """The test's settings (fresh topics, the local broker) as a config file for the image: the
    registry relative to the working directory, that is on the state volume."""
    return settings_dump | {"model": settings_dump["model"] | {"learner": learner}, "registry": {"path": "registry"}}


def test_check_config_passes_and_torch_mlp_names_the_extra(
    image: Image, fresh_settings: SettingsFactory, tmp_path: Path
) -> None:
    dump = fresh_settings().model_dump(mode="json")
    ok = _headwater(image, Mounts.make(tmp_path / "moa", _config(dump, "moa-arf")), *CHECK_CONFIG, timeout_s=120)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert json.loads(ok.stdout)["model"]["learner"] == "moa-arf"
    torch = _headwater(image, Mounts.make(tmp_path / "torch", _config(dump, "torch-mlp")), *CHECK_CONFIG, timeout_s=120)
    assert torch.returncode != 0
    assert "install the torch extra" in torch.stderr and "-torch image" in torch.stderr


def test_serves_2000_events_from_the_local_broker_on_a_read_only_root(
    image: Image, fresh_settings: SettingsFactory, tmp_path: Path
) -> None:
    """A MOA champion (the JVM and the bridge it compiles into /tmp) serves every event of the topics,
    ``runtime.tail: false``, and its registry lands on the state volume."""
    settings = fresh_settings(model={"learner": "moa-arf", "params": {"ensemble_size": 3}})
    k = settings.kafka
    spec = WorkloadSpec(n_events=EVENTS, drift_at=EVENTS, malformed_every=0, unmatched_labels=0, label_delay=100)
    workload = Workload(spec)
    topic = {"events": k.events_topic, "labels": str(k.labels_topic)}
    produce_all(make_producer(k.bootstrap_servers), ((topic[i.kind], i.key, i.value) for i in workload.items()))
    mounts = Mounts.make(tmp_path, _config(settings.model_dump(mode="json"), "moa-arf"))

    ran = _headwater(image, mounts, "run", "--config", CONFIG, timeout_s=300)

    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-4000:]
    predictions = [orjson.loads(m.value() or b"null") for m in read_all(k.bootstrap_servers, [k.predictions_topic])]
    assert len(predictions) == EVENTS
    assert {p["id"] for p in predictions} == set(workload.truth)
    # The registry is on the state volume, written by uid 10001, and the champion that served is MOA's.
    assert (mounts.state / "registry").is_dir()
    assert all(p.stat().st_uid == UID for p in (mounts.state / "registry").rglob("*"))
    with SqliteRegistry(mounts.state / "registry") as registry:
        assert {registry.version(v).framework for v in {p["version"] for p in predictions}} == {"moa"}
