"""The terminal of a search: its own lines and progress; what Ray and the libraries print goes to the log, warnings
once each to the terminal; on a terminal the progress line is redrawn in place, elsewhere printed as lines."""
from __future__ import annotations

import io
import os
import pickle
import pty
import select
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from search import console
from search.progress import ConfirmProgress, SearchProgress
from tests.conftest import REPO

# What a search's driver sees: its own lines, a library's print, a write to the descriptor itself, a child process's
# output, two repeats of one warning that differ in their numbers, a progress line, then the summary once it stopped.
SCRIPT = r"""
import os, subprocess, sys
from pathlib import Path
from search import console
with console.capture(Path(sys.argv[1]), verbose=sys.argv[2] == "1") as captured:
    console.say("our own line")
    print("Trial status: 2 RUNNING")
    os.write(1, b"(teacher_student pid=42) Checkpoint successfully created at: /x\n")
    print("2026-12-08 01:16:52,448\tWARNING tune.py:212 -- the cluster is small (0.5 s)", file=sys.stderr)
    print("2026-12-08 01:16:53,001\tWARNING tune.py:212 -- the cluster is small (0.7 s)", file=sys.stderr)
    print("2026-12-08 01:16:54,001\tWARNING util.py:212 -- Processing took 0.5 s, which may be a performance "
          "bottleneck.", file=sys.stderr)
    subprocess.run(["sh", "-c", "echo child info; echo '(pid=7) UserWarning: careful' >&2"])
    for step in range(3):
        console.current().status(f"search: {step}/3 trials ended", event=step == 2)
    console.current().end_status("search: 3/3 trials ended")
    captured.stop()
    console.say("summary: the last words")
"""


def run_script(tmp_path: Path, verbose: bool = False) -> tuple[subprocess.CompletedProcess, str]:
    log = tmp_path / console.LOG_FILE
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(log), "1" if verbose else "0"], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert done.returncode == 0, done.stderr
    return done, log.read_text()


def test_what_others_print_goes_to_the_log_and_each_warning_reaches_the_terminal_once(tmp_path):
    done, log = run_script(tmp_path)
    assert done.stdout.splitlines() == ["our own line", "search: 0/3 trials ended", "search: 2/3 trials ended",
                                        "summary: the last words"]  # no redraws off a terminal, the summary last
    assert "\r" not in done.stdout
    assert done.stderr.splitlines() == ["2026-12-08 01:16:52,448\tWARNING tune.py:212 -- the cluster is small (0.5 s)",
                                        "(pid=7) UserWarning: careful"]
    for line in ("our own line", "Trial status: 2 RUNNING", "Checkpoint successfully created", "child info",
                 "the cluster is small (0.7 s)", "may be a performance bottleneck", "UserWarning: careful",
                 "search: 2/3 trials ended", "summary: the last words"):
        assert line in log, line


def test_verbose_shows_what_others_print_on_the_terminal_too(tmp_path):
    done, log = run_script(tmp_path, verbose=True)
    for line in ("Trial status: 2 RUNNING", "Checkpoint successfully created", "child info"):
        assert line in done.stdout and line in log
    assert "the cluster is small (0.7 s)" in done.stderr and "careful" in done.stderr
    assert "\r" not in done.stdout and done.stdout.splitlines()[-1] == "summary: the last words"


def test_the_capture_keeps_draining_when_the_terminal_has_gone(tmp_path):
    """`search ... --verbose | head -1`: the terminal's reader leaves, the search's output goes on (more than a pipe
    holds) into the log, and nothing blocks."""
    log = tmp_path / console.LOG_FILE
    script = ("import sys; from pathlib import Path; from search import console\n"
              f"with console.capture(Path({str(log)!r}), verbose=True):\n"
              "    for i in range(20000): print(f'Ray line {i:05d} ' + 'x' * 40)\n")
    done = subprocess.run(f"{sys.executable} -c {shlex.quote(script)} | head -c 1 >/dev/null", shell=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60, capture_output=True)
    assert done.returncode == 0
    assert log.read_text().splitlines()[-1].startswith("Ray line 19999 ")


def test_on_a_terminal_the_progress_line_is_redrawn_in_place_and_the_summary_ends_it(tmp_path):
    pid, fd = pty.fork()
    if pid == 0:  # the child: the script with a terminal for stdout and stderr
        os.environ["PYTHONPATH"] = str(REPO)
        os.chdir(REPO)
        os.execv(sys.executable, [sys.executable, "-c", SCRIPT, str(tmp_path / console.LOG_FILE), "0"])
    shown, deadline = b"", time.monotonic() + 60
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 1)[0]:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    else:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    text = shown.decode()
    assert "\rsearch: 0/3 trials ended\x1b[K" in text and "\rsearch: 1/3 trials ended\x1b[K" in text
    assert "\rsearch: 3/3 trials ended\x1b[K\r\n" in text  # the stage's last line stays
    assert text.rstrip().endswith("summary: the last words") and "Trial status" not in text


def test_off_a_terminal_progress_is_printed_on_events_and_at_most_once_a_minute_otherwise(monkeypatch):
    out, now = io.StringIO(), [1000.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: now[0])
    shown = console.Console(out, io.StringIO())
    shown.status("a 1")  # the stage's first line
    shown.status("a 2")
    now[0] += 30
    shown.status("a 3")
    shown.status("a 4 (trial 1 ended)", event=True)
    now[0] += console.QUIET_INTERVAL_S
    shown.status("a 5")
    shown.end_status("a 6")
    shown.status("b 1")
    shown.end_status("b 1 (trained)")  # the stage ends on an event line: said once
    assert out.getvalue().splitlines() == ["a 1", "a 4 (trial 1 ended)", "a 5", "a 6", "b 1", "b 1 (trained)"]


