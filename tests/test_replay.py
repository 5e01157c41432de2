"""The search's own decisions, measured: the trials table, the recorded grid, and the replay of real strategies on
recorded curves (a hand-worked table whose stops and picks are computable by hand), and their bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from search import kd_temperature, mcmi_lambda, mimkd, replay as replay_command
from dataclasses import replace

from search.grid_truth import ALL_SEEDS, GridTruth, summary
from search.replay import Size, load, run_strategy, space_of
from search.simulate import Budget, Event, Report, replay
from search.strategies import Strategy
from tests.conftest import assert_one_line_error, run_in_process, run_module

# Three configurations x = 1, 2, 3 (two seeds each, four epochs, one second an epoch): a slow starter, an early
# leader that stays flat, and a late bloomer that ends best. True values (seed means at epoch 4): 0.4, 0.5, 0.9.
HAND = {1.0: ([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]),
        2.0: ([0.5, 0.5, 0.5, 0.52], [0.5, 0.5, 0.5, 0.48]),
        3.0: ([0.0, 0.1, 0.5, 0.88], [0.0, 0.1, 0.5, 0.92])}
FIRST_POINTS = [{"x": 1.0}, {"x": 2.0}, {"x": 3.0}]


def hand_table(path: Path, metadata: dict | None = None, drop: str | None = None) -> Path:
    rows = [{"x": x, "seed": seed, "student_epoch": epoch, "student_val_acc": value, "seconds": 1.0}
            for x, seeds in HAND.items() for seed, curve in enumerate(seeds) for epoch, value in enumerate(curve, 1)]
    table = pa.Table.from_pylist(rows)
    if drop:
        table = table.drop_columns([drop])
    if metadata is not None:
        table = table.replace_schema_metadata({b"kdtune": json.dumps(metadata).encode()})
    pq.write_table(table, path)
    return path


@pytest.fixture
def hand(tmp_path: Path) -> Path:
    return hand_table(tmp_path / "hand.parquet", {"params": ["x"], "max_t": 4, "points": FIRST_POINTS, "log_params": []})


def test_asha_and_no_scheduler_stop_and_pick_as_worked_by_hand(hand):
    """One worker, the three points in order. ASHA (grace 1, rf 2; rungs at epochs 1 and 2): x=1 and x=2 pass
    (nothing, then 0.1, to beat), x=3's 0.0 at epoch 1 is below the rung's median 0.3 of {0.1, 0.5}: stopped after
    one epoch, so the pick is x=2 (complete trials first), a regret of 0.4. Without a scheduler all run 4 epochs and
    the late bloomer x=3 is picked."""
    recorded, metadata = load(hand, None)
    assert recorded.truth.tolist() == pytest.approx([0.4, 0.5, 0.9])
    space = space_of(recorded)
    asha = replay(recorded, Strategy("random", "asha", grace_period=1, reduction_factor=2), space, FIRST_POINTS, 3, 1, 0)
    assert asha == [Event(4, 4.0, 0, 4.0), Event(8, 8.0, 1, 8.0), Event(9, 9.0, 1, 9.0)]
    fifo = replay(recorded, Strategy("random", "none"), space, FIRST_POINTS, 3, 1, 0)
    assert fifo == [Event(4, 4.0, 0, 4.0), Event(8, 8.0, 1, 8.0), Event(12, 12.0, 2, 12.0)]
    parallel = replay(recorded, Strategy("random", "none"), space, FIRST_POINTS, 3, 3, 0)
    assert [e.epochs for e in parallel] == [10, 11, 12] and [e.seconds for e in parallel] == [4.0] * 3


def test_a_simulated_search_on_a_budget_keeps_starting_trials_and_counts_teacher_epochs(tmp_path):
    """One worker, the points in order, ASHA (grace 1, rf 2) on seed 0's curves. A budget of 7 epochs: x=1 ends at 4,
    x=2 is cut at 7 (its fourth epoch would be the 8th), so the answer is x=1. A budget of 9: x=2 ends at 8, x=3 is
    stopped at its first epoch (9). A budget of 30 runs 7 trials to the end without a scheduler; early stopping buys
    more, never spending more than 30 epochs. With two teacher epochs before every trial, each full trial costs 6: a budget of 12 runs two."""
    recorded, _ = load(hand_table(tmp_path / "hand.parquet", {"params": ["x"], "max_t": 4, "log_params": []}), None)
    space, asha = space_of(recorded), Strategy("random", "asha", grace_period=1, reduction_factor=2)
    budgeted = lambda amount, table=recorded: replay(table, asha, space, FIRST_POINTS, None, 1, 0, 0,  # noqa: E731
                                                     Budget(amount))
    assert [(e.epochs, e.pick) for e in budgeted(7)] == [(4, 0)]
    assert [(e.epochs, e.pick) for e in budgeted(9)] == [(4, 0), (8, 1), (9, 1)]
    longer = budgeted(30)
    every = replay(recorded, Strategy("random", "none"), space, FIRST_POINTS, None, 1, 0, 0, Budget(30))
    assert len(every) == 7 and len(longer) > 7 and longer[-1].epochs <= 30
    assert [e.epochs for e in replay(recorded, asha, space, FIRST_POINTS, 3, 1, 0, 0, Budget(12))] == [4, 8, 9]
    teacher = [Report(0, 0.5, 1.0)] * 2
    taught = replace(recorded, curves=[{s: [*teacher, *r] for s, r in runs.items()} for runs in recorded.curves])
    assert [(e.epochs, e.compute_seconds) for e in replay(taught, Strategy("random", "none"), space, FIRST_POINTS,
                                                          None, 1, 0, 0, Budget(12))] == [(6, 6.0), (12, 12.0)]
    seconds = Budget(10.5, "seconds")
    assert [e.compute_seconds for e in replay(taught, Strategy("random", "none"), space, FIRST_POINTS, None, 1, 0, 0,
                                              seconds)] == [6.0]


def test_a_pick_is_scored_on_the_seeds_its_search_did_not_see():
    """Two configurations, two seeds: a = 0.9 on seed 0 and 0.5 on seed 1, b = 0.7 on both. A search on seed 0 picks
    a, which the seed it did not see puts 20 points below b; on seed 1 it picks b, 20 points below a on seed 0. Scored
    on every seed, the seen one included, both picks look perfect (a and b tie at 0.7)."""
    truth = GridTruth(np.array([[0.9, 0.5], [0.7, 0.7]]), (0, 1))
    picks, seeds = np.array([[0], [1]]), np.array([0, 1])
    assert truth.regrets(picks, seeds)[:, 0] == pytest.approx([20, 20])
    assert truth.regrets(picks, np.array([ALL_SEEDS, ALL_SEEDS]))[:, 0] == pytest.approx([0, 0])
    assert np.isinf(truth.regrets(np.array([[-1]]), np.array([0]))[0, 0])  # no pick yet: never within ε
    only_seen = truth.regrets(picks, seeds, weights=np.array([2.0, 0.0]), repeats=np.array([0, 0]))
    assert np.isnan(only_seen).all()  # a resample of seed 0 alone leaves nothing to score a seed-0 search on
    assert summary(np.array([np.inf, 0.0]), [np.array([0.0])], 0.5)["mean_regret"] is None


def test_the_hand_table_scored_on_held_out_seeds_and_the_slowest_starter_lost_by_early_stopping(hand):
    """The late bloomer x=3 is the true best. Every trial to the end (grid, no scheduler) finds it: zero regret. ASHA
    at grace 1 stops it at its first epoch and answers x=2: on seed 0 it is scored on seed 1 (0.92 − 0.48 = 44
    points), on seed 1 on seed 0 (0.88 − 0.52 = 36 points)."""
    recorded, _ = load(hand, None)
    truth = GridTruth.of(recorded.curves)
    space = space_of(recorded)
    grid = {"x": (1.0, 2.0, 3.0)}
    full = run_strategy(recorded, truth, Strategy("grid", "none", grid=grid), space, [], Size(trials=3), 1, 4, 0)
    assert np.nanmax(truth.regrets(full.picks, full.search_seeds)[:, -1]) == 0
    budgeted = run_strategy(recorded, truth, Strategy("grid", "none", grid=grid), space, [], Size(budget=Budget(100)),
                            1, 2, 0)
    assert budgeted.trials.tolist() == [3, 3] and budgeted.spent.tolist() == [12, 12]  # each point once, not again
    asha = run_strategy(recorded, truth, Strategy("random", "asha", 1, 2.0), space, FIRST_POINTS, Size(trials=3), 1,
                        2, 0)
    assert asha.search_seeds.tolist() == [0, 1]
    assert truth.regrets(asha.picks, asha.search_seeds)[:, -1] == pytest.approx([44, 36])


def test_a_grids_stability_and_intervals_that_carry_its_noise():
    """Eight seeds: a best 10 points clear stays the best in every resample; two configurations with the same seed
    values in another order swap about half the time. A replay whose repeats all pick the same configuration has no
    spread of its own; its interval still spans the grid's seed noise."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.02, size=8)
    assert GridTruth(np.array([noise + 0.8, noise + 0.7]), tuple(range(8))).stability() == 1.0
    tied = GridTruth(np.array([noise + 0.8, noise[::-1] + 0.8 + 1e-4 * np.arange(8)]), tuple(range(8)))
    assert 0.3 < tied.stability() < 0.7
    noisy = GridTruth(np.array([0.8 + rng.normal(0, 0.02, 8), 0.8 + rng.normal(0, 0.02, 8)]), tuple(range(8)))
    picks, seeds = np.zeros((16, 1), dtype=int), np.arange(16) % 8
    draws = [noisy.regrets(picks, seeds, r.weights, r.repeats)[:, 0] for r in noisy.resamples(seeds, draws=300)]
    low, high = summary(noisy.regrets(picks, seeds)[:, 0], draws, 0.5)["mean_regret_ci95"]
    assert high - low > 0.5


