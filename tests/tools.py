"""The Go tools the tests run (promtool, prometheus, helm, crane), built once into a cache outside the
clone by ``scripts/tools``. Missing Go or a failed build fails the test that needs the tool: every
machine that runs the suite has Go (STACK.md), so a missing tool is never a skip."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def tool(name: str) -> str:
    """The path of ``name``, built first if the cache does not hold it (a few minutes, once)."""
    done = subprocess.run([str(ROOT / "scripts" / "tools"), name], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"scripts/tools {name} failed:\n{done.stderr[-3000:]}"
    return done.stdout.strip()
