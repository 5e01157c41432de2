"""Every figure a search logs, rendered with long labels as real searches produce them: no text overlaps another
and none leaves the canvas (matplotlib reports each text's extent), so a clipped title or a crowded row label
cannot come back unnoticed."""
from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib
import mlflow
import pytest
import torch

from search import outcomes, plots
from search.mcmi_lambda import DEFINITION, LAM

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

TOLERANCE_PX = 1.0


def drawn_texts(fig: Figure) -> list[Text]:
    """The non-empty texts a fresh draw of the figure at its own dpi renders (tick labels outside an axis' view and
    hidden texts are not drawn, so they do not count)."""
    drawn: list[Text] = []
    draw = Text.draw

    def recording(text, renderer):
        if text.get_visible() and text.get_text().strip():
            drawn.append(text)
        return draw(text, renderer)

    Text.draw = recording
    try:
        fig.canvas.draw()
    finally:
        Text.draw = draw
    return drawn


def layout_problems(fig: Figure) -> list[str]:
    """Texts that leave the canvas or overlap each other, in words."""
    texts = drawn_texts(fig)
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    boxes = [(text, text.get_window_extent(renderer)) for text in texts]
    problems = [f"{text.get_text()!r} leaves the canvas" for text, box in boxes
                if box.x0 < canvas.x0 - TOLERANCE_PX or box.y0 < canvas.y0 - TOLERANCE_PX
                or box.x1 > canvas.x1 + TOLERANCE_PX or box.y1 > canvas.y1 + TOLERANCE_PX]
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        width = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        height = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        if width > TOLERANCE_PX and height > TOLERANCE_PX:
            problems.append(f"{a.get_text()!r} overlaps {b.get_text()!r}")
    return problems


@pytest.fixture
def saved_figures(monkeypatch):
    """Every figure saved while the test runs, checked as it is saved."""
    checked: dict[str, list[str]] = {}
    save = Figure.savefig

    def savefig(fig, path, *args, **kwargs):
        save(fig, path, *args, **kwargs)
        checked[Path(path).name] = layout_problems(fig)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return checked


LABELS = {"MLL teacher": 0, "best trial's teacher (1a73f44a)": 1, "λ=0.2588 (seed 1)": 2, "λ=0 control (seed 1)": 3}


def bins(confidence: float) -> dict:
    counts = [0, 0, 0, 2, 5, 9, 14, 30, 60, 80]
    return {"counts": counts, "accuracy": [0, 0, 0, .5, .4, .6, .64, .7, .8, .95], "ece": 0.0312,
            "confidence": [0, 0, 0, .35, .45, .55, .65, .75, .85, confidence]}


def rows() -> list[dict]:
    def row(trial, lam, outcome, acc, epoch, cmi):
        state = outcome if outcome in outcomes.STATES else outcomes.COMPLETE
        return {"trial": trial, "state": state, "outcome": outcome, "config": {LAM: lam, "teacher_lr": 0.05 * lam},
                "metrics": {"student_val_acc": acc, "student_epoch": epoch, "teacher_val_cmi": cmi}}
    return [row("a", 0.25, outcomes.COMPLETE, 0.906, 15, 0.31), row("b", 0.0512, outcomes.STOPPED, 0.17, 8, 0.25),
            row("c", 0.98, outcomes.COLLAPSED, 0.11, 15, 2.4), row("d", 0.5, outcomes.DIVERGED, 0.0, 0, 0.0)]


def analysis() -> dict:
    configs = []
    for i, (key, label, baseline, config) in enumerate([
            ("control", "λ=0 control", True, {LAM: 0.0}), ("mll_teacher", "MLL-teacher student", True, {}),
            ("top1", "λ=0.2588", False, {LAM: 0.2588}), ("top2", "λ=0.4261", False, {LAM: 0.4261})]):
        seeds = {1: 0.80 + 0.01 * i, 2: 0.81 + 0.01 * i, 3: 0.79 + 0.01 * i}
        configs.append({"key": key, "label": label, "baseline": baseline, "config": config, "seeds": seeds,
                        "estimates": {"test_acc": {"mean": 0.80 + 0.01 * i, "sd": 0.01, "ci_low": 0.775 + 0.01 * i,
                                                   "ci_high": 0.825 + 0.01 * i, "n": 3}}})
    return {"seeds": [1, 2, 3], "metric": "student_test_acc", "configs": configs}


