"""The chart through the real ``helm`` (v4, built once by ``scripts/tools``): render, lint, and
pick the pieces of the output the tests read."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.tools import tool

__all__ = [
    "CHART",
    "CI_VALUES",
    "ROOT",
    "HelmError",
    "Rendered",
    "helm",
    "lint",
    "render",
]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "headwater"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "hw"
NAMESPACE = "streams"
MONITORING_API = "monitoring.coreos.com/v1"

Doc = dict[str, Any]


class HelmError(AssertionError):
    """helm refused the chart or the values; ``output`` (what it wrote) says why."""

    def __init__(self, args: list[str], output: str) -> None:
        super().__init__(f"helm {' '.join(args)} failed:\n{output}")
        self.output = output


def helm() -> str:
    """helm, built once into the cache by scripts/tools."""
    return tool("helm")


def _run(args: list[str]) -> str:
    done = subprocess.run([helm(), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    if done.returncode != 0:
        raise HelmError(args, done.stdout + done.stderr)
    return done.stdout


def lint(values: Path | None = None) -> str:
    """``helm lint --strict`` of the chart (with ``values`` over values.yaml); its report."""
    return _run(["lint", "--strict", str(CHART), *(["--values", str(values)] if values else [])])


@dataclass(frozen=True)
class Rendered:
    """The manifests ``helm template`` wrote, and what the tests read in them."""

    docs: tuple[Doc, ...]

    def kinds(self) -> list[str]:
        return [d["kind"] for d in self.docs]

    def all(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> Doc:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {kind} named {name or '*'} in {self.kinds()}"
        return found[0]

    @property
    def statefulset(self) -> Doc:
        return self.one("StatefulSet")

    @property
    def pod(self) -> Doc:
        spec: Doc = self.statefulset["spec"]["template"]["spec"]
        return spec

    @property
    def daemon(self) -> Doc:
        (container,) = [c for c in self.pod["containers"] if c["name"] == "headwater"]
        found: Doc = container
        return found

    @property
    def prepare(self) -> Doc:
        (container,) = [c for c in self.pod.get("initContainers", []) if c["name"] == "prepare"]
        found: Doc = container
        return found

    def config_text(self) -> str:
        """The daemon's config file as the pod reads it: the ConfigMap key its mount names."""
        mount = _mount(self.daemon, "/etc/headwater/config.yaml")
        volume = self.volume(mount["name"])
        text: str = self.one("ConfigMap", volume["configMap"]["name"])["data"][mount["subPath"]]
        return text

    def config(self) -> Doc:
        loaded: Doc = yaml.safe_load(self.config_text())
        return loaded

    def volume(self, name: str) -> Doc:
        """The pod's volume ``name``; one of the StatefulSet's claim templates as ``{name, claimTemplate}``."""
        claims = self.statefulset["spec"].get("volumeClaimTemplates", [])
        found: list[Doc] = [v for v in self.pod["volumes"] if v["name"] == name] + [
            {"name": name, "claimTemplate": c} for c in claims if c["metadata"]["name"] == name
        ]
        assert len(found) == 1, f"{len(found)} volumes named {name}"
        return found[0]

    def mount_of(self, path: str, container: Doc | None = None) -> Doc:
        """The daemon's volume mount that holds ``path`` (the longest mountPath above it)."""
        mounts = [
            m
            for m in (container or self.daemon)["volumeMounts"]
            if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")
        ]
        assert mounts, f"{path} is on no volume of the daemon: the read-only root would refuse it"
        return max(mounts, key=lambda m: len(m["mountPath"]))

    def env(self, container: Doc) -> dict[str, str]:
        """A container's plain environment variables (those with a ``value``)."""
        return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _mount(container: Doc, path: str) -> Doc:
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == path]
    found: Doc = mount
    return found


@functools.cache
def _template(
    values: tuple[str, ...], sets: tuple[str, ...], api_versions: tuple[str, ...], release: str = RELEASE
) -> Rendered:
    args = ["template", release, str(CHART), "--namespace", NAMESPACE]
    for v in values:
        args += ["--values", v]
    for s in sets:
        args += ["--set", s]
    for a in api_versions:
        args += ["--api-versions", a]
    docs = tuple(d for d in yaml.safe_load_all(_run(args)) if d)
    return Rendered(docs)


def render(
    *values: Path, sets: Iterable[str] = (), api_versions: Iterable[str] = (), monitoring: bool = False,
    release: str = RELEASE,
) -> Rendered:  # fmt: skip
    """``helm template`` with ``values`` files and ``--set`` ``sets``; ``monitoring``: as a cluster
    that serves Prometheus Operator's API (``--api-versions monitoring.coreos.com/v1``)."""
    apis = (*api_versions, MONITORING_API) if monitoring else tuple(api_versions)
    return _template(tuple(str(v) for v in values), tuple(sets), apis, release)
