"""What a search reports: its trials as rows and a table, the confirmation's estimates and verdicts, the summary files."""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from search import outcomes, race, stats
from search.race import CONFIRM_METRIC
from search.options import METRIC, TIME_ATTR
from search.outcomes import is_number
from search.state import ConfirmPlan
from search.tracking import NOTE_LIMIT, format_value
from trainables.metrics import (
    STUDENT_TEST_ACC, STUDENT_VAL_ACC, TEACHER_TEST_ACC, TEACHER_TEST_CMI, TEACHER_TEST_ECE, TEACHER_TEST_KL,
    TEACHER_TEST_NLL,
)


def trial_rows(grid, max_t: int, reference_acc: float | None = None) -> list[dict]:
    """Every trial of a Tune ResultGrid as {trial, state, outcome, config, metrics, curve, checkpoint}: the trials
    that ran to `max_t` first, best first, then the stopped ones, best first (their values are from earlier
    epochs); `curve` is the student's validation accuracy by epoch. `reference_acc` (the MLL teacher's validation
    accuracy) judges whether a trial's own teacher collapsed."""
    rows = []
    for result in grid:
        metrics = dict(result.metrics or {})
        rows.append({
            "trial": metrics.get("trial_id", Path(result.path).name if result.path else "?"),
            "state": outcomes.trial_state(metrics, result.error, max_t),
            "outcome": outcomes.outcome(metrics, result.error, max_t, reference_acc),
            "config": dict(result.config or {}),
            "metrics": {k: v for k, v in metrics.items() if k.startswith(("teacher_", "student_"))},
            "curve": student_curve(result.metrics_dataframe),
            "reason": metrics.get("failure_reason") or (str(result.error).strip().splitlines()[-1] if result.error else ""),
            "checkpoint": result.checkpoint,
        })
    return sorted(rows, key=rank)


def rank(row: dict) -> tuple[bool, float]:
    """Finished trials before stopped ones, each by their last value, best first; no value last."""
    value = row["metrics"].get(METRIC)
    return row["state"] != outcomes.COMPLETE, -value if is_number(value) else math.inf


def student_curve(frame) -> list[float]:
    """The student's validation accuracy after each of its epochs, from a trial's reported results."""
    if frame is None or TIME_ATTR not in frame or METRIC not in frame:
        return []
    student = frame[frame[TIME_ATTR] >= 1].drop_duplicates(TIME_ATTR, keep="last").sort_values(TIME_ATTR)
    return [float(v) for v in student[METRIC]]


def common_epoch(rows: Sequence[dict]) -> int | None:
    """The last student epoch every trial with a student reached, when some stopped before others; else None."""
    lengths = [len(row.get("curve") or []) for row in rows if row.get("curve")]
    return min(lengths) if lengths and min(lengths) < max(lengths) else None


def table(rows: Sequence[dict], params: Sequence[str], columns: Sequence[str], markdown: bool = False) -> str:
    """A plain-text table: trial, outcome (a stopped trial says at which epoch), searched parameters, result
    columns (but one no trial has a number in), and, when trials stopped at different epochs, every trial's value at the last epoch all reached."""
    common = common_epoch(rows)
    columns = [c for c in columns if any(is_number(row["metrics"].get(c)) for row in rows)]  # none NaN throughout
    header = ["trial", "outcome", *params, *columns, *([f"{METRIC} @ epoch {common}"] if common else [])]
    body = [[row["trial"] + (" (first point)" if row.get("first_point") else ""), outcome_cell(row),
             *(format_value(row["config"].get(p, "")) for p in params),
             *(format_value(row["metrics"].get(c, "")) for c in columns),
             *([format_value(row["curve"][common - 1]) if len(row.get("curve") or []) >= common else ""]
               if common else [])] for row in rows]
    return rendered([header, *body], markdown)


def outcome_cell(row: dict) -> str:
    """The outcome, with the epoch a stopped trial's values are from."""
    if row["outcome"] == outcomes.STOPPED and is_number(row["metrics"].get(TIME_ATTR)):
        return f"stopped at epoch {int(row['metrics'][TIME_ATTR])}"
    return row["outcome"]


def aligned(table: Sequence[Sequence[object]]) -> str:
    """Rows of cells as left-aligned columns under a dashed rule (the first row is the header)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(*table)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def markdown_table(table: Sequence[Sequence[object]]) -> str:
    """Rows of cells as a markdown table (the first row is the header): wraps in any markdown view, where a fixed-
    width block would be cut at the view's edge."""
    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(table[0]), line(["---"] * len(table[0])), *(line(row) for row in table[1:])])


def rendered(table: Sequence[Sequence[object]], markdown: bool) -> str:
    return markdown_table(table) if markdown else aligned(table)


