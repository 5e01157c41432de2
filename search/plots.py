"""Pictures for the MLflow UI: each trial's per-epoch curves, the search's parameters against results, the
confirmation, and a teacher-stage search's teachers (reliability diagrams, Eigen-CAM maps)."""
from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import torch

from distill.config import RuntimeConfig
from distill.data import DataSplits, Normalizer
from distill.engine import autocast_for, predict, resolve_device
from distill.metrics import binned_calibration_error, calibration_bins
from distill.models.cam import cam_grid, eigen_cam, pick_images
from distill.runs import eval_loader
from search import outcomes
from search.options import METRIC
from search.outcomes import is_number
from search.stats import margin_text
from trainables.metrics import (
    STUDENT_TRAIN_LOSS, STUDENT_VAL_ACC, TEACHER_TRAIN_LOSS, TEACHER_VAL_ACC, TEACHER_VAL_CMI,
)

CURVES = {  # panel title -> metrics drawn in it (each against its own stage's epoch)
    "validation accuracy": (TEACHER_VAL_ACC, STUDENT_VAL_ACC),
    "teacher CMI (validation)": (TEACHER_VAL_CMI,),
    "training loss": (TEACHER_TRAIN_LOSS, STUDENT_TRAIN_LOSS),
}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def trial_curves(mlflow_client, run_id: str, path: Path) -> Path | None:
    """One row of panels with every curve the run logged; None when it logged none."""
    histories = {name: sorted((m.step, m.value) for m in mlflow_client.get_metric_history(run_id, name))
                 for panel in CURVES.values() for name in panel}
    panels = {title: [n for n in names if histories[n]] for title, names in CURVES.items()}
    panels = {title: names for title, names in panels.items() if names}
    if not panels:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False)
    for ax, (title, names) in zip(axes[0], panels.items()):
        for name in names:
            steps, values = zip(*histories[name])
            ax.plot(steps, values, marker="o", markersize=3, label=name)
        ax.set(title=title, xlabel="epoch of its stage")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


STYLES = {  # outcome -> how its trials are drawn in the parameter figure
    outcomes.COMPLETE: dict(marker="o", color="C0", label="ran every student epoch"),
    outcomes.STOPPED: dict(marker="o", facecolors="none", edgecolors="C0",
                           label="stopped early by ASHA (its value from an earlier epoch)"),
    outcomes.COLLAPSED: dict(marker="v", color="C3", label="teacher collapsed"),
    outcomes.DIVERGED: dict(marker="x", color="C3", label="diverged (scored 0)"),
}
PAD = 0.12  # the axis extends this fraction of the healthy trials' range beyond it; outliers sit in that margin


def healthy_range(points: Sequence[tuple[dict, float, float]]) -> tuple[float, float]:
    """The y range of the trials that produced a student from a sound teacher (all trials if none did),
    padded, so one collapsed or diverged trial cannot squash the others into a line."""
    ys = [y for row, _, y in points if row["outcome"] in outcomes.USABLE] or [y for _, _, y in points]
    low, high = min(ys), max(ys)
    span = (high - low) or max(abs(high), 1e-3) * 0.1
    return low - PAD * span, high + PAD * span


