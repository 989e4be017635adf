"""The chart of `bench.scaling`, from its JSON: events/s (top) and p99 latency (bottom) against each
swept factor, the plain loop as a horizontal line (at the base batch size; the batch-size panels also
mark the loop at each size). Drawn with matplotlib's object API on the Agg canvas: no pyplot, no
display, no global state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.scaling.render import COLUMNS, STEADY

HEADWATER, LOOP = "tab:blue", "tab:gray"


def write_chart(report: dict[str, Any], path: Path) -> Path:
    """Draw ``report``'s sweeps into ``path`` (a PNG); says where."""
    factors = list(report["sweeps"])
    fig = Figure(figsize=(4 * len(factors), 7), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(factors), squeeze=False)
    loops = report["loop"]
    base_loop = loops[str(report["params"]["base"]["batch_size"])]
    for col, factor in enumerate(factors):
        points = report["sweeps"][factor]
        xs = [value for value, _ in points]
        runs = [report["runs"][label] for _, label in points]
        top, bottom = axes[0][col], axes[1][col]
        _panel(top, xs, [r["throughput"][STEADY] for r in runs], base_loop["throughput"][STEADY])
        _panel(bottom, xs, [r["latency"].get("p99_ms") for r in runs], base_loop["latency"].get("p99_ms"))
        if factor == "batch_size":  # the loop was measured at each batch size: mark it there
            for ax in (top, bottom):
                ax.set_xscale("log", base=2)
                ax.set_xticks(xs, [str(x) for x in xs])
            at = [x for x in xs if str(x) in loops]
            top.plot(at, [loops[str(x)]["throughput"][STEADY] for x in at], "s--", color=LOOP, alpha=0.6)
            bottom.plot(at, [loops[str(x)]["latency"].get("p99_ms") for x in at], "s--", color=LOOP, alpha=0.6)
        top.set_title(COLUMNS[factor])
        bottom.set_xlabel(f"{COLUMNS[factor]} (base {report['params']['base'][factor]})")
    axes[0][0].set_ylabel("events/s, first to last prediction")
    axes[1][0].set_ylabel(f"p99 latency (ms) at {report['params']['rate']:,.0f} events/s")
    axes[0][0].legend(loc="best", fontsize="small")
    m = report["machine"]
    fig.suptitle(
        f"Headwater scaling, one factor at a time around the base; {m['cpu_count']} CPU(s) shared with the broker "
        f"(commit {m['headwater_commit']})"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _panel(ax: Axes, xs: list[int], ys: list[float | None], loop: float | None) -> None:
    measured = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
    ax.plot([x for x, _ in measured], [y for _, y in measured], "o-", color=HEADWATER, label="Headwater")
    if loop is not None:
        ax.axhline(loop, color=LOOP, linestyle="--", label="plain loop (base batch size)")
    ax.set_xticks(xs)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