TRIALS_HEADING = "## Search trials"  # the summary's last long section: where a description too long for a tag is cut


def answer_lines(analysis: dict | None) -> list[str]:
    """The answer in a few lines, for the top of the parent run's description (the lines MLflow shows before "Show
    more"): the confirmation's verdicts and whether it names a winner; without a confirmation, where to look."""
    if not analysis:
        return ["**Answer:** no confirmation stage ran; the best trial below was chosen on one seed's validation "
                "accuracy.", ""]
    lines = ["**Answer** (confirmation, paired seeds, test accuracy):", ""]
    lines += [f"- {comparison['verdict']}" for comparison in analysis["comparisons"]]
    if analysis.get("ties"):
        lines += [f"- {ties_text(analysis['ties'])}"]
    return [*lines, ""]


def run_description(summary_markdown: str, analysis: dict | None = None, limit: int = NOTE_LIMIT) -> str:
    """The parent run's description: the answer first, then the summary, whole when it fits MLflow's tag limit, else
    up to the trials table (the confirmation table comes before it), with where to read the rest."""
    text = "\n".join([*answer_lines(analysis), summary_markdown])
    if len(text) <= limit:
        return text
    note = "\n\n(The trials table and the rest: summary.md, an artifact of this run.)"
    head = text.split("\n" + TRIALS_HEADING, 1)[0]
    return head[:limit - len(note)] + note


def write_summary(folder: Path, summary: dict, text: str) -> list[Path]:
    """summary.json (machine-readable) and summary.md (what a person reads), written in place."""
    json_path, md_path = folder / "summary.json", folder / "summary.md"
    for path, payload in ((json_path, json.dumps(summary, indent=2, default=str)), (md_path, text)):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(payload)
        tmp.replace(path)
    return [json_path, md_path]


# The confirmation stage: per configuration, estimates over seeds; per configuration and baseline, verdicts.
# The teacher's test scores beside its student's: accuracy, then how good its probabilities are (CMI; NLL, ECE; and
# KL to the true posterior where the data knows it), each column shown when any configuration has it.
TEACHER_COLUMNS = {TEACHER_TEST_ACC: "teacher test acc %", TEACHER_TEST_CMI: "teacher test CMI",
                   TEACHER_TEST_NLL: "teacher test NLL", TEACHER_TEST_ECE: "teacher test ECE",
                   TEACHER_TEST_KL: "teacher KL to the true posterior"}
ESTIMATED = (STUDENT_TEST_ACC, STUDENT_VAL_ACC, *TEACHER_COLUMNS)


def short_name(metric: str) -> str:
    """student_test_acc -> test_acc; teacher metrics keep their prefix."""
    return metric.removeprefix("student_")


def confirmation_analysis(plan: ConfirmPlan, margin: float) -> dict:
    """Seeds, estimates and failures per configuration; the race's word for each against the best; every
    configuration against every baseline in one of the four words (`margin`: δ, a fraction)."""
    contest = race.race_of(plan, margin)
    configs = []
    for candidate in plan.candidates:
        runs = {seed: plan.result(candidate["key"], seed) for seed in plan.seeds}
        done = {seed: r["metrics"] for seed, r in runs.items() if r and r["state"] == "complete"}
        per_seed = {metric: {seed: m[metric] for seed, m in done.items() if metric in m} for metric in ESTIMATED}
        batched = {s for batch in plan.batches for k, s in batch.runs if k == candidate["key"]}
        batched |= {s for s, r in runs.items() if r is not None}
        decision = contest.decisions.get(candidate["key"])
        configs.append({
            **candidate, "seeds": per_seed[CONFIRM_METRIC],
            "estimates": {short_name(metric): stats.estimate(list(values.values())).as_dict()
                          for metric, values in per_seed.items() if values},
            "failed": {seed: f"{r['state']}: {r['reason']}" for seed, r in runs.items() if r and r["state"] != "complete"},
            "pending": sorted(s for s in batched if runs.get(s) is None),
            "runs": len(batched),
            "decision": decision.word if decision else None,
        })
    comparisons = []
    for config in (c for c in configs if not c["baseline"]):
        for baseline in (c for c in configs if c["baseline"]):
            difference, paired, among = compared(contest, config, baseline)
            comparisons.append({"key": config["key"], "baseline": baseline["key"], "difference": difference.as_dict(),
                                "word": stats.reading(difference, margin), "paired": paired,
                                "verdict": stats.verdict(config["label"], f"the {baseline['label']}", difference,
                                                         margin, paired, among)})
    labels = {c["key"]: c["label"] for c in configs}
    runs = sum(c["runs"] for c in configs)
    return {"data": plan.data, "seeds": plan.seeds, "metric": CONFIRM_METRIC, "configs": configs,
            "comparisons": comparisons, "margin": margin, "first_seeds": plan.first or len(plan.seeds),
            "max_seeds": max(plan.most, plan.first, len(plan.seeds)), "runs": runs, "finished": contest.finished,
            "ties": race_summary(contest, labels, margin)}


