"""The report of `bench.e2e_kafka`: its numbers (`Report`, the JSON as written), the table printed
and put in the Markdown, and the Markdown, which says what was measured and what the numbers mean.
Everything here is a function of the JSON, so a committed result can be rendered again::

    report = Report(**json.loads(Path("bench/results/e2e_kafka.json").read_text()))
    markdown = render_markdown(report, table(report))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.e2e_kafka.systems import IN_TS_HEADER
from bench.report import command, fmt, provenance, ratio, render_markdown_table


@dataclass
class Report:
    params: dict[str, Any]
    machine: dict[str, Any]
    throughput: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)
    ratios: dict[str, float | None] = field(default_factory=dict)
    total_s: float = 0.0


def fill_ratios(report: Report) -> None:
    tp, lat = report.throughput, report.latency
    report.ratios = {
        "events_per_s": ratio(tp["headwater"]["events_per_s"], tp["baseline"]["events_per_s"]),
        "p50_latency": ratio(lat["headwater"].get("p50_ms"), lat["baseline"].get("p50_ms")),
        "p99_latency": ratio(lat["headwater"].get("p99_ms"), lat["baseline"].get("p99_ms")),
    }


def table(report: Report) -> list[list[str]]:
    tp, lat, r = report.throughput, report.latency, report.ratios
    hw_tp, base_tp, hw_lat, base_lat = tp["headwater"], tp["baseline"], lat["headwater"], lat["baseline"]

    def row(metric: str, hw: float | None, base: float | None, spec: str, by: float | str | None = "") -> list[str]:
        return [metric, fmt(hw, spec), fmt(base, spec), by if isinstance(by, str) else fmt(by, ".3f")]

    steady = "first_to_last_output_events_per_s"
    rows = [["metric", "headwater", "baseline", "headwater / baseline"]]
    rows.append(row("throughput (events/s)", hw_tp["events_per_s"], base_tp["events_per_s"], ",.0f", r["events_per_s"]))
    rows.append(
        row(
            "throughput, first to last output (events/s)",
            hw_tp[steady],
            base_tp[steady],
            ",.0f",
            ratio(hw_tp[steady], base_tp[steady]),
        )
    )
    rows.append(row("throughput wall time (s)", hw_tp["seconds"], base_tp["seconds"], ".2f"))
    for q, key in (("p50", "p50_latency"), ("p99", "p99_latency")):
        rows.append(row(f"latency {q} (ms)", hw_lat.get(f"{q}_ms"), base_lat.get(f"{q}_ms"), ".1f", r[key]))
    rows.append(row("latency max (ms)", hw_lat.get("max_ms"), base_lat.get("max_ms"), ".1f"))
    return rows


def render_markdown(report: Report, rows: list[list[str]]) -> str:
    p, m = report.params, report.machine
    tp, lat = report.throughput, report.latency
    md = ["# End-to-end through Kafka: Headwater vs a plain confluent-kafka loop", ""]
    md.append(
        provenance(
            m,
            software=f"confluent-kafka {m['confluent_kafka']} / librdkafka {m['librdkafka']}, Bytewax {m['bytewax']}",
            command=command("bench.e2e_kafka"),
            total_s=report.total_s,
            broker="single local broker, KRaft",
            load="load average (1/5/15 min)",
            dirty_note=False,
        )
    )
    md += ["", *render_markdown_table(rows), ""]
    md.append("## What was measured")
    md.append("")
    md.append(
        f"- **Throughput**: {p['n_events']:,} events pre-loaded on a fresh {p['partitions']}-partition "
        f"topic; each system reads all of it from the beginning and writes one output per event. Headwater: "
        f"wall time of `run_daemon` with `runtime.tail: false` (start-up, consumer/producer creation and "
        f"the final acknowledged flush included; imports done beforehand), learner `{p['learner']}`, "
        f"{p['workers']} worker(s). Baseline: wall time of the consume/produce loop until {p['n_events']:,} "
        f"messages are consumed, produced and acknowledged. Both read the *same* events topic. Every output "
        f"was read back and counted (headwater: {tp['headwater']['unique_outputs']:,} predictions, "
        f"{tp['headwater']['dead_letters']} dead letters; baseline: {tp['baseline']['unique_outputs']:,})."
    )
    md.append(
        f"- **Latency**: a producer thread sends {p['n_latency_events']:,} events at {p['rate']:,.0f}/s "
        f"({p['duration_s']:g} s) to a fresh events topic while the system runs in a thread (Headwater with "
        f"`runtime.tail: true`); a reader thread consumes the output topic. Latency = reader receive time - "
        f"the input message's Kafka timestamp (set by the input producer at `produce()`, linger.ms=1): "
        f"Headwater's `event_ts_ms`, the baseline's `{IN_TS_HEADER}` header. About {p['warmup_s']:g} s of "
        f"warm-up events (other ids) go first and are not counted. Achieved send rate: headwater "
        f"{lat['headwater']['achieved_send_rate']:,.0f}/s, "
        f"baseline {lat['baseline']['achieved_send_rate']:,.0f}/s. Once every output was in, the stop "
        f"event was set and the system's thread joined."
    )
    md.append(
        f"- **Baseline**: `Consumer.consume({p['batch_max_size']}, {p['batch_max_wait_ms'] / 1000:g})` over "
        f"assigned partitions (no group rebalance, like Bytewax's source), `Producer.produce` of each "
        f"message "
        f"(key and value unchanged, input timestamp in a header) with Headwater's sink settings "
        f"(enable.idempotence, acks=all, linger.ms=2, compression lz4), `flush()` per consumed batch. "
        f"Headwater uses the same micro-batch knobs (max_size {p['batch_max_size']}, "
        f"max_wait_ms {p['batch_max_wait_ms']:g}) and, on top, decodes and validates each event, predicts, "
        f"learns from the inline labels (half the events), and writes a model event per micro-batch."
    )
    md.append(
        "- Everything runs in one Python process on the same machine as the broker, one system at a time; "
        "the producer and reader threads share the process (and the GIL) with the system under test, for "
        "both systems alike. Process CPU seconds (all threads) are in the JSON. Numbers from one run, not "
        "averaged."
    )
    md.append("")
    md.extend(observations(report))
    return "\n".join(md)


def observations(report: Report) -> list[str]:
    p, tp, lat = report.params, report.throughput, report.latency
    hw, base = lat["headwater"], lat["baseline"]
    hw_stage, base_stage = hw["input_to_output_produced"], base["input_to_output_produced"]
    hw_del, base_del = hw["output_produced_to_received"], base["output_produced_to_received"]
    window = p["rate"] * p["batch_max_wait_ms"] / 1000
    out = ["## Observations", ""]
    out.append(
        f"- Where the latency goes (p50 / p99, ms): input produced → output produced: headwater "
        f"{hw_stage['p50_ms']:.0f} / {hw_stage['p99_ms']:.0f}, baseline {base_stage['p50_ms']:.0f} / "
        f"{base_stage['p99_ms']:.0f}; output produced → received: headwater {hw_del['p50_ms']:.0f} / "
        f"{hw_del['p99_ms']:.0f}, baseline {base_del['p50_ms']:.0f} / {base_del['p99_ms']:.0f}."
    )
    hw_mb, base_mb = hw["micro_batches"], base["micro_batches"]
    line = (
        f"- Micro-batches in the latency phase: headwater {hw_mb['count']} batches of {hw_mb['mean_size']} "
        f"events on average (largest {hw_mb['max_size']}); baseline {base_mb['count']} of "
        f"{base_mb['mean_size']} (largest {base_mb['max_size']}). At {p['rate']:,.0f} events/s a "
        f"{p['batch_max_wait_ms']:g} ms window holds about {window:.0f} events."
    )
    if hw_mb["mean_size"] is not None and hw_mb["mean_size"] > 2 * max(window, 1):
        line += (
            " Headwater's served batches (predictions sharing a millisecond) are far larger than the window: "
            "serving takes what a partition's poll gives at once (`batching.max_wait_ms` gathers only training "
            "jobs), so a batch is what arrived while the worker served, produced and flushed the one before "
            "(sharing the GIL with the learning threads), and an event waits about half of that."
        )
    out.append(line)
    out.append(
        f"- Throughput wall time includes start-up: the first output came "
        f"{tp['headwater']['first_output_after_s']:.2f} s (headwater) and "
        f"{tp['baseline']['first_output_after_s']:.2f} s (baseline) after the start; first to last output "
        f"took {tp['headwater']['output_span_s']:.2f} s and {tp['baseline']['output_span_s']:.2f} s."
    )
    out.append(
        f"- p99 and max rest on the slowest 1% ({hw['outputs'] // 100} events) of one "
        f"{p['duration_s']:g} s window: a single stall of the broker's acknowledgements on these shared "
        f"cores moves them, so they vary between runs far more than p50 does (the per-stage split above "
        f"shows which side a stall hit)."
    )
    out.append(
        f"- Stopping: after the stop event was set, headwater's `run_daemon` returned in "
        f"{hw['stopped_after_stop_s']} s, the baseline loop in {base['stopped_after_stop_s']} s "
        f"(bound: {p['timeout_s']:g} s)."
    )
    out.append("")
    return out