def run_replay(hand: Path, tmp_path: Path, *options: str, capsys) -> dict:
    out = tmp_path / f"replay-{len(list(tmp_path.iterdir()))}.json"
    result = run_in_process(replay_command.main, hand, *options, "--json", out, "--plot", tmp_path / "r.png",
                            capsys=capsys)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


def test_a_replay_is_deterministic_and_the_full_grid_without_stopping_has_no_regret(hand, tmp_path, capsys):
    options = ["--sampler", "grid", "tpe", "--scheduler", "none", "asha", "--grace-period", "1",
               "--reduction-factor", "2", "--workers", "1", "--trials", "3", "--repeats", "6", "--seed", "3",
               "--first-points", "none"]
    first, second = (run_replay(hand, tmp_path, *options, capsys=capsys) for _ in range(2))
    assert first["strategies"] == second["strategies"]
    by_label = {s["strategy"]: s for s in first["strategies"]}
    grid = by_label["grid + none"]
    assert grid["points"][-1]["mean_regret"] == 0 and grid["points"][-1]["p_within_epsilon"] == 1
    assert grid["median_spent"] == 12 and grid["points"][-1]["mean_regret_ci95"] == [0, 0]
    assert by_label["grid + asha (grace 1, rf 2)"]["median_spent"] < 12  # ASHA spent less, whatever it found
    assert (tmp_path / "r.png").stat().st_size > 10_000
    assert first["stability"] == 1.0 and first["seeds"] == [0, 1]
    other = run_replay(hand, tmp_path, *options[:-4], "--seed", "4", "--first-points", "none", capsys=capsys)
    drawn = lambda run: [(s["median_spent"], [(p["mean_regret"], p["p_within_epsilon"]) for p in s["points"]])  # noqa: E731
                         for s in run["strategies"]]
    assert drawn(other) != drawn(first), "another seed draws other trials"


