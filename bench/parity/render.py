"""The report of `bench.parity`, a function of its JSON: the main table (alone, served, lane, and their
gaps), the table against CapyMOA alone for MOA learners, what the numbers say (`verdicts`: issue 13's
bar against the learner alone, issue 14's against CapyMOA alone, and where the gaps come from), and
the Markdown. A committed result renders again with ``render_markdown(json.loads(...))``.
"""

from __future__ import annotations

import json
from typing import Any

from bench.report import command, provenance, render_markdown_table
from bench.streams import BUILT_IN


def f_pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def f_pts(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.2f}"


def f_rec(r: dict[str, Any]) -> str:
    if not r["recovery"]:
        return "-"
    return " / ".join("never" if x["events"] is None else f"{x['events']:,}" for x in r["recovery"])


def rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """The main table; the River pvs and CapyMOA alone columns only where some result has them."""
    pvs = any(r["river_pvs"] for r in results)
    capy = any(r.get("capymoa_alone") for r in results)
    out = [["learner", "stream", "alone", *(["River pvs"] if pvs else []), *(["CapyMOA alone"] if capy else []),
            "served", "gap served", "worst alone", "worst served", "gap worst", "recovery alone", "recovery served",
            "alone at label", "lane", "gap lane", "promotions"]]  # fmt: skip
    for r in results:
        a, h = r["alone"], r["headwater_served"]
        c = r.get("capymoa_alone")
        out.append([
            r["learner"], r["stream"], f_pct(a["overall"]),
            *([f_pct(r["river_pvs"]["overall"]) if r["river_pvs"] else "n/a"] if pvs else []),
            *([f_pct(c["overall"]) if c else "n/a"] if capy else []), f_pct(h["overall"]),
            f_pts(r["gap_served_overall_pts"]), f_pct(a["worst_window"] and a["worst_window"]["accuracy"]),
            f_pct(h["worst_window"] and h["worst_window"]["accuracy"]), f_pts(r["gap_served_worst_pts"]),
            f_rec(a), f_rec(h), f_pct(a["scored_at_label"]), f_pct(r["lane_prequential_overall"]),
            f_pts(r["gap_lane_at_label_pts"]), str(r["headwater"]["decisions"].get("promote", 0) - 1),
        ])  # fmt: skip
    return out


def moa_fails(r: dict[str, Any]) -> bool:
    """Issue 14's parity bar, against CapyMOA alone: at most 0.5 point below overall, 3 in the worst window."""
    return (r["gap_served_vs_capymoa_overall_pts"] or 0) < -0.5 or (r["gap_served_vs_capymoa_worst_pts"] or 0) < -3


def moa_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """MOA learners against CapyMOA's classifier alone (issue 14's reference)."""
    out = [["learner", "stream", "CapyMOA alone", "served", "gap served", "worst CapyMOA", "worst served",
            "gap worst", "recovery CapyMOA", "recovery served", "CapyMOA at label", "lane", "gap lane",
            "alone - CapyMOA", "bar"]]  # fmt: skip
    for r in results:
        c, h = r.get("capymoa_alone"), r["headwater_served"]
        if not c:
            continue
        out.append([
            r["learner"], r["stream"], f_pct(c["overall"]), f_pct(h["overall"]),
            f_pts(r["gap_served_vs_capymoa_overall_pts"]), f_pct(c["worst_window"] and c["worst_window"]["accuracy"]),
            f_pct(h["worst_window"] and h["worst_window"]["accuracy"]), f_pts(r["gap_served_vs_capymoa_worst_pts"]),
            f_rec(c), f_rec(h), f_pct(c["scored_at_label"]), f_pct(r["lane_prequential_overall"]),
            f_pts(r["gap_lane_vs_capymoa_at_label_pts"]), f_pts(r["gap_alone_vs_capymoa_pts"]),
            "no" if moa_fails(r) else "yes",
        ])  # fmt: skip
    return out