def test_every_figure_a_search_logs_keeps_its_text_apart_and_on_the_canvas(tmp_path, saved_figures):
    plots.search_scatter(rows(), [LAM, "teacher_lr"], DEFINITION.plot_metrics, set(DEFINITION.log_params),
                         DEFINITION.label_names, tmp_path / "mcmi_lambda.png",
                         {LAM: (0.05, 1.0), "teacher_lr": (1e-3, 0.1)},  # the searched ranges, wider than the draws
                         {"teacher_val_cmi": ("MLL teacher's CMI (the start of every trial's teacher)", 0.28)})
    plots.search_scatter(rows(), [LAM, "teacher_lr"], DEFINITION.plot_metrics, set(DEFINITION.log_params),
                         DEFINITION.label_names, tmp_path / "mcmi_lambda_confirmed.png",
                         {LAM: (0.05, 1.0), "teacher_lr": (1e-3, 0.1)},
                         {"teacher_val_cmi": ("MLL teacher's CMI (the start of every trial's teacher)", 0.28)},
                         analysis())
    plots.confirmation_figure(analysis(), tmp_path / "confirmation.png")
    plots.reliability_figure({label: bins(0.9) for label in LABELS}, tmp_path / "reliability.png", "test images")
    images = torch.randint(0, 255, (plots.CAM_IMAGES, 3, 32, 32), dtype=torch.uint8)
    maps = {label: torch.rand(plots.CAM_IMAGES, 32, 32) for label in LABELS}
    plots.cam_grid(images, maps, tmp_path / "eigencam.png", [str(i % 10) for i in range(plots.CAM_IMAGES)])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    run = client.create_run(client.create_experiment("figures")).info.run_id
    for epoch in range(1, 16):
        client.log_metric(run, "student_val_acc", 0.5 + epoch / 40, step=epoch)
        client.log_metric(run, "student_train_loss", 2.0 - epoch / 10, step=epoch)
        if epoch <= 3:
            client.log_metric(run, "teacher_val_acc", 0.9, step=epoch)
            client.log_metric(run, "teacher_val_cmi", 0.3, step=epoch)
            client.log_metric(run, "teacher_train_loss", 0.4, step=epoch)
    plots.trial_curves(client, run, tmp_path / "curves.png")
    assert sorted(saved_figures) == ["confirmation.png", "curves.png", "eigencam.png", "mcmi_lambda.png",
                                     "mcmi_lambda_confirmed.png", "reliability.png"]
    assert {name: problems for name, problems in saved_figures.items() if problems} == {}


def test_the_confirmed_row_puts_each_configuration_at_its_value_and_each_baseline_as_the_band_to_beat():
    plt = plots.pyplot()
    fig, ax = plt.subplots()
    ax.set_xscale("log")  # λ's own scale: the control's λ = 0 has no place on it, so it is a band
    plots.draw_confirmed(ax, analysis(), LAM)
    handles, labels = ax.get_legend_handles_labels()
    assert {"λ=0 control (confirmed)", "MLL-teacher student (confirmed)", "its mean and 95% CI"} <= set(labels)
    levels = sorted(line.get_ydata()[0] for line in ax.get_lines() if line.get_label().endswith("(confirmed)"))
    assert levels == pytest.approx([0.80, 0.81])  # each baseline's confirmed mean
    means = [value for container in ax.containers for point in zip(*container.lines[0].get_data()) for value in point]
    assert means == pytest.approx([0.2588, 0.82, 0.4261, 0.83])  # each configuration (λ, mean) at its λ
    low, high = ax.get_ylim()
    assert low < 0.79 and 0.84 < high <= 1.0
    plt.close(fig)