def text_epochs(path: Path) -> Path:
    pq.write_table(pa.table({"x": [1.0, 2.0], "seed": [0, 0], "student_epoch": ["one", "two"],
                             "student_val_acc": [0.1, 0.2]}), path)
    return path


def test_a_table_that_would_run_code_when_read_runs_nothing(tmp_path, capsys):
    """A column typed as Arrow's old pickled Python extension type (what CVE-2023-47248 abused): pyarrow >= 14.0.1
    reads it as its storage type; the replay and the early-epoch analysis run on, and the payload never runs."""
    import os
    import pickle

    from search import fidelity
    from tests.test_hostile_input import Payload

    marker = tmp_path / "pwned"
    hostile = pa.field("x", pa.float64(), metadata={
        b"ARROW:extension:name": b"arrow.py_extension_type",
        b"ARROW:extension:metadata": pickle.dumps(Payload(os.system, f"touch {marker}"))})
    table = pq.read_table(hand_table(tmp_path / "plain.parquet", {"params": ["x"], "max_t": 4, "log_params": []}))
    table = table.cast(pa.schema([hostile, *(table.schema.field(n) for n in table.column_names[1:])]),
                       ).replace_schema_metadata(table.schema.metadata)
    pq.write_table(table, tmp_path / "hostile.parquet")
    done = run_in_process(replay_command.main, tmp_path / "hostile.parquet", "--scheduler", "none", "--trials", "3",
                          "--repeats", "2", "--plot", tmp_path / "r.png", capsys=capsys)
    assert done.returncode == 0, done.stderr
    run_in_process(fidelity.main, tmp_path / "hostile.parquet", capsys=capsys)
    assert not marker.exists()


