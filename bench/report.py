"""What every benchmark says the same way, written once: the shared command-line flags, the machine,
versions and commit a result was measured on, number formats, text and Markdown tables, and the
results files (``<stem>.json`` with every number, ``<stem>.md`` for a person).

A benchmark's Markdown opens with `provenance` (where, on what, by which command, how long), then its
tables (`render_markdown_table`, the same rows `render_text` prints), then what the numbers mean in
words; `write_results` writes both files. A benchmark whose report is a pure function of its JSON can
be rendered again from a committed result.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

import confluent_kafka

from bench.broker import BenchError, KafkaKnobs
from daemon.kafka_local import KAFKA_VERSION

__all__ = [
    "REPO",
    "RESULTS",
    "add_kafka_args",
    "add_out_dir",
    "comma_list",
    "command",
    "dist_version",
    "exit_code",
    "fmt",
    "git_commit",
    "machine_info",
    "markdown_section",
    "moa_versions",
    "new_parser",
    "params_of",
    "provenance",
    "ratio",
    "render_markdown_table",
    "render_text",
    "require_positive",
    "run_main",
    "start_logging",
    "write_results",
]

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# -- the command line -----------------------------------------------------------------------------


def new_parser(module: str, description: str) -> argparse.ArgumentParser:
    """The parser of ``python -m <module>``."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=description)


def add_kafka_args(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap`` and ``--keep-topics``, for a benchmark that goes through the broker."""
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--keep-topics", action="store_true", help="do not delete the benchmark's topics")


def add_out_dir(parser: argparse.ArgumentParser, what: str = "the JSON and Markdown") -> None:
    """``--out-dir``: where ``what`` go (default ``bench/results``)."""
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help=f"where {what} go")


def require_positive(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    """Exit with a usage error if one of ``args.<name>`` is not positive."""
    for name in names:
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")


def comma_list(text: str) -> tuple[str, ...]:
    """``"a, b,,c"`` as ``("a", "b", "c")``."""
    return tuple(x.strip() for x in text.split(",") if x.strip())


def start_logging(log: logging.Logger) -> None:
    """Warnings from everything, and the benchmark's own progress (``log``) at INFO."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    log.setLevel(logging.INFO)


def run_main(main: Callable[[], int]) -> NoReturn:
    """``sys.exit(main())``, with a benchmark that could not measure (`BenchError`) as exit status 2."""
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(2)


def params_of(p: Any) -> dict[str, Any]:
    """A parameters dataclass as JSON-ready values (paths as strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(p).items()}


# -- the machine ----------------------------------------------------------------------------------


def _git(*args: str) -> str | None:
    """``git args...`` in the repository: its output, or None if git cannot tell."""
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_commit() -> str:
    """The short hash of the checked-out commit, or ``unknown``."""
    return _git("rev-parse", "--short", "HEAD") or "unknown"


def machine_info(p: KafkaKnobs) -> dict[str, Any]:
    """The machine, the versions and the commit a report was measured on (``headwater_dirty``: the
    measured code differs from that commit)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "kafka_version": KAFKA_VERSION,
        "kafka_brokers": p.bootstrap,
        "confluent_kafka": dist_version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "bytewax": dist_version("bytewax"),
        "river": dist_version("river"),
        "torch": dist_version("torch"),
        "headwater_commit": _git("rev-parse", "--short", "HEAD"),
        "headwater_dirty": None if status is None else bool(status),
        "headwater_env": sorted(k for k in os.environ if k.startswith("HEADWATER_")),
    }


def dist_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def moa_versions() -> dict[str, Any]:
    """CapyMOA's version, and the JVM's (started by now, if a MOA learner ran), for the report."""
    out: dict[str, Any] = {"capymoa": dist_version("capymoa"), "java": None}
    try:
        import jpype

        if jpype.isJVMStarted():
            system = jpype.JClass("java.lang.System")
            out["java"] = f"{system.getProperty('java.vm.name')} {system.getProperty('java.version')}"
    except ImportError:
        pass
    return out


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def command(module: str, argv: list[str] | None = None) -> str:
    """The command line that produced a report: ``python -m bench.parity --quick``."""
    return f"python -m {module}" + (" " + " ".join(argv) if argv else "")


def provenance(
    m: dict[str, Any],
    *,
    software: str,
    command: str,
    total_s: float,
    broker: str = "single local broker",
    load: str = "load average",
    dirty_note: bool = True,
) -> str:
    """A report's first sentences, from `machine_info` ``m``: the machine, the broker, ``software``
    (the versions that matter to this benchmark), the commit (and whether the measured code differed
    from it, with ``dirty_note``), the command and how long it ran, the load when it started."""
    dirty = " with uncommitted changes" if dirty_note and m.get("headwater_dirty") else ""
    return (
        f"Measured on {m['cpu_count']} CPU(s) ({m['cpu_model']}), Python {m['python']}, Apache Kafka "
        f"{m['kafka_version']} ({broker}), {software}; headwater commit {m['headwater_commit']}{dirty}. "
        f"Produced by `{command}` in {total_s:.0f} s; {load} {' / '.join(map(str, m['load_average_at_start']))} "
        "at the start."
    )


# -- numbers and tables ---------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def fmt(v: float | None, spec: str = ",.0f") -> str:
    """``v`` formatted with ``spec``; ``n/a`` for a number that could not be measured."""
    return "n/a" if v is None else format(v, spec)


def render_text(rows: list[list[str]]) -> str:
    """``rows`` (a header, then the body) as aligned text: first column left, the rest right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        pairs = enumerate(zip(row, widths, strict=True))
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in pairs))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown_table(rows: list[list[str]]) -> list[str]:
    """``rows`` (a header, then the body) as Markdown lines: first column left, the rest right."""
    md = ["| " + " | ".join(rows[0]) + " |"]
    md.append("|" + "|".join([":---"] + ["---:"] * (len(rows[0]) - 1)) + "|")
    md.extend("| " + " | ".join(row) + " |" for row in rows[1:])
    return md


def markdown_section(heading: str, text: str, rows: list[list[str]]) -> list[str]:
    """A ``## heading``, a paragraph that says what the table holds, and the table."""
    return [f"## {heading}", "", text, "", *render_markdown_table(rows), ""]


# -- the results files ----------------------------------------------------------------------------


def write_results(
    out_dir: Path, stem: str, report: Any, markdown: str, total_s: float | None = None
) -> tuple[Path, Path]:
    """``<stem>.json`` (``report``) and ``<stem>.md`` (``markdown``) in ``out_dir``; says where."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    md_path.write_text(markdown)
    print(f"\nwrote {json_path} and {md_path}" + ("" if total_s is None else f" in {total_s:.0f} s"))
    return json_path, md_path


def exit_code(failed: list[str], what: str = "not every event was served") -> int:
    """A benchmark's exit status: 1, saying ``what`` and where on stderr, if anything ``failed``."""
    if failed:
        print(f"{what}: {failed}", file=sys.stderr)
        return 1
    return 0
