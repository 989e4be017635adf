"""The report of `bench.moa`, a function of its JSON: a table per part, what the numbers say
(`verdicts`), and the Markdown. A committed result renders again with
``render_markdown(json.loads(Path("bench/results/moa.json").read_text()))``.
"""

from __future__ import annotations

from typing import Any

from bench.moa.calls import WAYS
from bench.report import command, fmt, markdown_section, provenance


def calls_rows(c: dict[str, Any]) -> list[list[str]]:
    out = [["learner", "events", *(f"{w} events/s" for w in WAYS), "batched / per-event", "by round",
            "batched / CapyMOA API", "same model (max prob. diff)"]]  # fmt: skip
    for name, r in c["learners"].items():
        m = r["median_events_per_s"]
        out.append([
            name, f"{r['events']:,}", *(fmt(m[w]) for w in WAYS), fmt(r["batched_over_per_event"], ".2f"),
            " / ".join(fmt(x, ".2f") for x in r["batched_over_per_event_by_round"]),
            fmt(r["batched_over_capymoa_api"], ".2f"),
            ", ".join(f"{w}: {v:.1e}" for w, v in r["same_model_max_abs_diff"].items()),
        ])  # fmt: skip
    return out


def throughput_rows(t: dict[str, Any]) -> list[list[str]]:
    hw, fork = t["headwater"], t["headwater"]["fork"]
    lat = hw["latency"]
    return [
        ["what", "value"],
        ["events offered (labelled, inline) / served / duplicates",
         f"{hw['offered']:,} / {hw['served']:,} / {hw['duplicates']:,}"],
        ["sent at (events/s)", fmt(lat.get("achieved_send_rate"))],
        ["latency p50 / p99 / max (ms)", f"{fmt(lat.get('p50_ms'), '.1f')} / {fmt(lat.get('p99_ms'), '.1f')} / "
                                         f"{fmt(lat.get('max_ms'), '.1f')}"],
        ["events per served micro-batch (mean / max)",
         f"{fmt(hw['micro_batches']['mean_size'], '.1f')} / {hw['micro_batches']['max_size']}"],
        ["fork: examples learned per s while the events were sent", fmt(fork["learned_per_s"])],
        ["fork: learned / skipped in that window (of ~offered)",
         f"{fork['learned_in_window']:,} / {fork['skipped_examples_in_window']:,} "
         f"(~{round(fork['window_s'] * t['rate']):,})"],
        ["fork: backlog (lag_batches) max / median in the window",
         f"{fork['lag_batches_max']} / {fmt(fork['lag_batches_in_window_median'], '.0f')}"],
        ["fork: skipped batches (examples), whole run", f"{fork['skipped_batches']:,} ({fork['skipped_examples']:,})"],
        ["fork: examples per s inside learn() (no scoring, no waiting)", fmt(fork["learn_only_per_s"])],
        ["machine CPUs busy, warm-up to stop (broker, producer, reader included)", fmt(hw["machine_cpus_busy"], ".2f")],
        ["decisions", ", ".join(f"{k} {v}" for k, v in sorted(hw["decisions"].items())) or "none"],
        ["CapyMOA alone: predict + train events/s (same events)", fmt(t["capymoa_alone"]["events_per_s"])],
        ["CapyMOA alone: events per s inside train()", fmt(t["capymoa_alone"]["train_only_per_s"])],
        ["the bridge alone: predict + learn events/s, batches of 100", fmt(t["bridge_alone"]["events_per_s"])],
        ["**fork learned/s ÷ CapyMOA alone events/s**", f"**{fmt(t['fork_learned_over_capymoa_alone'], '.3f')}**"],
        ["fork learned/s ÷ bridge alone events/s", fmt(t["fork_learned_over_bridge_alone"], ".3f")],
    ]  # fmt: skip


def startup_rows(st: dict[str, Any]) -> list[list[str]]:
    out = [["process", "wall s", "imports s", "build s", "predict + learn s", "peak RSS MiB"]]
    for name, m in st["median"].items():
        learn = fmt(m["learn_s"], ".2f") if m["learn_s"] > 0.001 else "-"
        out.append([name.replace("+ events", f"+ {st['events']:,} events"), fmt(m["wall_s"], ".2f"),
                    fmt(m["import_s"], ".2f"), fmt(m["build_s"], ".2f"), learn, fmt(m["max_rss_mib"])])  # fmt: skip
    return out