def test_replay_bad_input_is_one_line(hand, tmp_path, capsys):
    bare = hand_table(tmp_path / "bare.parquet")
    (tmp_path / "text.parquet").write_text("epoch,acc\n")
    cases = [
        ([hand_table(tmp_path / "no-epoch.parquet", {"params": ["x"]}, drop="student_epoch")], "lacks the column "
         "student_epoch"),
        ([hand_table(tmp_path / "no-value.parquet", {"params": ["x"]}, drop="student_val_acc")],
         "lacks the column student_val_acc"),
        ([bare], "does not say which columns are its parameters: name them with --params"),
        ([bare, "--params", "lam"], "has no column 'lam'"),
        ([bare, "--params", "x"], "does not say which parameters a search samples on a log scale: name them with --log"),
        ([bare, "--params", "x", "--log"], "does not say how many student epochs a trial runs to the end: give --max-t"),
        ([bare, "--params", "x", "--log", "y", "--max-t", "4"], "--log y: not one of the parameters (x)"),
        ([hand_table(tmp_path / "no-seconds.parquet", drop="seconds"), "--params", "x", "--log", "--max-t", "4"],
         "has no seconds column: give --epoch-seconds"),
        ([bare, "--params", "x", "--log", "--max-t", "4", "--epoch-seconds", "-1"], "--epoch-seconds must be a positive"),
        ([hand, "--budget", "0"], "--budget must be positive"),
        ([hand_table(tmp_path / "ranges.parquet", {"params": ["x"], "max_t": 4, "log_params": [],
                                                   "ranges": {"x": {"low": "a"}}})], "the metadata's range of x is damaged"),
        ([hand_table(tmp_path / "ranges2.parquet", {"params": ["x"], "max_t": 4, "log_params": [],
                                                    "ranges": {"x": {"low": 5, "high": 1, "log": False}}})],
         "the metadata's range of x is damaged"),
        ([hand_table(tmp_path / "ranges3.parquet", {"params": ["x"], "max_t": 4, "log_params": [], "ranges": ["x"]})],
         "the metadata's ranges are damaged"),
        ([hand, "--budget", "10", "--trials", "3"], "not allowed with argument --budget"),
        ([hand, "--sampler", "cmaes"], "invalid choice: 'cmaes'"),
        ([hand, "--scheduler", "hyperband"], "invalid choice: 'hyperband'"),
        ([hand, "--workers", "0"], "--workers must be positive"),
        ([hand, "--sampler", "grid", "--trials", "4"], "the table's grid has 3 configurations, fewer than --trials 4"),
        ([hand, "--sampler", "gp", "--scheduler", "asha", "--grace-period", "1"], "--sampler gp with --scheduler asha"),
        ([hand, "--scheduler", "asha", "--grace-period", "10"], "--grace-period 10 exceeds --max-t 4"),
        ([hand, "--pick", "median"], "invalid choice: 'median'"),
        ([tmp_path / "text.parquet"], "is not a Parquet table"),
        ([text_epochs(tmp_path / "words.parquet"), "--params", "x"], "column student_epoch holds string, not integers"),
        ([tmp_path / "missing.parquet"], "table not found"),
    ]
    for argv, fragment in cases:
        result = run_in_process(replay_command.main, *argv, capsys=capsys)
        assert_one_line_error(result, fragment)
        assert result.returncode == 2