def ref_gaps(r: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """Served overall, served worst window and lane gaps against the pair's reference: CapyMOA alone
    for MOA learners, the learner alone otherwise."""
    via = "_vs_capymoa" if r.get("capymoa_alone") else ""
    return r[f"gap_served{via}_overall_pts"], r[f"gap_served{via}_worst_pts"], r[f"gap_lane{via}_at_label_pts"]


def verdicts(results: list[dict[str, Any]], gate: str = "shadow", max_wait_ms: float = 5.0) -> list[str]:
    """What the numbers say, from the numbers: issue 13's bar (0.5 point overall, 3 in the worst window)
    against the learner alone, and issue 14's, the same against CapyMOA alone, for MOA learners."""
    out = []
    built_in = [r for r in results if r["learner"] in BUILT_IN]
    moa = [r for r in results if r.get("capymoa_alone")]
    groups = [(built_in, "Issue 13's bar", "alone", "built-in learners"),
              (moa, "Issue 14's bar", "CapyMOA alone", "MOA learners, against CapyMOA's classifier alone")]  # fmt: skip
    for group, bar, ref, which in groups:
        if not group:
            continue
        fails = [r for r in group if (ref_gaps(r)[0] or 0) < -0.5 or (ref_gaps(r)[1] or 0) < -3]
        # "at least as well": better than the reference is no gap
        lane_fails = [r for r in group if ref_gaps(r)[2] is None or abs(ref_gaps(r)[2] or 0) > 0.5]
        out.append(
            f"- {bar} for the served predictions (at most 0.5 point below {ref} overall and 3 points in the worst "
            f"window, {which}): {len(group) - len(fails)} of {len(group)} (learner, stream) pairs meet it"
            + ("; " + ", ".join(f"{r['learner']} on {r['stream']} ({f_pts(ref_gaps(r)[0])} overall, "
                                f"{f_pts(ref_gaps(r)[1])} worst)" for r in fails) + " do not." if fails else ".")
        )  # fmt: skip
        out.append(
            "- The learner in its lane (independent of when it is promoted). A lane scores each example when its "
            "label arrives, just before learning it, not when it was served: with labels 200 events late that is a "
            f"model 200 events fresher than the one that predicted, so it is compared with {ref} scored the "
            f"same way ('{'CapyMOA' if ref != 'alone' else 'alone'} at label'), not with '{ref}': "
            f"{len(group) - len(lane_fails)} of {len(group)} pairs within 0.5 point of it"
            + ("; " + ", ".join(f"{r['learner']} on {r['stream']} ({f_pts(ref_gaps(r)[2])})" for r in lane_fails)
               + " are not." if lane_fails else ".")
        )  # fmt: skip
    if moa:
        apart = [r for r in moa if abs(r["gap_alone_vs_capymoa_pts"] or 0) > 0]
        out.append(
            "- Headwater's MOA wrapper alone (one event per call, through the bridge) against CapyMOA's classifier "
            "alone, same seed, same delay: "
            + ("the same accuracy to the last example on every pair." if not apart else
               ", ".join(f"{r['learner']} on {r['stream']} ({f_pts(r['gap_alone_vs_capymoa_pts'])})" for r in apart)
               + f"; {len(moa) - len(apart)} of {len(moa)} pairs identical.")
        )  # fmt: skip
        lagging = [r for r in moa if r["headwater"]["lanes"].get("fork", {}).get("lag_max", 0) > 2]
        if lagging:
            out.append(
                "- The fork's lane was at times more than 2 batches behind the input (it never skips here; the "
                "served model is then older by as much): "
                + ", ".join(f"{r['learner']} on {r['stream']} (backlog up to "
                            f"{r['headwater']['lanes']['fork']['lag_max']} batches)" for r in lagging) + "."
            )  # fmt: skip
    served_behind = [r for r in results if (ref_gaps(r)[0] or 0) < (ref_gaps(r)[2] or 0) - 0.5]
    if served_behind:
        out.append(
            (
                "- Where the served gap is larger than the lane's, the served model is older than the learner: a "
                "frozen snapshot of the fork, replaced each time the fork has been not worse over "
                "`refresh_samples` paired examples (each promotion counted in the table), so it predicts with "
                "what the fork knew one refresh, plus the time a label takes through the pipeline (a micro-batch, "
                "the join, the lane, the train step's next look at its results, the board), before. Overall "
                "accuracy counts from event 0: the untrained first champion serves until the first refresh, "
                "some 300 events after the first label; alone learns from the first label on: "
                if gate == "refresh"
                else "- Where the served gap is larger than the lane's, the served model is older than the learner: "
                "the fork's state as of the last batch the lane handed to serving (after every batch it learns, "
                "as its copy budget allows; from a process lane, as far as its process has learned when asked), "
                "plus the time a label takes through the pipeline (a "
                "micro-batch, the join, the lane); the champion serves whenever the fork's running trial "
                "shows it more than `refresh_margin` below the champion (the routes in Runs): "
                if gate == "live"
                else "- Where the served gap is larger than the lane's, the difference is promotion: the served "
                "model is a frozen snapshot that is replaced only when the fork is significantly better on paired "
                "evidence (each promotion counted in the table), so between promotions serving does not get the "
                "fork's recent learning: "
            )
            + ", ".join(f"{r['learner']} on {r['stream']} ({f_pts(ref_gaps(r)[0])} served vs "
                        f"{f_pts(ref_gaps(r)[2])} lane)" for r in served_behind) + "."
        )  # fmt: skip
    lane_apart = [r for r in results if abs(ref_gaps(r)[2] or 0) > 0.5]
    if lane_apart:
        out.append(
            "- Where the lane itself is apart from its reference (either way), the learner learns differently behind "
            "Headwater than one row at a time: it is handed a micro-batch per call (torch-mlp takes one optimiser "
            "step per `minibatch` events of it, in order, where alone it takes one per event; River and MOA "
            "learners learn event by event within the batch, as alone), it is re-forked "
            "from the champion after a refused trial without live refresh or after failing the golden set "
            "(losing what it learned since: `refuse` in the decisions below), or it skipped batches (none here: "
            "`skipped` in the JSON). And a lane scores a whole job "
            "before it learns any of it: the larger the jobs, the older the model that scores their last examples. "
            f"Jobs grow when the serving thread has more to do than the {max_wait_ms:g} ms a micro-batch waits "
            "allow (the GIL is "
            "shared by serving, the champion's lane and the fork's): labelled examples per job in brackets: "
            + ", ".join(
                f"{r['learner']} on {r['stream']} ({f_pts(ref_gaps(r)[2])}; "
                f"{r['headwater']['lanes'].get('fork', {}).get('batch_mean')})"
                for r in lane_apart
            )
            + "."
        )
    return out


def moa_versions_text(m: dict[str, Any]) -> str:
    return f", CapyMOA {m['capymoa']} on {m['java']}" if m.get("java") else ""


def render_markdown(report: dict[str, Any]) -> str:
    p, m, results = report["params"], report["machine"], report["results"]
    md = ["# Parity: a learner behind Headwater against the same learner alone", ""]
    software = f"Bytewax {m['bytewax']}, River {m['river']}, torch {m['torch']}{moa_versions_text(m)}"
    md.append(
        provenance(m, software=software, command=command("bench.parity", report["argv"]), total_s=report["total_s"])
        + f" {p['events']:,} events per stream at {p['rate']:,.0f}/s, labels {p['delay']} events late on their own "
        f"topic; worst window {p['window']:,} events after a {p['warmup']:,}-event warm-up."
    )
    md += ["", *render_markdown_table(rows(results)), ""]
    moa = moa_rows(results)
    if len(moa) > 1:
        md += ["Against CapyMOA's classifier alone (MOA learners, issue 14):", "", *render_markdown_table(moa), ""]
    md.append(
        "Accuracies in %, gaps in points (Headwater - alone). *alone*: the learner fed one event at a time with "
        "the same delay (`river.stream.simulate_qa`); *River pvs*: `river.evaluate.progressive_val_score` with "
        "the same delay, on River models; *served*: every prediction the daemon served, read back from Kafka; "
        "*lane*: the fork's own prequential accuracy, from its `report` records (scored when the label arrives), "
        "next to *alone at label*, the alone side scored the same way; *gap lane*: lane - alone at label; "
        "*CapyMOA alone* (MOA learners): CapyMOA's classifier itself, built as `learners.moa` builds it (same "
        "class, schema, seed and parameters), fed one event at a time with the same delay; *alone - CapyMOA*: "
        "Headwater's wrapper alone against it; *bar*: within 0.5 point of CapyMOA alone overall and 3 in the worst "
        "window; "
        "overall from event 0; recovery: "
        "events after each abrupt change until a 1,000-event window is within 2 points of the level the "
        "accuracy settles at (module docstring); promotions: fork promotions after the first champion."
    )
    says = verdicts(results, p.get("gate", "shadow"), p.get("max_wait_ms", 20.0))
    md += ["", "## What the numbers say", "", *says, ""]
    md += ["## Headwater's configuration for the served side", ""]
    served = p["served_config"]
    md.append(
        "The champion serves and never learns; candidates learn. Here one fork (the champion's state, learning "
        f"on, forked again from each new champion) in a {served['runtime']['lanes']} lane that never skips a batch: "
        f"`model.candidates: {json.dumps(served['candidates'])}`, `promotion: {json.dumps(served['promotion'])}`, "
        f"`runtime: {json.dumps(served['runtime'])}`, micro-batches of at most 512 records or "
        f"{p.get('max_wait_ms', 20.0):g} ms. "
        + (
            "With `gate: refresh` the fork replaces the champion as soon as it is not worse than it over "
            "`refresh_samples` paired examples (`evaluators.RefreshEvaluator`), so the served model is at most "
            "about that many labelled examples behind the learner."
            if p.get("gate", "shadow") == "refresh"
            else "With live refresh (`gate: refresh`, `promotion.live_refresh: true`) the fork's lane also hands its "
            "model's state to serving after the batches it learns (a copy, or for a model slower to copy than to "
            "teach two replicas that catch up in turn: `dataflows/lanes/live.py`; from a process lane nothing is "
            "handed over: serving asks the fork's process, which answers with the model it is teaching, "
            "`dataflows/lanes/process.py` and `lanes/ask.py`), which serves in place of the champion "
            "while the fork's refresh trial shows it not worse (`RefreshEvaluator.may_serve`; a refused fork "
            "learns on and serves again once 30 examples of its new trial show it so, also while it waits to be "
            "judged again); "
            "promotions go on as with `gate: refresh`, every `refresh_samples` paired examples."
            if p.get("gate", "shadow") == "live"
            else "With the shadow gate, even at its most permissive, a promotion needs the fork to be "
            "*significantly* better than the frozen champion (the confidence sequence's lower bound above 0), so "
            "in a stable stretch the champion falls behind the fork until the difference is large enough to show."
        )
    )
    md += ["", "## Streams", ""]
    md += [f"- `{name}`: {d}" for name, d in report["streams"].items()]
    md += ["", "## Runs", ""]
    for r in results:
        hw = r["headwater"]
        fork = hw["lanes"].get("fork", {})
        md.append(
            f"- {r['learner']} on {r['stream']}: {hw['served']:,} of {hw['offered']:,} events served "
            f"({hw['duplicates']} duplicates, {hw['dead_letters']} dead letters), sent at {hw['achieved_rate']:,.0f} "
            f"events/s; {hw['versions_served']} versions served"
            + (f" (by route: {hw['routes']})" if "live" in hw.get("routes", {}) else "")
            + f"; decisions {hw['decisions']}; drift verdicts "
            f"{hw['drift_verdicts']}; fork: {fork.get('labelled', 0):,} labelled scored, {fork.get('learned', 0):,} "
            f"learned, {fork.get('skipped', 0)} batches skipped, lag at most {fork.get('lag_max', 0)}"
            + (
                f", {fork['batch_mean']} labelled examples per job (at most {fork['batch_max']})"
                if fork.get("batch_mean")
                else ""
            )
            + "; alone took "
            f"{r['alone']['seconds']} s"
            + (f", CapyMOA alone {r['capymoa_alone']['seconds']} s." if r.get("capymoa_alone") else ".")
        )
    md.append("")
    return "\n".join(md)