def verdicts(report: dict[str, Any]) -> list[str]:
    out = []
    if c := report.get("calls"):
        for name, r in c["learners"].items():
            out.append(
                f"- {name}: batched calls {fmt(r['batched_over_per_event'], '.2f')}x the events/s of per-event JPype "
                f"calls (median of {c['rounds']}), {fmt(r['batched_over_capymoa_api'], '.2f')}x CapyMOA's API; "
                + ("the faster is the batched bridge, which Headwater keeps."
                   if (r["batched_over_per_event"] or 0) >= 1 else "per-event calls were faster here.")
            )  # fmt: skip
    if t := report.get("throughput"):
        hw, fork, r = t["headwater"], t["headwater"]["fork"], t["fork_learned_over_capymoa_alone"]
        out.append(
            f"- ARF(10) as champion at {t['rate']:,.0f} events/s offered: "
            + ("every event served exactly once" if hw["every_event_exactly_once"] else
               f"NOT every event served exactly once ({hw['served']:,} of {hw['offered']:,}, "
               f"{hw['duplicates']} duplicates)")
            + f" (p50 {fmt(hw['latency'].get('p50_ms'), '.0f')} ms, p99 {fmt(hw['latency'].get('p99_ms'), '.0f')} ms)."
        )  # fmt: skip
        lag = fork["skipped_examples_in_window"]
        out.append(
            f"- The fork learned {fmt(fork['learned_per_s'])} examples/s against CapyMOA alone's "
            f"{fmt(t['capymoa_alone']['events_per_s'])} events/s (predict + train), ratio {fmt(r, '.3f')}: "
            + ("meets issue 14's 0.8." if (r or 0) >= 0.8 else f"below issue 14's 0.8 by {fmt(0.8 - (r or 0), '.3f')}.")
            + f" Offered {t['rate']:,.0f} labelled examples/s, it skipped {lag:,} examples in the window"
            f" ({fork['skipped_batches']:,} batches in the whole run) and was up to {fork['lag_batches_max']} batches "
            "behind"
            + (f"; CapyMOA alone does not reach {t['rate']:,.0f} events/s either."
               if t["capymoa_alone"]["events_per_s"] < t["rate"] else ".")
        )  # fmt: skip
    if st := report.get("startup"):
        m = st["median"]
        moa, river = m["build moa-arf(10)"], m["build river-logreg"]
        d_moa, d_river = m["daemon check, moa-arf(10)"], m["daemon check, river-logreg"]
        out.append(
            f"- Start-up: a fresh process that builds moa-arf(10) runs {fmt(moa['wall_s'], '.2f')} s from spawn to "
            f"exit, {fmt(moa['build_s'], '.2f')} s of it building (JVM start and bridge compile), against "
            f"{fmt(river['wall_s'], '.2f')} s for river-logreg ({fmt(river['build_s'], '.2f')} s building); it "
            f"peaks at {fmt(moa['max_rss_mib'])} MiB against {fmt(river['max_rss_mib'])} MiB. The daemon's start-up "
            f"check (whole process): {fmt(d_moa['wall_s'], '.2f')} s and {fmt(d_moa['max_rss_mib'])} MiB with moa-arf, "
            f"{fmt(d_river['wall_s'], '.2f')} s and {fmt(d_river['max_rss_mib'])} MiB with river-logreg."
        )  # fmt: skip
    return out


def render_markdown(report: dict[str, Any]) -> str:
    p, m = report["params"], report["machine"]
    md = ["# MOA learners behind Headwater: calls, throughput, start-up", ""]
    software = f"Bytewax {m['bytewax']}, River {m['river']}, CapyMOA {m['capymoa']} on {m['java']}"
    md.append(
        provenance(m, software=software, command=command("bench.moa", report["argv"]), total_s=report["total_s"])
        + f" Stream: {report['stream']}."
    )
    md += ["", "## What the numbers say", "", *verdicts(report), ""]
    if c := report.get("calls"):
        md += markdown_section(
            "Per-event JPype calls against the batched bridge",
            "Predict + learn on the first *events* of the stream, a fresh learner per run (same seed), median of "
            f"{c['rounds']} rounds after a JIT warm-up; batches of {c['batch']}. *same model*: the largest difference "
            "of the probabilities given to 500 probe events by the learner each way left, against the batched one.",
            calls_rows(c),
        )
    if t := report.get("throughput"):
        md += markdown_section(
            "ARF(10) as champion at 5,000 events/s against CapyMOA alone",
            f"{t['events']:,} events at {t['rate']:,.0f}/s ({p['duration_s']:g} s), each with its label inline, "
            "through a daemon with Headwater's default model configuration (one fork candidate, shadow gate, "
            f"lanes `{t['headwater']['settings']['runtime']['lanes']}` → "
            f"{'processes' if t['headwater']['settings']['candidates_in_processes'] else 'threads'} here); CapyMOA "
            "alone and the bridge alone on the same events afterwards, in the same process (module docstring).",
            throughput_rows(t),
        )
    if st := report.get("startup"):
        md += markdown_section(
            "Start-up time and memory, River against MOA",
            f"Fresh `python -c` processes, median of {st['reps']}; wall = spawn to exit; peak RSS = the child's "
            f"`VmHWM` at its end (the JVM runs inside the process; JVM arguments: `{st['capymoa_jvm_args']}`).",
            startup_rows(st),
        )
    return "\n".join(md)