def test_a_search_checks_its_strategy_before_anything_starts(tmp_path, capsys):
    cases = [
        (kd_temperature.main, ["--sampler", "gp"], "--sampler gp with --scheduler asha"),
        (kd_temperature.main, ["--sampler", "grid"], "--sampler grid needs its values"),
        (kd_temperature.main, ["--grid", "3"], "describe a grid: add --sampler grid"),
        (kd_temperature.main, ["--sampler", "grid", "--grid", "3", "--grid-seeds", "2", "--num-samples", "16"],
         "--sampler grid has 18 points (3 kd.temperature × 3 kd.alpha × 2 seed) but --num-samples is 16"),
        (kd_temperature.main, ["--sampler", "grid", "--grid-values", "T=1,2"], "the space has no parameter of that "
         "name; it samples kd.alpha, kd.temperature"),
        (kd_temperature.main, ["--sampler", "grid", "--grid", "2", "--grid-values", "kd.alpha=high"],
         "values must be floats"),
        (mcmi_lambda.main, ["--sampler", "grid", "--grid-values", "lam"], "give PARAM=V1,V2"),
        (mimkd.main, ["--sampler", "grid", "--grid", "2"], "has conditional parameters"),
        (kd_temperature.main, ["--scheduler", "asha", "--grace-period", "0"], "--grace-period must be positive"),
        (kd_temperature.main, ["--reduction-factor", "1"], "--reduction-factor must be above 1"),
        (kd_temperature.main, ["--sampler", "grid", "--grid", "2", "--grid-seeds", "0"], "--grid-seeds must be positive"),
    ]
    for main, argv, fragment in cases:
        result = run_in_process(main, "--preset", "digits", "--storage-path", tmp_path / "results", *argv,
                                capsys=capsys)
        assert_one_line_error(result, fragment)
        assert result.returncode == 2
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_a_recorded_grid_runs_every_point_with_every_seed_to_the_end_into_the_table(tmp_path):
    """λ = 0 (below the search's log range: the equal-budget control) and the paper's 0.25, two seeds each, no early
    stopping: four trials, every teacher and student epoch once in trials.parquet, which the replay then reads."""
    storage = tmp_path / "results"
    done = run_module("search.mcmi_lambda", "--preset", "digits", "--teacher-epochs", "1", "--mcmi-epochs", "1",
                      "--epochs", "2", "--sampler", "grid", "--grid-values", "mcmi.lam=0,0.25", "--grid-seeds", "2",
                      "--scheduler", "none", "--confirm-seeds", "0", "--storage-path", storage, "--name", "grid",
                      timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = pq.read_table(storage / "grid" / "trials.parquet").to_pylist()
    runs = {(row["mcmi.lam"], row["seed"]) for row in table}
    assert runs == {(0.0, 0), (0.0, 1), (0.25, 0), (0.25, 1)}
    for run in runs:
        epochs = sorted((r["phase"], r["epoch"]) for r in table if (r["mcmi.lam"], r["seed"]) == run)
        assert epochs == [("student", 1), ("student", 2), ("teacher", 1)]
    assert all(r["seconds"] > 0 and r["outcome"] in ("complete", "teacher collapsed") for r in table)
    metadata = json.loads(pq.read_schema(storage / "grid" / "trials.parquet").metadata[b"kdtune"])
    assert metadata["params"] == ["mcmi.lam"] and metadata["strategy"]["sampler"] == "grid"
    assert metadata["ranges"] == {"mcmi.lam": {"low": 0.05, "high": 1.0, "log": True}}  # the method's, not the grid's
    assert [b["key"] for b in metadata["baselines"]] == ["control", "mll_teacher"]
    replayed = run_module("search.replay", storage / "grid" / "trials.parquet", "--sampler", "grid", "--scheduler",
                          "none", "--trials", "2", "--repeats", "3", "--json", tmp_path / "r.json")
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    result = json.loads((tmp_path / "r.json").read_text())["strategies"][0]
    assert result["median_spent"] == 6 and np.isfinite(result["points"][-1]["mean_regret"])


def crossing_grid(path: Path) -> Path:
    """Six configurations whose early ranking is the reverse of their final one (three seeds, five epochs, a little
    seed noise): config k starts at 0.6 - 0.1k and ends at 0.3 + 0.1k."""
    rng = np.random.default_rng(0)
    rows = []
    for k in range(6):
        for seed in range(3):
            for epoch in range(1, 6):
                start, end = 0.6 - 0.1 * k, 0.3 + 0.1 * k
                value = start + (end - start) * (epoch - 1) / 4 + rng.normal(0, 0.005)
                rows.append({"stage": "search", "trial_id": f"{k}-{seed}", "k": float(k), "seed": seed,
                             "phase": "student", "epoch": epoch, "student_epoch": epoch, "student_val_acc": value,
                             "seconds": 1.0})
    table = pa.Table.from_pylist(rows).replace_schema_metadata(
        {b"kdtune": json.dumps({"params": ["k"], "max_t": 5}).encode()})
    pq.write_table(table, path)
    return path


def test_early_epochs_are_trusted_only_as_far_as_they_rank_like_the_final_one(tmp_path, capsys):
    from search import fidelity

    path = crossing_grid(tmp_path / "crossing.parquet")
    result = run_in_process(fidelity.main, path, "--reduction-factor", "2", "--json", tmp_path / "f.json",
                            capsys=capsys)
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "f.json").read_text())
    epochs = written["epochs"]
    assert epochs[0]["rho_split_half"] == pytest.approx(-1) and epochs[-1]["rho_split_half"] == pytest.approx(1)
    assert epochs[0]["rho_single_seed"] == pytest.approx(-1) and written["ceiling"]["rho"] == pytest.approx(1)
    assert written["ceiling"]["splits"] == 3  # three seeds: one against the other two, each way round
    assert epochs[0]["p_rung_stops_best"] == 1 and epochs[-1]["p_rung_stops_best"] == 0
    assert epochs[0]["rho_split_half_ci95"][1] < 0 < epochs[-1]["rho_single_seed_ci95"][0]
    rows = pq.read_table(path).to_pylist()
    trust = fidelity.search_trust(rows, max_t=5)  # 18 trials (6 configurations × 3 seeds) ran to the end
    assert [t["trials"] for t in trust] == [18] * 5 and trust[0]["rho"] < -0.9 and trust[0]["rho_ci95"][1] < 0
    lines = fidelity.trust_lines(trust, first_rung=1)
    assert lines[0].startswith("Early-epoch trust: Spearman ρ [95% interval]") and "5: 1.00 [1.00, 1.00]" in lines[0]
    assert lines[1].startswith("warning: at ASHA's first rung (epoch 1)")
    assert len(fidelity.trust_lines(trust, first_rung=5)) == 1  # the last epoch ranks as the last epoch does
    spans_zero = [{"epoch": 1, "rho": 0.1, "rho_ci95": (-0.5, 0.45), "trials": 8}]
    assert len(fidelity.trust_lines(spans_zero, first_rung=1)) == 1, "no warning from an interval that spans 0"
    surely_weak = [{"epoch": 1, "rho": 0.3, "rho_ci95": (0.1, 0.45), "trials": 8}]
    assert len(fidelity.trust_lines(surely_weak, first_rung=1)) == 2
    assert len(fidelity.trust_lines([{**surely_weak[0], "rho_ci95": (0.1, 0.5)}], first_rung=1)) == 1
    seven = [r for r in rows if r["trial_id"] < "2-1"]  # 0-0 .. 2-0: seven trials
    assert len({r["trial_id"] for r in seven}) == 7 and fidelity.search_trust(seven, max_t=5) == []  # too few
    assert fidelity.trust_lines([], 3, finished=7) == [
        "Early-epoch trust: not measured: 7 trials ran to the end, 8 are needed (python -m search.fidelity "
        "measures it on a recorded grid)."]
    assert_one_line_error(run_in_process(fidelity.main, hand_table(tmp_path / "h.parquet", {"params": ["x"],
                                                                                            "max_t": 4}),
                                         capsys=capsys), "record a grid with at least 4 points")