@pytest.mark.parametrize("line, alert", [
    ("2026-12-08 01:15:37,604\tWARNING authentication_token_setup.py:85 -- Token authentication is enabled", True),
    ("\x1b[36m(teacher_student pid=28013)\x1b[0m UserWarning: the grad of a non-leaf tensor", True),
    ("[2026-12-08 01:15:37,604 E 27571 27571] core_worker.cc:12: the raylet died", True),
    ("[W 2026-12-08 01:16:22,542] Trial 3 failed", True),
    ("RuntimeError: CUDA out of memory", True),
    ("(RayTrainWorker pid=9) warning: the trial's workers restarted from /x/checkpoint_000001", True),
    ("2026-12-08 01:15:45,194\tINFO worker.py:2038 -- Started a local Ray instance.", False),
    ("[I 2026-12-08 01:16:22,542] A new study created in RDB with name: lam", False),
    ("Trial teacher_student_37372e2b completed after 5 iterations", False),
    ("2026-12-08 01:16:52,448\tWARNING util.py:212 -- The `process_trial_result` operation took 0.541 s, which may "
     "be a performance bottleneck.", False),
    ("Trial status: 5 TERMINATED | 1 ERROR", False),  # Tune's tables say ERROR of a failed trial: the log's
    ("│ teacher_student_37372e2b   ERROR        0.25 │", False),
])
def test_warnings_and_errors_are_told_from_the_rest(line, alert):
    assert (console.alert_key(line) is not None) == alert


def test_a_warning_from_two_workers_is_one_warning():
    first = "\x1b[36m(teacher_student pid=1)\x1b[0m UserWarning: slow  [repeated 3x across cluster]"
    assert console.alert_key(first) == console.alert_key("(teacher_student pid=2, ip=10.0.0.2) UserWarning: slow")


def trial(trial_id: str, status: str, **result) -> SimpleNamespace:
    config = {"mcmi.lam": result.pop("lam", 0.1), **result.pop("config", {})}
    return SimpleNamespace(trial_id=trial_id, status=status, last_result=result, config=config)


def test_the_search_line_counts_trials_epochs_and_the_best_that_ran_every_epoch():
    progress = SearchProgress(num_samples=4, max_t=4, stage_epochs=2, label_names={"mcmi.lam": "λ"})
    trials = [trial("a", "TERMINATED", lam=0.25, student_epoch=4, student_val_acc=0.5),
              trial("b", "TERMINATED", lam=0.5, student_epoch=2, student_val_acc=0.9),  # stopped: not the best
              trial("c", "RUNNING", lam=0.75, student_epoch=0, teacher_epoch=1),
              trial("d", "ERROR", lam=1.0)]
    line = progress.line(trials)
    assert line == ("search: 3/4 trials ended, 1 running, 1 stopped early, 1 failed or diverged · 11/24 epochs · 0:00 · "
                    "best λ=0.25 50.00%"), line
    assert progress.ended(trials[1]) == "trial b stopped early at student epoch 2: 90.00%"
    trials[2].last_result = {**trials[2].last_result, "student_epoch": 4, "student_val_acc": 0.75}
    progress.on_trial_complete(0, trials, trials[2])  # before Tune sets its status: ended all the same
    assert progress.line(trials) == ("search: 4/4 trials ended, 0 running, 1 stopped early, 1 failed or diverged · "
                                     "16/24 epochs · 0:00 · best λ=0.75 75.00%")
    restored = pickle.loads(pickle.dumps(progress))  # what Tune keeps in tuner.pkl: no clock of this driver
    assert restored._started is None and restored.label_names == {"mcmi.lam": "λ"}


def test_a_result_counts_as_it_arrives_and_a_trial_an_interrupt_stopped_has_not_ended():
    progress = SearchProgress(num_samples=2, max_t=4, stage_epochs=0, label_names={"mcmi.lam": "λ"})
    trials = [trial("a", "RUNNING", student_epoch=1, student_val_acc=0.2),
              trial("b", "RUNNING", student_epoch=1, student_val_acc=0.3)]
    progress.on_trial_result(0, trials, trials[0], {"student_epoch": 2, "student_val_acc": 0.4})  # Tune keeps it after
    assert progress.line(trials).startswith("search: 0/2 trials ended, 2 running · 3/8 epochs · "), progress.line(trials)
    for stopped in trials:  # Ctrl-C: Tune marks the running trials TERMINATED without a word to the callbacks
        stopped.status = "TERMINATED"
    assert progress.line(trials).startswith("search: 0/2 trials ended, 0 running · 3/8 epochs · ")


def test_the_confirmation_line_counts_each_configuration_with_its_earlier_rounds():
    progress = ConfirmProgress("confirm-2", {"control": "λ=0 control", "top1": "λ=0.25"}, {"control": 2, "top1": 2},
                               [("control", 3), ("top1", 3)], student_epochs=4, stage_epochs=2,
                               configs={"control": {"mcmi.lam": 0.0}, "top1": {"mcmi.lam": 0.25}})
    trials = [trial("a", "TERMINATED", config={"confirm": "control", "seed": 3}, student_epoch=4, student_test_acc=0.4),
              trial("b", "RUNNING", config={"confirm": "top1", "seed": 3}, teacher_epoch=1, student_epoch=0)]
    line = progress.line(trials)
    assert line == "confirmation confirm-2: 1/2 runs ended · 7/12 epochs · 0:00 · λ=0 control 3/3 · λ=0.25 2/3", line
    assert progress.ended(trials[0]) == "λ=0 control seed 3: test 40.00%"
