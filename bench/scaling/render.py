"""The report of `bench.scaling`: the ratios to the loop, a table per sweep (printed and in the
Markdown), and the Markdown, which says what was measured and what the numbers mean. Everything here
is a function of the JSON, so a committed result renders again::

    report = json.loads(Path("bench/results/scaling.json").read_text())
    markdown = render_markdown(report)
"""

from __future__ import annotations

from typing import Any

from bench.report import command, fmt, provenance, ratio, render_markdown_table, render_text

STEADY = "first_to_last_output_events_per_s"
TITLES = {
    "processes": "Processes (`--processes`)",
    "workers": "Workers per process (`runtime.workers`)",
    "batch_size": "Micro-batch size (`batching.max_size`)",
    "candidates": "Candidates (`model.candidates`)",
}
COLUMNS = {"processes": "processes", "workers": "workers", "batch_size": "batch size", "candidates": "candidates"}


def loop_of(report: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The loop's results at the run's micro-batch size."""
    return dict(report["loop"][str(run["config"]["batch_size"])])


def fill_ratios(report: dict[str, Any]) -> None:
    """Each run's events/s, p50 and p99 as ratios to the loop's at the same micro-batch size."""
    for run in report["runs"].values():
        loop = loop_of(report, run)
        tp, lat = run["throughput"], run["latency"]
        run["ratios"] = {
            "events_per_s": ratio(tp[STEADY], loop["throughput"][STEADY]),
            "p50_latency": ratio(lat.get("p50_ms"), loop["latency"].get("p50_ms")),
            "p99_latency": ratio(lat.get("p99_ms"), loop["latency"].get("p99_ms")),
        }


def sweep_rows(report: dict[str, Any], factor: str) -> list[list[str]]:
    """One row per value of ``factor``: throughput, start-up, latency, each against the loop."""
    base = report["params"]["base"][factor]
    rows = [[COLUMNS[factor], "events/s", "x loop", "start-up s", "CPUs busy", "p50 ms", "p99 ms", "p99 x loop",
             "stop s"]]  # fmt: skip
    for value, label in report["sweeps"][factor]:
        run = report["runs"][label]
        tp, lat, r = run["throughput"], run["latency"], run["ratios"]
        rows.append([
            f"{value} (base)" if value == base else str(value),
            fmt(tp[STEADY]),
            fmt(r["events_per_s"], ".3f"),
            fmt(tp["startup_s"], ".2f"),
            fmt(tp["machine_cpus_busy"], ".2f"),
            fmt(lat.get("p50_ms"), ".1f"),
            fmt(lat.get("p99_ms"), ".1f"),
            fmt(r["p99_latency"], ".2f"),
            fmt(lat["stopped_after_sigterm_s"], ".2f"),
        ])  # fmt: skip
    return rows


def loop_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = [["loop, batch size", "events/s", "start-up s", "p50 ms", "p99 ms"]]
    for batch, loop in sorted(report["loop"].items(), key=lambda kv: int(kv[0])):
        tp, lat = loop["throughput"], loop["latency"]
        rows.append([batch, fmt(tp[STEADY]), fmt(tp["first_output_after_s"], ".2f"), fmt(lat.get("p50_ms"), ".1f"),
                     fmt(lat.get("p99_ms"), ".1f")])  # fmt: skip
    return rows


def all_rows(report: dict[str, Any]) -> list[tuple[str, list[list[str]]]]:
    """Every table, titled: one per sweep, then the loop's."""
    return [(TITLES[f], sweep_rows(report, f)) for f in report["sweeps"]] + [("The plain loop", loop_rows(report))]


def failures(report: dict[str, Any]) -> list[str]:
    """Runs whose daemon did not exit 0 within the bound after SIGTERM, or that served an event twice."""
    return [label for label, run in report["runs"].items()
            if not run["latency"]["exited_0_within_bound"] or run["latency"]["duplicates"]]  # fmt: skip


def render_markdown(report: dict[str, Any]) -> str:
    p, m = report["params"], report["machine"]
    base = p["base"]
    md = ["# Scaling: Headwater's events/s and latency against processes, workers, batch size, candidates", ""]
    md.append(
        provenance(
            m,
            software=f"confluent-kafka {m['confluent_kafka']} / librdkafka {m['librdkafka']}, Bytewax {m['bytewax']}",
            command=command("bench.scaling", p.get("argv")),
            total_s=report["total_s"],
            broker="single local broker, KRaft, on the same machine",
            load="load average (1/5/15 min)",
        )
    )
    md.append("")
    md.append(
        f"**One factor at a time, not a grid.** The base point is {base['processes']} process, "
        f"{base['workers']} worker, micro-batches of {base['batch_size']} and {base['candidates']} candidate "
        f"(the default configuration's fork); each table below changes one factor and keeps the others at the "
        f"base, and the base row is the same run in every table. Interactions (say, 2 processes with 4 "
        f"candidates) are not measured. Every run gets fresh output topics of {p['partitions']} partitions and "
        f"a fresh registry; the learner is `{p['learner']}`. Numbers from one run each, not averaged."
    )
    md.append("")
    md.extend(machine_note(report))
    md.append(
        "Columns: **events/s** from the first to the last prediction of the throughput run (start-up "
        "excluded), **x loop** that over the plain loop's at the same batch size in this run, **start-up s** "
        "from the process start to the first prediction, **CPUs busy** the whole machine's busy CPUs from "
        "the first to the last prediction of the throughput run (broker included), **p50/p99 ms** event → "
        "prediction latency at "
        f"{p['rate']:,.0f} events/s, **p99 x loop** over the loop's p99 at the same batch size, **stop s** from "
        "SIGTERM to the process's exit."
    )
    md.append("")
    for title, rows in all_rows(report):
        md += [f"## {title}", "", *render_markdown_table(rows), ""]
    md += ["![events/s and p99 latency against each factor, the plain loop as a line](scaling.png)", ""]
    md.extend(method(report))
    md.extend(observations(report))
    return "\n".join(md)


def machine_note(report: dict[str, Any]) -> list[str]:
    """What this machine lets the process and worker sweeps show, said from its numbers."""
    cpus = report["machine"]["cpu_count"]
    threads = max(run["config"]["processes"] * run["config"]["workers"] for run in report["runs"].values())
    base = next(r for r in report["runs"].values() if r["config"] == report["params"]["base"])
    busy = base["throughput"]["machine_cpus_busy"]
    text = (
        f"**The machine.** {cpus} CPU(s), shared by the broker, the benchmark's producer and reader, and every "
        f"process of the daemon. A Headwater process serves under one GIL, so another process or worker can "
        f"only use what the first and the broker leave idle: from the first to the last prediction of the "
        f"base's throughput run the whole machine had {fmt(busy, '.2f')} of {cpus} CPUs busy. "
    )
    if cpus < threads + 2:  # a CPU per worker thread, and one for the broker and the load
        text += (
            f"With up to {threads} worker threads in all on {cpus} CPU(s), more processes cannot make Headwater "
            f"much faster here (at most by that idle share), and the process and worker sweeps mostly show what "
            f"a cluster costs (a longer start-up; a consumer, a producer and a serving-table follower per "
            f"process; Bytewax's exchange between them), not what it gains on a machine with a core per "
            f"worker, which this run did not measure."
        )
    else:
        text += (
            f"It has a CPU for each of the up to {threads} worker threads and one more for the broker and the "
            f"load, so the process and worker sweeps show what the extra processes gain, less what they cost."
        )
    return [text, ""]


def method(report: dict[str, Any]) -> list[str]:
    p = report["params"]
    return [
        "## What was measured",
        "",
        "- **Headwater** runs as an operator runs it: `python -m daemon.cli run --config <yaml>` in a "
        "process of its own, with `--processes P` for P > 1 (a local Bytewax cluster, `daemon/cluster.py`, "
        "whose supervisor starts and stops the members); the YAML is a `Settings` object dumped, "
        "`HEADWATER_*` and `BYTEWAX_*` are stripped from its environment, `runtime.lanes` is `auto`.",
        f"- **Throughput**: {p['n_events']:,} events (valid, half with an inline label) pre-loaded once on a "
        f"{p['partitions']}-partition topic; each configuration drains it from the beginning with "
        f"`runtime.tail: false` and exits. Every event must get exactly one prediction (read back and "
        f"counted) and the process must exit 0. Events/s runs from the first to the last prediction's Kafka "
        f"timestamp; the wall time from the start of the process to its exit (start-up and shutdown "
        f"included) is in the JSON.",
        f"- **Latency**: the method of `bench.e2e_kafka` (`bench/latency.py`): a trickle until the first "
        f"prediction, {p['warmup_s']:g} s of warm-up at the rate (other ids, not counted), then "
        f"{p['n_latency_events']:,} events at {p['rate']:,.0f}/s; latency = the reader's receive time - the "
        f"input's Kafka timestamp. Once every prediction is in, SIGTERM; the process must exit 0 within "
        f"{p['stop_timeout_s']:g} s.",
        f"- **The plain loop** (`bench.e2e_kafka`'s `throughput_baseline` and `latency_baseline`): "
        f"`Consumer.consume(batch size, {p['batch_max_wait_ms']:g} ms)` over the assigned partitions, "
        f"`produce` of each message with the sink's settings, `flush` per batch; measured at each batch size "
        f"of the batch sweep, on the same pre-loaded topic and the same events. It runs in a thread of the "
        f"benchmark's process (sharing a GIL with the producer and the reader), Headwater in processes of "
        f"its own. Headwater's `batching.max_wait_ms` is {p['batch_max_wait_ms']:g} too.",
        "- Candidate sets are `bench.candidates`'s: 1 = the fork (the default), 2 = the fork and river-logreg "
        "with lr 0.1, 4 = those, river-hoeffding and torch-mlp on the CPU; the stock promotion gate.",
        "",
    ]


def _runs(report: dict[str, Any], factor: str) -> list[tuple[int, dict[str, Any]]]:
    return [(value, report["runs"][label]) for value, label in report["sweeps"][factor]]


def observations(report: dict[str, Any]) -> list[str]:
    p = report["params"]
    out = ["## Observations", ""]
    base_value = p["base"]
    for factor in report["sweeps"]:
        runs = _runs(report, factor)
        if len(runs) < 2:
            continue
        base_run = next(r for v, r in runs if v == base_value[factor])
        base_rate = base_run["throughput"][STEADY]
        parts = []
        for value, run in runs:
            if value == base_value[factor]:
                continue
            tp, lat = run["throughput"], run["latency"]
            parts.append(
                f"{value}: {fmt(ratio(tp[STEADY], base_rate), '.2f')}x the base's events/s, start-up "
                f"{fmt(tp['startup_s'], '.1f')} s, p99 {fmt(lat.get('p99_ms'), '.0f')} ms"
            )
        out.append(
            f"- {COLUMNS[factor].capitalize()} against the base ({base_value[factor]}: "
            f"{fmt(base_rate)} events/s, start-up {fmt(base_run['throughput']['startup_s'], '.1f')} s, p99 "
            f"{fmt(base_run['latency'].get('p99_ms'), '.0f')} ms): " + "; ".join(parts) + "."
        )
    stops = [r["latency"]["stopped_after_sigterm_s"] for r in report["runs"].values()]
    measured = [s for s in stops if s is not None]
    failed = failures(report)
    out.append(
        f"- Stopping: after SIGTERM every daemon exited 0 within {p['stop_timeout_s']:g} s (slowest "
        f"{max(measured):.2f} s)."
        if not failed and measured
        else f"- **Not every run ended cleanly**: {', '.join(failed)} (exit code, or an event served twice, "
        "in the JSON; the daemon's log tail is there too)."
    )
    promotions = {label: r["throughput"]["decisions"] for label, r in report["runs"].items()}
    promoted = sorted(label for label, d in promotions.items() if d.get("promote"))
    out.append(
        "- Promotions during the throughput runs (a new champion serves from then on): "
        + (", ".join(f"{label}: {promotions[label]['promote']}" for label in promoted) or "none")
        + "."
    )
    out.append(
        "- p99 rests on the slowest 1 % of one window of a few seconds; a single stall of the broker on these "
        "shared CPUs moves it, so differences of a few ms between rows are within the noise."
    )
    out.append("")
    return out


def text_tables(report: dict[str, Any]) -> str:
    """What the command prints: every table, titled."""
    return "\n\n".join(f"{title}\n{render_text(rows)}" for title, rows in all_rows(report))
