"""The report of `bench.candidates`, a function of its JSON: the latency table (ratios to the
0-candidate run of the same round), what each model did, what was measured, and notes. A committed
result renders again with ``render_markdown(json.loads(Path("bench/results/candidates.json").read_text()))``.
"""

from __future__ import annotations

import json
from typing import Any

from bench.candidates.runs import CHAMPION, LONG_EPOCH_S
from bench.report import command, fmt, provenance, ratio, render_markdown_table


def fill_ratios(runs: dict[str, dict[str, Any]], reference: str, names: list[str]) -> None:
    base = runs[reference]
    for name in names:
        run = runs[name]
        run["reference"] = reference
        run["p50_ratio"] = ratio(run.get("p50_ms"), base.get("p50_ms"))
        run["p99_ratio"] = ratio(run.get("p99_ms"), base.get("p99_ms"))


def latency_rows(runs: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = [["run", "events/s", "served / offered", "p50 ms", "p99 ms", "max ms", "p50 ratio", "p99 ratio",
             "events / batch", "CPU s"]]  # fmt: skip
    for name, r in runs.items():
        rows.append([
            name, f"{r['rate']:,.0f}", f"{r['served']:,} / {r['offered']:,}", fmt(r.get("p50_ms"), ".1f"),
            fmt(r.get("p99_ms"), ".1f"), fmt(r.get("max_ms"), ".1f"), fmt(r.get("p50_ratio"), ".3f"),
            fmt(r.get("p99_ratio"), ".3f"), fmt(r["micro_batches"]["mean_size"], ".1f"), f"{r['process_cpu_s']:.1f}",
        ])  # fmt: skip
    return rows


def lane_rows(runs: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = [["run", "model", "labelled scored", "learned (while serving)", "lag max", "lag at last prediction",
             "skipped batches", "errors"]]  # fmt: skip
    for name, r in runs.items():
        for model, m in r["models"].items():
            rows.append([
                name, model, f"{m['labelled_scored']:,} / {r['labelled_offered']:,}",
                f"{m['learned']:,} ({m['learned_while_serving']:,})", str(m["lag_batches_max"]),
                str(m["lag_batches_at_last_prediction"]), str(m["skipped_batches_total"]), str(m["errors"]),
            ])  # fmt: skip
    return rows


def describe(name: str, candidates: list[dict[str, Any]]) -> str:
    models = ", ".join(
        f"{c['name']} ({c.get('learner') or 'a fork of the champion'}"
        f"{' ' + json.dumps(c['params']) if c.get('params') else ''})"
        for c in candidates
    )
    return f"{name}: {models or 'the champion only'}"


def render_markdown(report: dict[str, Any]) -> str:
    p, m, runs = report["params"], report["machine"], report["runs"]
    md = ["# Serving latency against the number of candidates", ""]
    md.append(
        provenance(
            m,
            software=f"Bytewax {m['bytewax']}, River {m['river']}, torch {m['torch']}",
            command=command("bench.candidates"),
            total_s=report["total_s"],
            load="load average (1/5/15 min)",
        )
    )
    md += ["", *render_markdown_table(latency_rows(runs)), ""]
    md.append(
        "Ratios are to the 0-candidate run of the same round, or at the same rate, in this run (`reference` in "
        "the JSON); the rounds run interleaved (0, 2, 4, 0, 2, 4), so that load from elsewhere on the machine "
        "shows up as a round that disagrees rather than as a trend."
    )
    md += ["", "## What each model did (from the model-events topic)", "", *render_markdown_table(lane_rows(runs))]
    md += ["", "## What was measured", ""]
    md.append(
        f"- Champion `{CHAMPION}`, {p['workers']} worker, micro-batches of at most {p['batch_max_size']} / "
        f"{p['batch_max_wait_ms']:g} ms, fresh {p['partitions']}-partition topics and a fresh registry per run; "
        f"the same events (synthetic workload, half with an inline label) in every run at one rate. "
        + "; ".join(
            [*(describe(n, c) for n, c in p["candidate_sets"].items()), describe("slow case", p["slow_candidates"])]
        )
        + "."
    )
    md.append(
        f"- Latency as in `bench.e2e_kafka`: a producer thread sends the events at a fixed rate "
        f"({p['rate']:,.0f}/s for {p['duration_s']:g} s; the slow case {p['slow_events']:,} at "
        f"{p['slow_rate']:,.0f}/s, its reference {p['slow_reference_s']:g} s at that rate) after about "
        f"{p['warmup_s']:g} s of warm-up events that are not counted, while `run_daemon` tails in a thread; "
        "latency = the reader's receive time - the input's Kafka timestamp (`event_ts_ms`)."
    )
    promotion = (
        "stock promotion gate (`--promote`)"
        if p["promote"]
        else "`promotion.min_improvement: 0.99`, so no candidate is ever promoted and the same frozen, "
        "untrained champion serves in every run: only the candidates differ (`--promote` keeps the stock gate)"
    )
    md.append(
        f"- {promotion}; `promotion.max_lag_batches` "
        f"{next(iter(runs.values()))['settings']['promotion']['max_lag_batches']}. 'Labelled scored' counts the "
        "labelled examples a model scored out of those offered (warm-up included); 'learned' sums `n_learned` "
        "of its reports, in brackets those reported before the last measured prediction arrived (the rest "
        "was learned from its backlog after the stop, before the daemon returned)."
    )
    md += ["", "## Notes", "", *notes(report), ""]
    return "\n".join(md)


def slowest_seconds(run: dict[str, Any], n: int = 5) -> str:
    """The ``n`` seconds (of input time) with the slowest predictions, in time order: ``8 s: 1192 ms``."""
    worst = sorted(sorted(run["timeline"], key=lambda b: -b["max_ms"])[:n], key=lambda b: b["s"])
    return ", ".join(f"{b['s']} s: {b['max_ms']:.0f} ms" for b in worst)


def notes(report: dict[str, Any]) -> list[str]:
    runs = report["runs"]
    out = []
    for name, r in runs.items():
        where = f"; slowest seconds (second of input time: slowest prediction) {slowest_seconds(r)}"
        out.append(
            f"- `{name}`: {r['served']:,} of {r['offered']:,} events served ({r['missing']} missing, "
            f"{r['duplicates']} duplicates, {r['dead_letters']} dead letters); system part (input produced → "
            f"prediction produced) p50 / p99 {r['input_to_output_produced']['p50_ms']:.0f} / "
            f"{r['input_to_output_produced']['p99_ms']:.0f} ms{where}; {r['micro_batches']['count']} batches of "
            f"{r['micro_batches']['mean_size']} events on average; decisions {r['decisions'] or 'none'}; process CPU "
            f"{r['process_cpu_s']} s; `run_daemon` returned {r['stopped_after_stop_s']} s after the stop."
        )
    out.append(
        "- Bytewax snapshots every stateful step at each epoch end (`runtime.snapshot_interval_s`, 10 s by "
        "default), with or without a recovery store, on the worker thread that also serves; the train step's "
        "snapshot (`Lane.snapshot`) waits for each lane's job in progress and then copies its model."
        + (
            " The `no epoch end` run repeats the slow case with `runtime.snapshot_interval_s` "
            f"{LONG_EPOCH_S:g} s, so that no epoch ends while it runs: the difference between the two is what "
            "the snapshots cost serving."
            if any(name.endswith("no epoch end") for name in runs)
            else ""
        )
    )
    out.append(
        "- One process: the daemon, its thread lanes, the producer and the reader share the GIL and this "
        "machine's cores with the broker; process lanes run in processes of their own at SCHED_IDLE, forked "
        "from one server started at the beginning, as a daemon with these learners starts it. Numbers from one "
        "run, not averaged; p99 and max move between runs far more than p50."
    )
    return out