def test_a_grid_point_carries_what_the_search_derives_from_it():
    """KD's CE weight is 1 - alpha in a search; a grid over alpha keeps it so (the grid replaces the sampling, not
    the space's own constants)."""
    from search.spec import build_spec
    from spaces.variants import categorical_variants

    spec = build_spec(kd_temperature.DEFINITION, ["--preset", "digits", "--sampler", "grid", "--grid-values",
                                                  "kd.temperature=1,4", "--grid-values", "kd.alpha=0.5,0.9",
                                                  "--grid-seeds", "2", "--storage-path", "/tmp/kdtune-not-written"])
    points = categorical_variants(spec.space)
    assert len(points) == spec.budget.num_samples == 8
    assert all(p["ce_weight"] == pytest.approx(1 - p["kd.alpha"]) and p["seed"] in (0, 1) for p in points)


def test_asha_on_a_window_of_epochs_judges_the_mean_not_one_noisy_epoch():
    """At the rung (epoch 2, rf 2) the incumbent stands at 0.45; a trial at 0.9 then 0.1 is stopped on its one bad
    epoch by plain ASHA, and kept by ASHA on the mean of its last two epochs (0.5)."""
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from search.strategies import SCHEDULERS

    decisions = {}
    for window in (1, 2):
        scheduler = SCHEDULERS.get("asha")(Strategy(grace_period=2, reduction_factor=2, window=window), 4)
        incumbent, jumpy = SimpleNamespace(trial_id="incumbent"), SimpleNamespace(trial_id="jumpy")
        for trial in (incumbent, jumpy):
            scheduler.on_trial_add(None, trial)
        for epoch in (1, 2):
            scheduler.on_trial_result(None, incumbent, {"student_epoch": epoch, "student_val_acc": 0.45})
        scheduler.on_trial_result(None, jumpy, {"student_epoch": 1, "student_val_acc": 0.9})
        decisions[window] = scheduler.on_trial_result(None, jumpy, {"student_epoch": 2, "student_val_acc": 0.1})
    assert decisions == {1: TrialScheduler.STOP, 2: TrialScheduler.CONTINUE}


