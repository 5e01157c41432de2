"""Pictures for the MLflow UI: each trial's per-epoch curves, and the search's parameters against results."""
from __future__ import annotations

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