def search_scatter(rows: Sequence[dict], params: Sequence[str], metrics: Sequence[str], log_params: set[str],
                   names: dict[str, str], path: Path, bounds: dict[str, tuple[float, float]] | None = None,
                   references: dict[str, tuple[str, float]] | None = None,
                   confirmation: dict | None = None) -> Path | None:
    """Each numeric searched parameter (columns, labelled by its symbol, e.g. λ) against each result metric
    (rows), one marker per trial by its outcome, the best trial starred; each parameter's axis spans the range
    the search sampled from (`bounds`), on the search's own scale, not only the values it happened to draw, and a
    metric's reference (`references`: metric -> (label, value), e.g. the MLL teacher's CMI) is a dashed line.
    With a `confirmation` (its analysis), a last row shows what it measured on the test set: each confirmed
    configuration at its value, and each baseline (the λ = 0 control) as the band to beat.

    A trial far outside the others' range is drawn at the panel's edge with its value written beside it."""
    numeric = [p for p in params if any(isinstance(r["config"].get(p), (int, float)) for r in rows)]
    if not numeric or not rows:
        return None
    best = max((r for r in rows if r["state"] in outcomes.USABLE and is_number(r["metrics"].get(METRIC))),
               key=lambda r: r["metrics"][METRIC], default=None)
    plt = pyplot()
    from matplotlib.ticker import FuncFormatter

    confirmed = confirmation is not None and any(c["seeds"] for c in confirmation["configs"])
    panels = [*metrics, *([confirmation["metric"]] if confirmed else [])]
    fig, axes = plt.subplots(len(panels), len(numeric), figsize=(5.6 * len(numeric), 4.2 * len(panels)),
                             squeeze=False, sharex="col")
    for i, metric in enumerate(panels):
        for j, param in enumerate(numeric):
            if i < len(metrics):
                draw_panel(axes[i][j], rows, param, metric, best)
            else:
                draw_confirmed(axes[i][j], confirmation, param)
            if param in log_params:
                axes[i][j].set_xscale("log")
                plain = FuncFormatter(lambda value, _: f"{value:g}")  # 0.2, not 2×10⁻¹
                axes[i][j].xaxis.set_major_formatter(plain)
                axes[i][j].xaxis.set_minor_formatter(FuncFormatter(sparse_minor_label))
            if bounds and param in bounds:
                span(axes[i][j], bounds[param], param in log_params)
            if references and metric in references and is_number(references[metric][1]):
                label, value = references[metric]
                low, high = axes[i][j].get_ylim()
                axes[i][j].set_ylim(min(low, value - 0.05 * (high - low)), max(high, value + 0.05 * (high - low)))
                axes[i][j].axhline(value, color="0.35", linestyle="--", linewidth=1, label=label, zorder=2)
            axes[i][j].set(xlabel=names.get(param, param) if i == len(panels) - 1 else "", ylabel=metric)
    if confirmed:
        axes[-1][0].set_ylabel(f"{confirmation['metric']}\n(confirmation: mean, 95% CI, seeds)")
    handles = {}
    for ax in axes.flat:
        handles.update({label: handle for handle, label in zip(*ax.get_legend_handles_labels())})
    legend = bottom_legend(fig, handles)
    fig.tight_layout(rect=(0, legend.get_window_extent().height / fig.bbox.height + 0.01, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bottom_legend(fig, handles: dict):
    """One legend for the whole figure, beneath it, in as many columns as fit its width."""
    def legend(columns: int):
        return fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=columns, fontsize=8,
                          frameon=False)

    renderer = fig.canvas.get_renderer()
    for columns in range(len(handles), 1, -1):
        wide = legend(columns)
        if wide.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
            return wide
        wide.remove()
    return legend(1)


def sparse_minor_label(value: float, _position: int) -> str:
    """A log axis' minor ticks labelled at 2× and 5× each decade only, so their labels never run together."""
    leading = f"{value:.0e}"[0]
    return f"{value:g}" if leading in "25" else ""


def span(ax, bounds: tuple[float, float], log: bool) -> None:
    """Widen the x axis to the searched range (with a margin on the axis' scale), keeping any point beyond it."""
    low, high = bounds
    current_low, current_high = ax.get_xlim()
    if log and low > 0:
        margin = (high / low) ** 0.04
        ax.set_xlim(min(current_low, low / margin), max(current_high, high * margin))
    else:
        margin = 0.04 * (high - low)
        ax.set_xlim(min(current_low, low - margin), max(current_high, high + margin))


def draw_panel(ax, rows: Sequence[dict], param: str, metric: str, best: dict | None) -> None:
    points = [(r, r["config"][param], r["metrics"][metric]) for r in rows
              if isinstance(r["config"].get(param), (int, float)) and is_number(r["metrics"].get(metric))]
    if not points:
        return
    low, high = healthy_range(points)
    margin = (high - low) * PAD / (1 + 2 * PAD) / 2  # outliers sit midway through the padding
    for outcome, style in STYLES.items():
        chosen = [(x, y) for r, x, y in points if r["outcome"] == outcome]
        if not chosen:
            continue
        xs, ys = zip(*chosen)
        ax.scatter(xs, [min(max(y, low + margin), high - margin) for y in ys], zorder=3, **style)
        for x, y in chosen:
            if not low < y < high:
                ax.annotate(f"{y:.3g}", (x, min(max(y, low + margin), high - margin)), xytext=(5, 0),
                            textcoords="offset points", va="center", fontsize=7, color="C3")
    if best is not None and best in [r for r, _, _ in points]:
        x, y = best["config"][param], best["metrics"][metric]
        ax.scatter([x], [y], marker="*", s=260, facecolors="none", edgecolors="goldenrod", linewidths=1.4,
                   zorder=4, label=f"best ({best['trial']})")
    ax.set_ylim(low, high)
    ax.grid(alpha=0.3)


def draw_confirmed(ax, analysis: dict, param: str) -> None:
    """The confirmation on one parameter's axis: each confirmed configuration's seeds (dots) and mean with its 95%
    CI (whisker) at its value; each baseline as a horizontal band (its CI) around its mean, so a configuration
    above a band beat it. Test accuracy, trained on what the confirmation trained on: not the rows above."""
    values = []
    for number, config in enumerate(c for c in analysis["configs"] if c["baseline"] and c["seeds"]):
        estimate, color = config["estimates"]["test_acc"], f"C{number + 4}"
        ax.axhline(estimate["mean"], color=color, linewidth=1.2, label=f"{config['label']} (confirmed)", zorder=1)
        if is_number(estimate["ci_low"]):
            ax.axhspan(estimate["ci_low"], min(estimate["ci_high"], 1.0), color=color, alpha=0.1, zorder=0)
        values += [estimate["mean"]]
    for config in (c for c in analysis["configs"] if not c["baseline"] and c["seeds"]):
        x, estimate = config["config"].get(param), config["estimates"]["test_acc"]
        if not isinstance(x, (int, float)):
            continue
        seeds = list(config["seeds"].values())
        ax.scatter([x] * len(seeds), seeds, s=14, color="C0", alpha=0.5, zorder=2,
                   label="a confirmed configuration's seeds")
        low, high = estimate["ci_low"], estimate["ci_high"]
        whisker = ([[estimate["mean"] - low], [min(high, 1.0) - estimate["mean"]]] if is_number(low) else None)
        ax.errorbar([x], [estimate["mean"]], yerr=whisker, fmt="D", color="C0", markersize=6, capsize=3, zorder=3,
                    label="its mean and 95% CI")
        values += seeds
    if values:
        spread = (max(values) - min(values)) or 0.01
        ax.set_ylim(min(values) - 0.3 * spread, min(max(values) + 0.3 * spread, 1.0 + 0.05 * spread))
    ax.grid(alpha=0.3)


def confirmation_figure(analysis: dict, path: Path) -> Path | None:
    """Each configuration's test accuracy per seed (dots), mean (bar) and 95% CI (whisker), baselines first, under
    its word against the best (better, worse, equivalent within ±δ, inconclusive).

    Thin grey lines join one seed across configurations: the pairing the verdicts are computed on."""
    configs = sorted(analysis["configs"], key=lambda c: not c["baseline"])
    if not any(c["seeds"] for c in configs):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(configs) + 1.5), 4.2))
    for seed in analysis["seeds"]:
        xs = [i for i, c in enumerate(configs) if seed in c["seeds"]]
        ax.plot(xs, [100 * configs[i]["seeds"][seed] for i in xs], color="0.8", linewidth=0.8, zorder=1)
    for i, c in enumerate(configs):
        color = "C7" if c["baseline"] else "C0"
        values = [100 * v for _, v in sorted(c["seeds"].items())]
        ax.scatter([i] * len(values), values, color=color, s=22, alpha=0.8, zorder=2)
        estimate = c["estimates"].get("test_acc")
        if estimate and math.isfinite(estimate["mean"]):
            ax.hlines(100 * estimate["mean"], i - 0.22, i + 0.22, color=color, linewidth=2.2, zorder=3)
            if math.isfinite(estimate["ci_low"]):
                ax.vlines(i + 0.28, 100 * estimate["ci_low"], 100 * estimate["ci_high"], color=color, linewidth=1.4)
    ax.set_xticks(range(len(configs)), [c["label"] + ("\n(baseline)" if c["baseline"] else "")
                                        + (f"\n{c['decision']}" if c.get("decision") else "") for c in configs],
                  fontsize=8)
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, 0.0), min(high, 100.0))  # a whisker past the frame: an interval wider than accuracy allows
    margin = f", words against the best at δ {margin_text(analysis['margin'])}" if "margin" in analysis else ""
    ax.set(ylabel="test accuracy (%)", title=f"confirmation: up to {len(analysis['seeds'])} paired seeds, mean and "
                                             f"95% CI{margin}")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reliability_figure(bins: dict[str, dict], path: Path, scored_on: str = "val images") -> Path:
    """Reliability diagrams side by side, one per net (label -> `calibration_bins` of its validation
    predictions): accuracy against confidence per bin, the diagonal a calibrated net would follow, and
    each bin's image count beneath."""
    plt = pyplot()
    fig, axes = plt.subplots(2, len(bins), figsize=(4 * len(bins), 4.6), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    for j, (label, table) in enumerate(bins.items()):
        counts = table["counts"]
        edges = [i / len(counts) for i in range(len(counts) + 1)]
        centres = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
        width = 1 / len(counts)
        filled = [i for i, n in enumerate(counts) if n > 0]
        top, bottom = axes[0][j], axes[1][j]
        top.bar([centres[i] for i in filled], [table["accuracy"][i] for i in filled], width=width * 0.9,
                color="C0", label="accuracy")
        top.plot([0, 1], [0, 1], color="0.5", linestyle="--", linewidth=1, label="calibrated")
        top.scatter([centres[i] for i in filled], [table["confidence"][i] for i in filled], color="C3", s=10,
                    zorder=3, label="mean confidence")
        top.set_title("\n".join([*textwrap.wrap(label, 34), f"ECE {table['ece']:.4f} on {scored_on}"]), fontsize=9)
        top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
        top.grid(alpha=0.3)
        bottom.bar(centres, counts, width=width * 0.9, color="0.6")
        bottom.set(xlabel="confidence (top label)", ylabel="images")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


CAM_IMAGES = 8  # images in the Eigen-CAM grid, spread over classes, fixed by the search's seed: about 1,000 px wide


def teacher_pictures(runtime: RuntimeConfig, splits: DataSplits, nets: dict, seed: int, folder: Path,
                     suffix: str = "", part: str = "val") -> list[Path]:
    """Reliability diagrams and an Eigen-CAM grid over the same images of split `part` (the grid: a few per
    class, fixed by `seed`), one per net (label -> net); `suffix` tells the files of two sets apart. `part` is
    "test" for nets that trained on validation too (a confirmation on train + validation)."""
    device = resolve_device(runtime.device)
    images = getattr(splits, part)
    loader = eval_loader(images, splits, runtime, device)
    bins = {}
    for label, net in nets.items():
        logits, labels = predict(net.to(device), loader, autocast_for(device, runtime.precision))
        probs = torch.softmax(logits, dim=1)
        table = calibration_bins(probs, labels)
        bins[label] = {**{k: v.cpu().tolist() for k, v in table.items()}, "ece": binned_calibration_error(table)}
    chosen = images.subset(pick_images(images.labels, CAM_IMAGES, seed)).to_images()
    normalised = Normalizer(splits.mean, splits.std, device)(chosen.images.to(device))
    maps = {label: eigen_cam(net, normalised).cpu() for label, net in nets.items()}
    return [reliability_figure(bins, folder / f"reliability{suffix}.png", f"{part} images"),
            cam_grid(chosen.images, maps, folder / f"eigencam{suffix}.png", [str(int(y)) for y in chosen.labels])]