def test_asha_with_a_window_of_two_judges_the_last_two_epochs_at_a_rung_of_three():
    """At the rung of epoch 3 (grace 3, rf 2) the incumbent stands at 0.45 throughout. A trial at 0.0, 0.9, 0.1 has a
    mean of 0.5 over its last two epochs (kept), 0.33 over three (stopped), 0.1 on its last (stopped): the window
    is the last `window` epochs, neither more nor fewer."""
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from search.strategies import SCHEDULERS

    decisions = {}
    for window in (1, 2, 3):
        scheduler = SCHEDULERS.get("asha")(Strategy(grace_period=3, reduction_factor=2, window=window), 12)
        incumbent, late = SimpleNamespace(trial_id="incumbent"), SimpleNamespace(trial_id="late")
        for trial in (incumbent, late):
            scheduler.on_trial_add(None, trial)
        for epoch in (1, 2, 3):
            scheduler.on_trial_result(None, incumbent, {"student_epoch": epoch, "student_val_acc": 0.45})
        for epoch, value in ((1, 0.0), (2, 0.9)):
            scheduler.on_trial_result(None, late, {"student_epoch": epoch, "student_val_acc": value})
        decisions[window] = scheduler.on_trial_result(None, late, {"student_epoch": 3, "student_val_acc": 0.1})
    assert decisions == {1: TrialScheduler.STOP, 2: TrialScheduler.CONTINUE, 3: TrialScheduler.STOP}


