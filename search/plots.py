"""Pictures for the MLflow UI: each trial's per-epoch curves, and the search's parameters against results."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

CURVES = {  # panel title -> metrics drawn in it (each against its own stage's epoch)
    "validation accuracy": ("teacher_val_acc", "student_val_acc"),
    "teacher CMI (validation)": ("teacher_val_cmi",),
    "training loss": ("teacher_train_loss", "student_train_loss"),
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


def search_scatter(rows: Sequence[dict], params: Sequence[str], metrics: Sequence[str], log_params: set[str],
                   path: Path) -> Path | None:
    """Each numeric searched parameter (columns) against each result metric (rows), one dot per trial.

    Filled dots ran every student epoch; hollow ones were stopped early by ASHA; crosses diverged."""
    numeric = [p for p in params if any(isinstance(r["config"].get(p), (int, float)) for r in rows)]
    if not numeric or not rows:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(len(metrics), len(numeric), figsize=(4.2 * len(numeric), 3.3 * len(metrics)),
                             squeeze=False)
    styles = {"complete": dict(marker="o", color="C0"),
              "stopped early": dict(marker="o", facecolors="none", edgecolors="C0"),
              "diverged": dict(marker="x", color="C3")}
    for i, metric in enumerate(metrics):
        for j, param in enumerate(numeric):
            ax = axes[i][j]
            for state, style in styles.items():
                points = [(r["config"][param], r["metrics"].get(metric)) for r in rows
                          if r["state"] == state and param in r["config"] and r["metrics"].get(metric) is not None]
                if points:
                    xs, ys = zip(*points)
                    ax.scatter(xs, ys, label=state, **style)
            if param in log_params:
                ax.set_xscale("log")
            ax.set(xlabel=param, ylabel=metric)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confirmation_figure(analysis: dict, path: Path) -> Path | None:
    """Each configuration's test accuracy per seed (dots), mean (bar) and 95% CI (whisker), baselines first.

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
    ax.set_xticks(range(len(configs)), [c["label"] + ("\n(baseline)" if c["baseline"] else "") for c in configs],
                  fontsize=8)
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, 0.0), min(high, 100.0))  # a whisker past the frame: an interval wider than accuracy allows
    ax.set(ylabel="test accuracy (%)", title=f"confirmation: {len(analysis['seeds'])} paired seeds, mean and 95% CI")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