def compared(contest: race.Race, config: dict, baseline: dict) -> tuple[stats.Estimate, bool, int]:
    """`config` − `baseline` at the race's last look that compared both: the mean difference and its simultaneous
    interval (sd: of one difference, √2 · the pooled sd; n: the fewer seeds of the two), whether the seeds were
    paired, and how many configurations the interval was held together over. Without a look that measured noise,
    the mean difference over their common seeds, with no interval."""
    found = contest.interval(config["key"], baseline["key"])
    if found is None:
        common = sorted(set(config["seeds"]) & set(baseline["seeds"]))
        mean = stats.estimate([config["seeds"][s] - baseline["seeds"][s] for s in common]).mean
        return stats.Estimate(mean, math.nan, math.nan, math.nan, len(common)), True, 2
    (mean, low, high), look = found
    m = look.measured
    seeds = min(m.counts[config["key"]], m.counts[baseline["key"]])
    return (stats.Estimate(mean, math.sqrt(2) * m.noise.sd, low, high, seeds, 1 - look.alpha), m.noise.paired,
            len(m.order))


def race_summary(contest: race.Race, labels: dict[str, str], margin: float) -> dict | None:
    """The confirmation's last line as data: the best, the configurations the seeds cannot separate from it, those
    found worse, those it could not judge, and whether the set is decided or how many more seeds would decide it;
    None with fewer than two configurations or before any look measured the noise."""
    best = contest.best
    if best is None or len(contest.keys) < 2:
        return None
    contenders = contest.contenders()
    undecided = [k for k in contenders if getattr(contest.decisions.get(k), "word", stats.INCONCLUSIVE)
                 == stats.INCONCLUSIVE]
    return {"best": labels[best], "tied": [labels[k] for k in contenders[1:]],
            "words": {labels[k]: d.word for k, d in contest.decisions.items()}, "seeds": contest.last_measured.seeds,
            "worse": [labels[k] for k, d in contest.decisions.items() if d.word == stats.WORSE],
            "unjudged": [labels[k] for k in contest.unjudged()], "undecided": [labels[k] for k in undecided],
            "seeds_needed": race.seeds_needed(contest, margin) if undecided else None, "margin": margin,
            "finished": contest.finished}


def ties_text(ties: dict) -> str:
    """One line: whether the confirmation names a winner, a set decided equivalent, or a set it cannot yet decide."""
    margin, best, tied = stats.margin_text(ties["margin"]), ties["best"], ties["tied"]
    worse = f" Worse than it: {', '.join(ties['worse'])}." if ties["worse"] else ""
    worse += f" Not judged (no result, or seeds too unstable): {', '.join(ties['unjudged'])}." \
        if ties.get("unjudged") else ""
    if not ties.get("finished", True):
        worse += " The race is not finished: continue it with --resume."
    if not tied:
        return (f"{best} is better than every other configuration it was compared with (paired seeds, simultaneous "
                f"95% intervals).{worse}")
    if not ties["undecided"]:
        group = ", ".join([best, *tied])
        return (f"{group} are equivalent within {margin} (the seeds cannot separate them from {best}, the best "
                f"confirmed mean, and put each within {margin} of it).{worse}")
    needed = ties["seeds_needed"]
    more = (f"about {max(needed - ties['seeds'], 1)} more paired seeds each would decide {margin}" if needed else
            f"more than 10,000 paired seeds would be needed to decide {margin}")
    decided = [label for label in tied if label not in ties["undecided"]]
    equivalent = f" ({', '.join(decided)}: equivalent within {margin})" if decided else ""
    return (f"The seeds cannot separate {', '.join(tied)} from {best}, the best confirmed mean{equivalent}; "
            f"undecided: {more}.{worse}")


def percent(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.2f}"