def test_the_default_first_rung_is_half_the_budget():
    from search.strategies import default_grace

    assert [default_grace(t) for t in (240, 100, 20, 15, 1)] == [120, 50, 10, 8, 1]
    assert Strategy(scheduler="none").for_budget(20).grace_period == 10
    assert Strategy(grace_period=3).for_budget(20).grace_period == 3


def test_a_search_derives_its_first_rung_from_its_budget_unless_given(tmp_path):
    from search.spec import build_spec

    base = ["--preset", "digits", "--storage-path", str(tmp_path / "results"), "--name", "s"]
    spec = build_spec(kd_temperature.DEFINITION, base)
    assert (spec.strategy.grace_period, spec.strategy.reduction_factor, spec.strategy.pick) == (8, 3, "last")
    assert build_spec(kd_temperature.DEFINITION, [*base, "--epochs", "20", "--max-t", "12"]).strategy.grace_period == 6
    given = build_spec(kd_temperature.DEFINITION, [*base, "--grace-period", "3", "--pick", "model"]).strategy
    assert (given.grace_period, given.pick, given.label()) == (3, "model", "tpe + asha (grace 3, rf 3), pick by model")


def test_rank_intervals_leave_out_resamples_where_the_rank_is_undefined():
    from search import fidelity

    values = np.array([[[0.5, 0.8]] * 2, [[0.5, 0.7]] * 2, [[0.5, 0.6]] * 2, [[0.6, 0.6]] * 2])  # epoch 1: 3 tied
    epochs, _ = fidelity.grid_trust(values, reduction_factor=2)
    low, high = epochs[0]["rho_split_half_ci95"]
    assert np.isfinite(low) and np.isfinite(high) and low <= epochs[0]["rho_split_half"] <= high


def test_one_seeds_rank_is_graded_against_the_other_seeds_only():
    """Four configurations whose final values are pure seed noise (no configuration is better): graded against a
    final mean that holds the seed's own value, one seed's final ranking agrees with it (ρ well above 0); against
    the other seeds' mean it does not, and the split-half ceiling says the final ranking does not reproduce."""
    from search import fidelity

    rng = np.random.default_rng(1)
    values = rng.normal(0.8, 0.02, size=(8, 4, 2))
    epochs, ceiling = fidelity.grid_trust(values, reduction_factor=2)
    final = values[:, :, -1]
    self_graded = np.mean([fidelity.spearman(final[:, s], final.mean(axis=1)) for s in range(4)])
    assert self_graded > 0.4 and abs(epochs[-1]["rho_single_seed"]) < 0.3 and abs(ceiling["rho"]) < 0.3


def test_a_search_counts_its_teacher_stage_epochs_as_compute(tmp_path):
    """The digits preset's λ search: 6 trials of 3 MCMI epochs and 15 student epochs. Two trials reached their
    student (15 and 8 epochs), one failed after 2 teacher epochs: 23 student + 2 × 3 + 2 teacher epochs of 6 × 18."""
    from search.runner import compute_line
    from search.spec import build_spec

    spec = build_spec(mcmi_lambda.DEFINITION, ["--preset", "digits", "--storage-path", str(tmp_path / "results")])
    rows = [{"metrics": {"student_epoch": 15}}, {"metrics": {"student_epoch": 8}}, {"metrics": {"teacher_epoch": 2}}]
    assert compute_line(spec, rows) == ("The trials trained 31 of the 108 epochs that 6 trials × (3 teacher + 15 student) "
                                        "epochs would take (29%); early stopping saved 77.")
    kd = build_spec(kd_temperature.DEFINITION, ["--preset", "digits", "--storage-path", str(tmp_path / "results")])
    assert compute_line(kd, rows[:1]).startswith("The trials trained 15 of the 90 epochs that 6 trials × 15 student")