def decimals(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"


def estimate_cell(estimate: dict | None, scale: Callable[[float | None], str] = percent) -> tuple[str, str]:
    """('mean ± sd', 'low to high') of an estimate, '-' where it is unknown."""
    if not estimate:
        return "-", "-"
    return f"{scale(estimate['mean'])} ± {scale(estimate['sd'])}", f"{scale(estimate['ci_low'])} to {scale(estimate['ci_high'])}"


def confirmation_table(analysis: dict, markdown: bool = False) -> str:
    """One row per configuration, baselines first: search-stage validation beside the confirmed mean, and the
    race's word for it against the best."""
    teacher = [m for m in TEACHER_COLUMNS if any(m in c["estimates"] for c in analysis["configs"])]
    validation = any("val_acc" in c["estimates"] for c in analysis["configs"])
    header = ["configuration", "search val", "seeds", "test acc % (mean ± sd)", "95% CI", "per seed",
              "against the best"]
    header += ["val acc % (mean ± sd)"] * validation + [TEACHER_COLUMNS[m] for m in teacher]
    body = []
    for c in analysis["configs"]:
        mean_sd, interval = estimate_cell(c["estimates"].get("test_acc"))
        row = [c["label"] + (" (baseline)" if c["baseline"] else ""), percent(c["search_val"]),
               str(len(c["seeds"])), mean_sd, interval, ", ".join(percent(v) for _, v in sorted(c["seeds"].items())),
               c.get("decision") or "-"]
        if validation:
            row.append(estimate_cell(c["estimates"].get("val_acc"))[0])
        row += [estimate_cell(c["estimates"].get(m), percent if m == TEACHER_TEST_ACC else decimals)[0]
                for m in teacher]
        body.append(row)
    return rendered([header, *body], markdown)


def cost_text(analysis: dict) -> str:
    """What the race spent: the seeds each configuration got, against the same maximum for all."""
    first, most, configs = analysis["first_seeds"], analysis["max_seeds"], analysis["configs"]
    fixed = len(configs) * most
    got = ", ".join(f"{c['label']} {c['runs']}" for c in configs)
    if most <= first:
        return f"Seeds: {first} paired seeds each ({got}; --confirm-max-seeds {most} adds none)."
    state = "" if analysis["finished"] else " (the race is not finished)"
    return (f"Seeds: {first} paired seeds each, then one more a round for the configurations still undecided, up to "
            f"{most}: {got}; {analysis['runs']} runs, against {fixed} for {most} seeds each "
            f"({analysis['runs'] / fixed:.0%}){state}.")


def confirmation_text(analysis: dict, markdown: bool = True) -> str:
    """The confirmation section of summary.md (a markdown table) or of the terminal (aligned text): what was run,
    the table, the verdicts."""
    data = "train + validation" if analysis["data"] == "full" else "train (validation held out)"
    lines = [f"Each configuration re-trained with the full recipe on {data}, seeds {analysis['seeds']} "
             "(seed s: the same initialisation and data order for every configuration), and its last epoch "
             "tested once. Search val is the validation accuracy the search chose by (one seed, a maximum "
             "over trials: expect it to be optimistic).", ""]
    lines += [f"- {c['label']}: {c['description']}." for c in analysis["configs"] if c["baseline"]]
    lines += ["", confirmation_table(analysis, markdown), "", cost_text(analysis), "",
              f"Verdicts (margin δ = {stats.margin_text(analysis['margin'])}): better or worse when the interval "
              "of the paired difference excludes 0, equivalent when it lies within ±δ, else inconclusive; the "
              "intervals hold together for every pair and every round at 95%.", ""]
    lines += [f"- {comparison['verdict']}" for comparison in analysis["comparisons"]]
    if analysis.get("ties"):
        lines += ["", ties_text(analysis["ties"])]
    for c in analysis["configs"]:
        lines += [f"- {c['label']}, seed {seed}: {reason}" for seed, reason in sorted(c["failed"].items())]
        if c["pending"]:
            lines.append(f"- {c['label']}: no result yet for seeds {c['pending']}")
    return "\n".join(lines)


LOGGED_ESTIMATES = ("test_acc", "val_acc", short_name(TEACHER_TEST_ACC))  # on the parent run; the rest: its summary


def confirmation_metrics(analysis: dict) -> tuple[dict[str, float], dict[str, str]]:
    """The parent run's metrics (`confirm_<key>_test_acc_mean`, ... for the accuracies; the teachers' probability
    scores stay in the description and summary.json, so the run's metrics list stays short) and tags (labels,
    verdicts)."""
    metrics, tags = {}, {}
    for c in analysis["configs"]:
        tags[f"confirm_{c['key']}_label"] = c["label"]
        if c.get("decision"):
            tags[f"confirm_{c['key']}_against_best"] = c["decision"]
        for name, estimate in c["estimates"].items():
            if name not in LOGGED_ESTIMATES:
                continue
            for stat in ("mean", "sd", "ci_low", "ci_high", "n"):
                metrics[f"confirm_{c['key']}_{name}_{stat}"] = estimate[stat]
    for comparison in analysis["comparisons"]:
        prefix = f"confirm_{comparison['key']}_vs_{comparison['baseline']}"
        for stat in ("mean", "ci_low", "ci_high"):
            metrics[f"{prefix}_diff_{stat}"] = comparison["difference"][stat]
        tags[f"{prefix}_verdict"] = comparison["verdict"]
    return metrics, tags
