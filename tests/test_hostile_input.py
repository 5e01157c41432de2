"""Careless and hostile input, one table per class: nothing a file says is run, a search folder has one owner,
a resume continues the search it names, every name and option is checked before anything trains.

Each case ends in one `error:` line (or the stated warning), exit status 2, no traceback, no marker file from a
payload, nothing written outside the storage path. The concurrency tests start real processes."""
from __future__ import annotations

import io
import json
import os
import pickle
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from distill import models
from distill.config import DataConfig, TeacherJob
from distill.data import cifar, load_splits
from distill.errors import UserError
from distill.safe_pickle import load_plain_pickle
from search import confirm, distiller, kd_temperature, mcmi_lambda, mimkd, ownership, teachers, tracking, trust
from search.state import STATE_FILE, STATE_FORMAT
from tests.conftest import REPO, assert_one_line_error, make_cifar10, make_cifar100, run_in_process, run_module
from trainables import common

STORAGE_ARGS = ["--preset", "digits"]


class Payload:
    """Unpickling this calls `function(*args)`: the classic remote-code pickle."""

    def __init__(self, function, *args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def payloads(marker: Path) -> list[Payload]:
    """Different ways a pickle can run code, each of which would create `marker`."""
    import builtins
    import subprocess as sp

    return [Payload(os.system, f"touch {marker}"), Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
            Payload(sp.call, ["touch", str(marker)])]


# ---------------------------------------------------------------- 1. no file is ever a program

def test_the_official_format_loads_as_before_in_every_pickle_protocol(tmp_path):
    """The plain-data reader gives exactly what pickle.load gives for CIFAR's files: str keys (CIFAR-100) and bytes
    keys (CIFAR-10, as Python 2 wrote them), numpy arrays pickled by numpy 1 or 2, in protocols 0 to 5."""
    entry = {"data": np.arange(3072 * 2, dtype=np.int64).reshape(2, 3072).astype(np.uint8), "fine_labels": [3, 7],
             b"labels": [1, 2], "batch_label": "training batch 1 of 1", b"filenames": [b"a.png", b"b.png"],
             "scalar": np.int64(5), "float": 0.5}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}"
        path.write_bytes(pickle.dumps(entry, protocol=protocol))
        plain = load_plain_pickle(path, "a CIFAR pickle file")
        with open(path, "rb") as handle:
            reference = pickle.load(handle, encoding="latin1")
        assert plain.keys() == reference.keys()
        for key, value in reference.items():
            assert type(plain[key]) is type(value)
            if isinstance(value, np.ndarray):
                assert plain[key].dtype == value.dtype and plain[key].tobytes() == value.tobytes()
            else:
                assert plain[key] == value
    for folder, layout in ((make_cifar100(tmp_path / "c100"), cifar.CIFAR100_LAYOUT),
                           (make_cifar10(tmp_path / "c10"), cifar.CIFAR10_LAYOUT)):
        for name, _ in layout.files:
            with open(folder / name, "rb") as handle:
                reference = pickle.load(handle, encoding="latin1")
            plain = cifar.read_pickle(folder / name)
            assert {k.decode() if isinstance(k, bytes) else k for k in reference} == set(plain)


def hostile_cifar(root: Path, part: str, payload: Payload) -> Path:
    """A CIFAR-100 folder whose `part` file runs `payload` when pickle.load reads it."""
    folder = make_cifar100(root)
    if part == "meta":
        entry = {"fine_label_names": payload, "coarse_label_names": []}
    else:
        entry = {"data": np.zeros((1, 3072), np.uint8), "fine_labels": [0], "filenames": ["x"], "batch_label": payload}
    (folder / part).write_bytes(pickle.dumps(entry, protocol=2))
    return root


def test_a_cifar_pickle_that_would_run_code_is_refused_by_every_command(tmp_path, capsys):
    """With --no-verify (custom CIFAR-format data) every command that reads the folder refuses the file in one line
    naming it and the global it asked for; the payload never runs."""
    from distill.data.__main__ import main as data_main
    from distill.train import main as train_main

    marker = tmp_path / "pwned"
    for index, payload in enumerate(payloads(marker)):
        for part in ("meta", "train", "test"):
            data = hostile_cifar(tmp_path / f"d{index}{part}", part, payload)
            commands = [
                (data_main, ["info", "--dataset", "cifar100", "--data-dir", data, "--no-verify"]),
                (train_main, ["teacher", "--dataset", "cifar100", "--data-dir", data, "--no-verify", "--arch", "resnet8",
                              "--epochs", "1", "--out", tmp_path / "out"]),
                (kd_temperature.main, [*STORAGE_ARGS, "--dataset", "cifar100", "--data-dir", data, "--no-verify",
                                       "--storage-path", tmp_path / "results"]),
            ]
            for main, argv in commands:
                result = run_in_process(main, *argv, capsys=capsys)
                assert_one_line_error(result, str(data / "cifar-100-python" / part), "refused, nothing in it was run",
                                      payload.function.__name__)
                assert result.returncode == 2 and not marker.exists()
    assert not (tmp_path / "out").exists() and not (tmp_path / "results").exists()


def hostile_torch_file(path: Path, payload: Payload) -> Path:
    torch.save({"model": {"w": torch.zeros(1)}, "extra": payload}, path)
    return path


def damaged_torch_file(path: Path) -> Path:
    buffer = io.BytesIO()
    torch.save({"model": models.create("resnet8", 10).state_dict()}, buffer)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def test_torch_files_that_would_run_code_or_are_damaged_are_one_line(tmp_path, capsys):
    """A teacher checkpoint, a run checkpoint behind --resume: hostile (a pickled callable) or cut in half."""
    from distill.train import main as train_main

    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    out.mkdir()
    cases = []
    for index, payload in enumerate(payloads(marker)):
        hostile = hostile_torch_file(tmp_path / f"hostile{index}.pth", payload)
        cases.append((["student", "--dataset", "digits", "--arch", "resnet8", "--teacher", "resnet8",
                       "--teacher-checkpoint", hostile, "--epochs", "1", "--out", tmp_path / "s"],
                      "holds objects other than tensors and plain data"))
        hostile_torch_file(out / "checkpoint.pth", payload)
        cases.append((["teacher", "--dataset", "digits", "--arch", "resnet8", "--epochs", "1", "--out", out,
                       "--resume"], "nothing in it was run"))
    damaged_torch_file(tmp_path / "cut.pth")
    cases.append((["student", "--dataset", "digits", "--arch", "resnet8", "--teacher", "resnet8", "--teacher-checkpoint",
                   tmp_path / "cut.pth", "--epochs", "1", "--out", tmp_path / "s"], "truncated or corrupt"))
    for argv, fragment in cases:
        result = run_in_process(train_main, *argv, capsys=capsys)
        assert_one_line_error(result, fragment)
        assert result.returncode == 2 and not marker.exists()
    for damage in (damaged_torch_file, lambda path: path.write_bytes(b"\x80\x02}q\x00.garbage")):
        damage(out / "checkpoint.pth")
        assert_one_line_error(run_in_process(train_main, "teacher", "--dataset", "digits", "--arch", "resnet8",
                                             "--epochs", "1", "--out", out, "--resume", capsys=capsys),
                              str(out / "checkpoint.pth"))
    torch.save({"format": "kdtune-run-1", "kind": "teacher", "trainer": {"model": {}}}, out / "checkpoint.pth")
    assert_one_line_error(run_in_process(train_main, "teacher", "--dataset", "digits", "--arch", "resnet8", "--epochs",
                                         "1", "--out", out, "--resume", capsys=capsys), "does not fit this teacher run")
    assert not (tmp_path / "s").exists()


def test_every_other_reader_refuses_hostile_and_damaged_files(tmp_path):
    """The search's own files: a cached teacher, a confirmation batch's searcher state, a trial's checkpoint state,
    a generated data set's cache; each a UserError naming the file, no payload run."""
    marker = tmp_path / "pwned"
    payload = payloads(marker)[0]
    job = TeacherJob(arch="resnet8", data=DataConfig(dataset="digits"))
    splits = load_splits(job.data)
    never = lambda job: pytest.fail("a damaged cache is refused, not silently retrained")  # noqa: E731
    root = tmp_path / "teachers"
    folder = teachers.cache_folder(root, job, splits.fingerprint)
    folder.mkdir(parents=True)
    writers = {
        "hostile weights": lambda: hostile_torch_file(folder / teachers.WEIGHTS, payload),
        "damaged weights": lambda: damaged_torch_file(folder / teachers.WEIGHTS),
        "another net's weights": lambda: models.save_weights(models.create("resnet14", 10), folder / teachers.WEIGHTS),
        "damaged record": lambda: (models.save_weights(models.create("resnet8", 10), folder / teachers.WEIGHTS),
                                   (folder / teachers.META).write_text('{"val_acc": 0.9')),
        "foreign record": lambda: (folder / teachers.META).write_text('["not", "a", "record"]'),
    }
    for case, write in writers.items():
        write()
        with pytest.raises(UserError, match="delete .* and the search trains the teacher again"):
            teachers.obtain(job, splits, root, never)
    searcher = confirm.FixedConfigs([{"mcmi.lam": 0.1}])
    (tmp_path / "searcher.pkl").write_bytes(pickle.dumps(payload))
    with pytest.raises(UserError, match="not a confirmation batch's saved state"):
        searcher.restore(str(tmp_path / "searcher.pkl"))
    searcher.save(str(tmp_path / "saved"))
    restored = confirm.FixedConfigs([])
    restored.restore(str(tmp_path / "saved"))
    assert restored.configs == [{"mcmi.lam": 0.1}] and restored.given == 0
    buffer = io.BytesIO()
    torch.save({"trainer": payload}, buffer)
    with pytest.raises(UserError, match="trial checkpoint state"):
        common.read_state({common.STATE_FILE: buffer.getvalue()})
    from distill.data import load_raw
    from distill.data.synthetic import NAME, parse_params

    cache = tmp_path / "data" / NAME / f"{parse_params({'train': '50', 'test': '20'}).key}.pt"
    cache.parent.mkdir(parents=True)
    hostile_torch_file(cache, payload)
    with pytest.raises(UserError, match="nothing in it was run"):
        load_raw("synthetic-bcpd:train=50,test=20", tmp_path / "data")
    torch.save({"train_images": torch.zeros(1)}, cache)
    with pytest.raises(UserError, match="delete it and it is generated again"):
        load_raw("synthetic-bcpd:train=50,test=20", tmp_path / "data")
    assert not marker.exists()


def test_no_module_reads_a_pickle_outside_the_safe_readers():
    """`pickle.load`, `torch.load` and friends appear only in the two readers that restrict them."""
    allowed = {REPO / "distill" / "safe_pickle.py", REPO / "distill" / "models" / "checkpoints.py"}
    risky = ("pickle.load(", "pickle.loads(", "torch.load(", "cloudpickle.load", "np.load(", "numpy.load(",
             "yaml.load(", "Unpickler(")
    for folder in ("distill", "search", "trainables", "spaces", "bench"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            found = [r for r in risky if r in text]
            assert path in allowed or not found, (path, found)


# ---------------------------------------------------------------- 2. one search folder, one owner

STORE_RACE = """
import sys, time
from pathlib import Path
from search import tracking, tuning
storage, start = Path(sys.argv[1]), float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
uri = tracking.resolve_tracking_uri(None, storage)
experiment = tracking.experiment_id(uri, "kdtune-race", storage)
tuning.optuna_storage(storage)
print(experiment)
"""


@pytest.mark.slow
def test_searches_started_at_once_create_the_shared_stores_once(tmp_path):
    """Four processes create the MLflow SQLite store, the experiment and the Optuna tables in one fresh storage path
    at the same instant (as four searches would): every one succeeds and they share one experiment."""
    storage = tmp_path / "results"
    start = time.time() + 8  # after every interpreter has imported mlflow and optuna
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    racers = [subprocess.Popen([sys.executable, "-c", STORE_RACE, str(storage), str(start)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [racer.communicate(timeout=120) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), [err[-2000:] for _, err in outputs]
    assert len({out.strip() for out, _ in outputs}) == 1


def start_search(storage: Path, name: str, log: Path) -> subprocess.Popen:
    """A real kd_temperature search driver in its own process group (so its local Ray can be stopped with it)."""
    argv = [sys.executable, "-m", "search.kd_temperature", *STORAGE_ARGS, "--teacher-epochs", "1", "--epochs", "2",
            "--grace-period", "1", "--num-samples", "1", "--confirm-seeds", "0", "--storage-path", str(storage),
            "--name", name]
    return subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.slow
def test_a_second_driver_on_a_running_search_is_refused_with_its_owner(tmp_path, capsys):
    """While a search runs, the same command (same name) and a --resume or --confirm-only of it each end in one line
    naming the running driver's PID; when that driver dies, the kernel frees the folder."""
    storage = tmp_path / "results"
    driver = start_search(storage, "same", tmp_path / "first.log")
    try:
        lock = storage / "same" / ownership.LOCK_FILE
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None and f'"pid": {driver.pid}' not in (
                lock.read_text() if lock.is_file() else ""):
            time.sleep(0.2)
        assert driver.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        base = [*STORAGE_ARGS, "--storage-path", storage, "--name", "same"]
        for argv in ([*base, "--teacher-epochs", "1", "--epochs", "2", "--grace-period", "1", "--num-samples", "1",
                      "--confirm-seeds", "0"], [*base, "--resume"], [*base, "--confirm-only"]):
            result = run_in_process(kd_temperature.main, *argv, capsys=capsys)
            assert_one_line_error(result, f"{storage / 'same'} is running (PID {driver.pid} on ")
        assert ownership.running(storage / "same") is not None
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    assert ownership.running(storage / "same") is None


def test_the_folder_lock_is_exclusive_across_processes_and_created_folders_are_given_back(tmp_path):
    """claim() against a holder in another process; a new search that fails before it starts leaves no folder."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from search import ownership; "
        "ownership.claim(Path(sys.argv[1]), new=True, command='x'); print('held', flush=True); time.sleep(60)"),
        str(tmp_path / "held")], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for new in (True, False):
            with pytest.raises(UserError, match=f"is running \\(PID {holder.pid} on "):
                ownership.claim(tmp_path / "held", new=new, command="x")
    finally:
        holder.kill()
        holder.wait()
    owner = ownership.claim(tmp_path / "held", new=False, command="x")  # free again once its holder died
    owner.release(keep_if=STATE_FILE)
    assert (tmp_path / "held").is_dir()  # not created by this claim: kept
    fresh = ownership.claim(tmp_path / "new" / "storage" / "fresh", new=True, command="x")
    fresh.release(keep_if=STATE_FILE)
    assert not (tmp_path / "new").exists()  # the storage path it created too
    shared = ownership.claim(tmp_path / "shared" / "fresh", new=True, command="x")
    (tmp_path / "shared" / "other-search").mkdir()  # another search started in the same new storage path
    shared.release(keep_if=STATE_FILE)
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["other-search"]


# ---------------------------------------------------------------- 3. a resume continues the search it names

def test_a_resume_from_another_search_command_names_the_right_command(tmp_path, capsys):
    storage = tmp_path / "results"
    saved = {"argv": ["--preset", "digits"], "parent_run_id": "0" * 32, "tracking_uri": "sqlite:////x/mlflow.db",
             "search": "kd_temperature", "command": "python -m search.kd_temperature", "format": STATE_FORMAT}
    (storage / "kd").mkdir(parents=True)
    (storage / "kd" / STATE_FILE).write_text(json.dumps(saved))
    dkd = {**saved, "search": "distiller_dkd", "command": "python -m search.distiller --method dkd"}
    (storage / "dkd").mkdir()
    (storage / "dkd" / STATE_FILE).write_text(json.dumps(dkd))
    (storage / "broken").mkdir()
    (storage / "broken" / STATE_FILE).write_text('{"argv": [')
    (storage / "foreign").mkdir()
    (storage / "foreign" / STATE_FILE).write_text('{"argv": "rm -rf /"}')
    (storage / "old").mkdir()  # a search state of the format before the teacher side: untyped, `lam` keys
    (storage / "old" / STATE_FILE).write_text(json.dumps({**saved, "format": 1}))
    (storage / "mangled").mkdir()
    (storage / "mangled" / STATE_FILE).write_text(json.dumps({**saved, "outcome": {"trials": "all of them"}}))
    (storage / "raced").mkdir()  # a race planned to "many" seeds
    (storage / "raced" / STATE_FILE).write_text(json.dumps({**saved, "confirm": {"first": 3, "most": "many"}}))
    cases = [
        (mimkd.main, ["--resume", "--name", "kd"], "is a search of `python -m search.kd_temperature`, not of "
         f"`python -m search.mimkd`: continue it with `python -m search.kd_temperature --resume --storage-path "
         f"{storage} --name kd`"),
        (mcmi_lambda.main, ["--confirm-only", "--name", "kd"], "`python -m search.kd_temperature --confirm-only"),
        (distiller.main, ["--method", "at", "--resume", "--name", "dkd"],
         "continue it with `python -m search.distiller --method dkd --resume"),
        (kd_temperature.main, ["--resume", "--name", "broken"], "is damaged"),
        (kd_temperature.main, ["--resume", "--name", "foreign"], "is not a kdtune search state"),
        (kd_temperature.main, ["--resume", "--name", "old"], "was written by another kdtune version (search state "
         f"format 1; this one reads {STATE_FORMAT}), so it cannot be continued: run the search again under a new "
         "--name"),
        (kd_temperature.main, ["--resume", "--name", "mangled"], "is damaged (TypeError"),
        (kd_temperature.main, ["--resume", "--name", "raced"], "is damaged (ValueError"),
        # The race's looks were spent on its margin and its most seeds: a resume keeps them.
        (kd_temperature.main, ["--resume", "--name", "kd", "--margin", "2"],
         "--margin 2.0 contradicts the search kd was started with (1.0)"),
        (kd_temperature.main, ["--resume", "--name", "kd", "--confirm-max-seeds", "5"],
         "--confirm-max-seeds 5 contradicts the search kd was started with (3)"),
    ]
    for main, argv, fragment in cases:
        result = run_in_process(main, "--storage-path", storage, *argv, capsys=capsys)
        assert_one_line_error(result, fragment)
        assert result.returncode == 2
    assert sorted(p.name for p in storage.iterdir()) == ["broken", "dkd", "foreign", "kd", "mangled", "old", "raced"]


# ---------------------------------------------------------------- 4. every name and option checked first

def test_names_and_options_are_checked_before_anything_trains(tmp_path, capsys):
    storage = tmp_path / "deep" / "results"
    (tmp_path / "a-file").write_text("x")
    name_error = "is not a usable search name"
    cases = [
        (kd_temperature.main, ["--name", "../../escaped"], name_error),
        (kd_temperature.main, ["--name", ".."], name_error),
        (kd_temperature.main, ["--name", "."], name_error),
        (kd_temperature.main, ["--name", ".hidden"], name_error),
        (kd_temperature.main, ["--name", "a/b"], name_error),
        (kd_temperature.main, ["--name", "a\\b"], name_error),
        (kd_temperature.main, ["--name", "line\nbreak"], name_error),
        (kd_temperature.main, ["--name", " "], name_error),
        (kd_temperature.main, ["--name", str(tmp_path / "absolute")], name_error),
        (kd_temperature.main, ["--resume", "--name", "../x"], name_error),
        (mimkd.main, ["--mimkd-local-layers", "stage9"], "--mimkd-local-layers has no effect: this search samples"),
        (mimkd.main, ["--mimkd-critic-width", "64"], "--mimkd-critic-width has no effect"),
        (distiller.main, ["--method", "fitnet", "--fitnet-layer", "stage1"], "--fitnet-layer has no effect"),
        (mcmi_lambda.main, ["--distiller", "kd", "mimkd", "--mimkd-local-layers", "stage9"],
         "CifarResNet has no feature 'stage9'; choose one of: stem, stage1, stage2, stage3, pool"),
        (mcmi_lambda.main, ["--distiller", "kd", "mimkd", "--mimkd-local-layers", "-9"],
         "feature index -9 is out of range"),
        (kd_temperature.main, ["--distiller", "kd", "at", "--at-layers", "pool"],
         "attention layer 'pool' must be a feature map"),
        (kd_temperature.main, ["--distiller", "kd", "fitnet", "--fitnet-layer", "stage7"], "no feature 'stage7'"),
        (distiller.main, ["--method", "at", "--distiller", "at", "fitnet", "--fitnet-layer", "9"],
         "feature index 9 is out of range"),
        (kd_temperature.main, ["--dataset", "cifar100", "--data-dir", tmp_path / "a-file"],
         f"--data-dir {tmp_path / 'a-file'} is a file, not a folder"),
        (kd_temperature.main, ["--dataset", "cifar100", "--data-dir", tmp_path / "a-file", "--download"],
         "is a file, not a folder"),
    ]
    for main, argv, fragment in cases:
        result = run_in_process(main, *STORAGE_ARGS, "--storage-path", storage, *argv, capsys=capsys)
        assert_one_line_error(result, fragment)
        assert result.returncode == 2, argv
        assert not (tmp_path / "deep").exists() and not (tmp_path / "escaped").exists(), argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_distill_train_checks_its_output_folder_and_data_before_it_trains(tmp_path, capsys):
    from distill.train import main as train_main

    (tmp_path / "a-file").write_text("x")
    common_args = ["teacher", "--dataset", "digits", "--arch", "resnet8", "--epochs", "1"]
    for argv, fragment in [
        (["--out", tmp_path / "a-file" / "run"], "cannot be created: " + str(tmp_path / "a-file") + " is a file"),
        (["--out", tmp_path / "a-file"], "is a file"),
        (["--out", "/proc/kdtune-cannot-be-here"], "cannot be written"),
        (["--out", tmp_path / "o", "--dataset", "cifar10", "--data-dir", tmp_path / "a-file"], "is a file, not a folder"),
    ]:
        started = time.monotonic()
        result = run_in_process(train_main, *common_args, *argv, capsys=capsys)
        assert_one_line_error(result, fragment)
        assert "epoch 1/1" not in result.stdout, argv  # refused before the first epoch
        assert time.monotonic() - started < 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_batch_larger_than_the_training_set_is_a_warning(tmp_path, capsys):
    from distill.train import main as train_main

    result = run_in_process(train_main, "teacher", "--dataset", "digits", "--arch", "resnet8", "--epochs", "1",
                            "--batch-size", "4096", "--out", tmp_path / "t", capsys=capsys)
    assert result.returncode == 0
    assert result.stderr.strip().splitlines() == [
        "warning: the batch size 4096 is larger than the 1257 training images: each epoch is one batch of 1257; "
        "give --batch-size 1257 or less for several steps an epoch"]
    wrong = tmp_path / "resnet8.pth"
    models.save_weights(models.create("resnet8", 10), wrong)
    search = run_in_process(kd_temperature.main, *STORAGE_ARGS, "--batch-size", "2000", "--teacher-checkpoint", wrong,
                            "--storage-path", tmp_path / "results", capsys=capsys)
    lines = search.stderr.strip().splitlines()
    assert search.returncode == 2 and lines[-1].startswith("error: ") and "does not fit resnet14" in lines[-1]
    assert lines[:-1] == [
        "warning: the batch size 2000 is larger than the 1257 teacher training images: each epoch is one batch of "
        "1257; give --batch-size 1257 or less for several steps an epoch",
        "warning: the batch size 2000 is larger than the 628 student training images: each epoch is one batch of "
        "628; give --batch-size 628 or less for several steps an epoch"]
    assert not (tmp_path / "results").exists()


def test_the_checks_run_as_a_user_runs_them():
    """One case end to end in a fresh interpreter: the command's own exit status and single line."""
    result = run_module("search.kd_temperature", *STORAGE_ARGS, "--name", "../../escaped", "--storage-path",
                        "/tmp/kdtune-never-written")
    assert_one_line_error(result, "is not a usable search name")
    assert result.returncode == 2 and not Path("/tmp/kdtune-never-written").exists()


# ---------------------------------------------------------------- 5. Ray's pickles: trusted by signature, not place

TINY = ["--teacher-epochs", "1", "--epochs", "2", "--grace-period", "1", "--num-samples", "1", "--confirm-seeds", "0"]


def tiny_search(storage: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    return run_module("search.kd_temperature", *STORAGE_ARGS, *TINY, *extra, "--storage-path", storage, "--name",
                      name, timeout=600)


@pytest.fixture(scope="module")
def finished_storage(tmp_path_factory) -> Path:
    """A storage path (with a space and a non-ASCII letter in its name) holding one finished one-trial search,
    `done`, its MLL teacher cached and its teacher's Tune folder beside it."""
    storage = tmp_path_factory.mktemp("hostile") / "my λ results"
    done = tiny_search(storage, "done")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return storage


def copied(storage: Path, target: Path) -> Path:
    shutil.copytree(storage, target, symlinks=True)
    return target


def plant(path: Path, marker: Path) -> None:
    """Overwrite `path` with a pickle that creates `marker` when anything unpickles it."""
    path.write_bytes(pickle.dumps(Payload(os.system, f"touch {shlex.quote(str(marker))}")))


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file() and not p.name.endswith(".lock")}


def edit_state(folder: Path, **changes) -> None:
    state = json.loads((folder / STATE_FILE).read_text())
    (folder / STATE_FILE).write_text(json.dumps({**state, **changes}))


@pytest.mark.slow
def test_a_planted_teacher_pickle_never_runs_and_nothing_is_left(finished_storage, tmp_path, capsys):
    """The reported attack: the cached teacher deleted, the teacher's Tune folder given a tuner.pkl that runs a
    command; a plain new search (no --resume) refuses it in one line naming `python -m search.trust`, before it
    makes its folder; the payload never runs."""
    storage = copied(finished_storage, tmp_path / "copy")
    shutil.rmtree(storage / "teachers")
    (teacher_folder,) = storage.glob("teacher-*")
    marker = tmp_path / "payload-ran"
    for name in ("tuner.pkl", next(p.name for p in teacher_folder.glob("experiment_state-*.json"))):
        plant(teacher_folder / name, marker)
        result = run_in_process(kd_temperature.main, *STORAGE_ARGS, *TINY, "--storage-path", storage, "--name", "b",
                                capsys=capsys)
        assert_one_line_error(result, f"{teacher_folder} holds Ray Tune state that this user's kdtune did not sign "
                              f"({name} does not match its signature", "python -m search.trust",
                              f"otherwise delete {teacher_folder}")
        assert not marker.exists() and not (storage / "b").exists()
        shutil.copy2(finished_storage / teacher_folder.name / name, teacher_folder / name)
    assert trust.unsigned(teacher_folder) is None  # the signatures travel with the folder, but Ray's pickles name
    assert trust.moved_from(teacher_folder) == str(finished_storage / teacher_folder.name)  # the stores it left
    result = run_in_process(kd_temperature.main, *STORAGE_ARGS, *TINY, "--storage-path", storage, "--name", "b",
                            capsys=capsys)
    assert_one_line_error(result, f"{teacher_folder} was written at {finished_storage / teacher_folder.name} and has "
                          "moved since", f"or delete {teacher_folder}")
    assert not (storage / "b").exists()
    (cached,) = (copied(finished_storage, tmp_path / "cached") / "teachers").glob("*/weights.pth")
    hostile_torch_file(cached, Payload(os.system, f"touch {shlex.quote(str(marker))}"))  # the weights-only cache
    result = run_in_process(kd_temperature.main, *STORAGE_ARGS, *TINY, "--storage-path", tmp_path / "cached", "--name",
                            "b", capsys=capsys)
    assert_one_line_error(result, f"the cached teacher {cached} cannot be used", f"delete {cached.parent}")
    assert not marker.exists() and not (tmp_path / "cached" / "b").exists()  # so the advice's rerun is not refused


@pytest.mark.slow
def test_a_resume_restores_only_signed_state_in_its_trials_and_its_confirmation(finished_storage, capsys):
    """A search folder and a confirmation batch whose pickles were planted, or gained an unsigned pickle, are one
    line each on --resume and --confirm-only; vouching for a folder (`python -m search.trust`) is the way back."""
    storage, marker = finished_storage, finished_storage.parent / "payload-ran"
    cases = []
    trials = copied(storage / "done", storage / "planted-trials")
    edit_state(trials, stage="search")
    plant(trials / "tuner.pkl", marker)
    cases.append(("planted-trials", "--resume", trials, "tuner.pkl does not match its signature"))
    extra = copied(storage / "done", storage / "extra-pickle")
    edit_state(extra, stage="search")
    plant(extra / "searcher-state-9999-12-31_23-59-59.pkl", marker)  # the newest name: the one Ray would read
    cases.append(("extra-pickle", "--resume", extra, "searcher-state-9999-12-31_23-59-59.pkl is not signed"))
    batch = copied(storage / "done", storage / "planted-batch")
    edit_state(batch, stage="confirm", confirm={"data": "full", "candidates": [], "seeds": [1], "first": 1, "most": 1,
                                                  "batches": [{"name": "confirm-1", "runs": [["top1", 1]]}]})
    copied(storage / "done", batch / "confirm-1")
    plant(batch / "confirm-1" / "tuner.pkl", marker)
    cases.append(("planted-batch", "--resume", batch / "confirm-1", "tuner.pkl does not match its signature"))
    for name, how, folder, fragment in cases:
        result = run_in_process(kd_temperature.main, how, "--storage-path", storage, "--name", name, capsys=capsys)
        assert_one_line_error(result, f"{folder} holds Ray Tune state", fragment, "start the search again under a "
                              "new --name")
        assert not marker.exists()
    refused = run_module("search.trust", storage / "done" / "summary.md")
    assert_one_line_error(refused, "is not a Ray Tune experiment folder")
    vouched = run_module("search.trust", trials)
    assert vouched.returncode == 0 and f"signed {trials} (" in vouched.stdout
    assert trust.unsigned(trials) is None


def test_signatures_bind_each_file_to_its_place_and_to_this_users_key(tmp_path, monkeypatch):
    """Unit level: a signed folder verifies; a changed byte, a file moved to another name, a new pickle, a damaged
    signature file or another user's key each name the problem; the key file is private to its user."""
    folder = tmp_path / "experiment"
    (folder / "trial_1").mkdir(parents=True)
    (folder / "tuner.pkl").write_bytes(pickle.dumps({"a": 1}))
    (folder / "experiment_state-1.json").write_text('{"trials": []}')
    (folder / "trial_1" / "params.pkl").write_bytes(pickle.dumps({"lr": 0.1}))
    (folder / "trial_1" / "result.json").write_text("{}")  # plain JSON Ray parses safely: not signed
    assert trust.sign(folder) == 2 and trust.unsigned(folder) is None  # Ray unpickles nothing of a trial's on restore
    key = Path(os.environ["XDG_CONFIG_HOME"]) / "kdtune" / "secret"
    assert key.stat().st_mode & 0o077 == 0
    (folder / "trial_1" / "result.json").write_text('{"x": 1}')
    assert trust.unsigned(folder) is None
    (folder / "experiment_state-1.json").write_text('{"trials": [1]}')
    assert "experiment_state-1.json does not match" in trust.unsigned(folder)
    trust.sign(folder)
    state = (folder / "experiment_state-1.json").read_bytes()
    (folder / "experiment_state-1.json").write_bytes((folder / "tuner.pkl").read_bytes())  # signed bytes, other name
    assert trust.unsigned(folder) == "experiment_state-1.json does not match its signature (changed since kdtune " \
        "wrote it, or signed with another key)"
    (folder / "experiment_state-1.json").write_bytes(state)
    (folder / "tuner2.pkl").write_bytes((folder / "tuner.pkl").read_bytes())
    assert trust.unsigned(folder) == "tuner2.pkl is not signed"
    (folder / "tuner2.pkl").unlink()
    monkeypatch.setenv(trust.SECRET_ENV, "another user's key " * 3)
    assert "does not match" in trust.unsigned(folder)
    monkeypatch.delenv(trust.SECRET_ENV)
    (folder / trust.SIGNATURE_FILE).write_text('{"format": 1, "files": ["tuner.pkl"]}')
    assert "is not one kdtune wrote" in trust.unsigned(folder)
    (folder / trust.SIGNATURE_FILE).unlink()
    assert trust.unsigned(folder) == "it carries no kdtune signature"
    with pytest.raises(UserError, match="vouch for it with `python -m search.trust"):
        trust.tuner(folder, trainable=None, otherwise="x", new=lambda: pytest.fail("a new Tuner over planted state"))
    fresh = tmp_path / "never-started"  # state planted where a fresh experiment would start: never signed for it
    fresh.mkdir()
    (fresh / "searcher-state-zzz.pkl").write_bytes(pickle.dumps({"planted": True}))
    with pytest.raises(UserError, match="never-started holds Ray Tune state"):
        trust.tuner(fresh, trainable=None, otherwise="x", new=lambda: pytest.fail("a new Tuner over planted state"))
    assert trust.tuner(tmp_path / "empty", trainable=None, otherwise="x", new=lambda: "new") == "new"
    trust.sign(folder)
    os.mkfifo(folder / "experiment_state-2.json")  # Ray would read whatever a writer feeds it
    assert trust.unsigned(folder) == "experiment_state-2.json is not a plain file"


# ---------------------------------------------------------------- 6. every number, name and path checked first

def test_every_number_and_name_is_checked_before_anything_is_made(tmp_path, capsys):
    from distill.train import main as train_main
    from search import replay

    storage = tmp_path / "results"
    cases = [
        (mcmi_lambda.main, ["--lam-range", "0.05", "inf"], "--lam-range inf: not a finite number"),
        (kd_temperature.main, ["--temperature-range", "1", "inf"], "--temperature-range inf: not a finite number"),
        (kd_temperature.main, ["--alpha-range", "nan", "1"], "--alpha-range nan: not a finite number"),
        (kd_temperature.main, ["--margin", "1e999"], "--margin inf: not a finite number"),
        (kd_temperature.main, ["--kd-temperature", "nan"], "--kd-temperature nan: not a finite number"),
        (kd_temperature.main, ["--sampler", "grid", "--grid-values", "kd.temperature=inf,2", "--grid-values",
                               "kd.alpha=0.9"], "--grid-values kd.temperature: inf is not a finite number"),
        (kd_temperature.main, ["--sampler", "grid", "--grid-values", "kd.temperature=2,nan", "--grid-values",
                               "kd.alpha=0.9"], "--grid-values kd.temperature: nan is not a finite number"),
        (kd_temperature.main, ["--name", "λ" * 150], "at most 200 bytes in UTF-8"),
        (kd_temperature.main, ["--storage-path", tmp_path / "st?x"], "contains ?, which MLflow's SQLite store"),
        (kd_temperature.main, ["--storage-path", tmp_path / "st#x"], "contains #"),
        (kd_temperature.main, ["--storage-path", tmp_path / "st%20x"], "contains %"),
    ]
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    cases.append((kd_temperature.main, ["--storage-path", tmp_path / "loop" / "results"], "cannot be resolved"))
    for main, argv, fragment in cases:
        result = run_in_process(main, *STORAGE_ARGS, "--storage-path", storage, *argv, capsys=capsys)
        assert_one_line_error(result, fragment)
        assert result.returncode == 2, argv
    grid = REPO / "bench" / "grids" / "kd-bcpd.parquet"
    for main, argv, fragment in [
        (replay.main, [grid, "--epsilon", "nan"], "--epsilon nan: not a finite number"),
        (train_main, ["teacher", "--dataset", "digits", "--lr", "nan", "--out", tmp_path / "out"],
         "--lr nan: not a finite number"),
    ]:
        result = run_in_process(main, *argv, capsys=capsys)
        assert_one_line_error(result, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop"]


def test_an_output_file_whose_folder_cannot_exist_is_refused_before_the_replay(tmp_path, capsys):
    from search import fidelity, replay

    (tmp_path / "a-file").write_text("x")
    grid = REPO / "bench" / "grids" / "kd-bcpd.parquet"
    for main, argv in ((replay.main, ["--json"]), (replay.main, ["--plot"]), (fidelity.main, ["--json"])):
        started = time.monotonic()
        result = run_in_process(main, grid, *argv, tmp_path / "a-file" / "out", capsys=capsys)
        assert_one_line_error(result, f"{argv[0]} {tmp_path / 'a-file' / 'out'}: its folder",
                              f"{tmp_path / 'a-file'} is a file")
        assert time.monotonic() - started < 60 and "regret" not in result.stdout  # before the work
    result = run_in_process(replay.main, grid, "--repeats", "2", "--json", tmp_path / "new" / "dir" / "o.json",
                            capsys=capsys)
    assert result.returncode == 0 and (tmp_path / "new" / "dir" / "o.json").is_file()  # a new folder is made


def test_tables_that_cannot_be_scored_or_repeat_their_rows_are_refused(tmp_path, capsys):
    import pyarrow.parquet as pq

    from search import fidelity, replay

    table = pq.read_table(REPO / "bench" / "grids" / "kd-bcpd.parquet")
    nan = table.set_column(table.schema.get_field_index("student_val_acc"), "student_val_acc",
                           pa.array([float("nan")] * table.num_rows))
    pq.write_table(nan, tmp_path / "nan.parquet")
    pq.write_table(pa.concat_tables([table, table]), tmp_path / "twice.parquet")
    for main in (replay.main, fidelity.main):
        assert_one_line_error(run_in_process(main, tmp_path / "nan.parquet", capsys=capsys),
                              "student_val_acc is missing or NaN in every row")
        assert_one_line_error(run_in_process(main, tmp_path / "twice.parquet", capsys=capsys),
                              f"row {table.num_rows} repeats row 0", "a table holds each trial's epoch once")


def test_a_state_naming_an_unknown_stage_or_a_batch_outside_its_folder_is_refused(tmp_path, capsys):
    saved = {"argv": ["--preset", "digits"], "parent_run_id": "0" * 32, "tracking_uri": "sqlite:////x/mlflow.db",
             "search": "kd_temperature", "command": "python -m search.kd_temperature", "format": STATE_FORMAT,
             "stage": "rm -rf /"}
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / STATE_FILE).write_text(json.dumps(saved))
    result = run_in_process(kd_temperature.main, "--resume", "--storage-path", tmp_path, "--name", "odd", capsys=capsys)
    assert_one_line_error(result, "is damaged (stage 'rm -rf /' is none of search, confirm, done)")
    (tmp_path / "escape").mkdir()  # a confirmation batch named as a path out of the search's folder
    plan = {"batches": [{"name": "../../elsewhere", "runs": [["top1", 1]]}]}
    (tmp_path / "escape" / STATE_FILE).write_text(json.dumps({**saved, "stage": "confirm", "confirm": plan}))
    result = run_in_process(kd_temperature.main, "--resume", "--storage-path", tmp_path, "--name", "escape",
                            capsys=capsys)
    assert_one_line_error(result, "is damaged (ValueError: confirmation batch '../../elsewhere' is not a folder name)")


# ---------------------------------------------------------------- 7. damaged stores, sizes, limits

def test_a_damaged_or_foreign_store_is_one_line_before_a_search_folder_is_made(tmp_path, capsys):
    import sqlite3

    garbage = b"SQLite format 2? no: " + bytes(range(256)) * 8
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE notes (text)")
    old_schema = tmp_path / "old.db"
    with sqlite3.connect(old_schema) as db:  # an MLflow store at another schema revision
        for table in ("experiments", "runs", "alembic_version"):
            db.execute(f"CREATE TABLE {table} (version_num)")
        db.execute("INSERT INTO alembic_version VALUES ('0a8213491aaa')")
    cases = [("mlflow.db", garbage, "is damaged (file is not a database): it is not an MLflow tracking store"),
             ("optuna.db", garbage, "is damaged (file is not a database): it is not an Optuna store"),
             ("mlflow.db", foreign.read_bytes(), "is a SQLite database but not an MLflow tracking store (it lacks "
                                                 "the tables alembic_version, experiments, runs)"),
             ("optuna.db", foreign.read_bytes(), "is a SQLite database but not an Optuna store"),
             ("mlflow.db", old_schema.read_bytes(), "holds an MLflow store of another schema (0a8213491aaa; MLflow "),
             ("optuna.db", old_schema.read_bytes(), "is a SQLite database but not an Optuna store")]
    for index, (name, content, fragment) in enumerate(cases):
        storage = tmp_path / f"results-{index}"
        storage.mkdir()
        (storage / name).write_bytes(content)
        result = run_in_process(kd_temperature.main, *STORAGE_ARGS, "--storage-path", storage, "--name", "s",
                                capsys=capsys)
        assert_one_line_error(result, f"{storage / name} {fragment}")
        assert (storage / name).read_bytes() == content  # read, never written
        assert sorted(p.name for p in storage.iterdir()) == [name, f"{name}.lock"]  # no search folder, no store


def test_sizes_that_cannot_fit_are_refused_before_anything_is_allocated(tmp_path, capsys):
    from distill.train import main as train_main

    teacher = tmp_path / "t.pth"
    models.save_weights(models.create("resnet8", 10), teacher)
    student = ["student", "--dataset", "digits", "--arch", "resnet8", "--teacher", "resnet8", "--teacher-checkpoint",
               teacher, "--epochs", "1", "--out", tmp_path / "out"]
    for argv, fragment in [
        (["--distiller", "crd", "--crd-nce-k", "100000000"], "crd's per-step tensors alone take"),
        (["--distiller", "kd", "mimkd", "--mimkd-critic-width", "1000000000"], "mimkd's parameters and buffers alone"),
    ]:
        started = time.monotonic()
        result = run_in_process(train_main, *student, *argv, capsys=capsys)
        assert_one_line_error(result, "the student run (resnet8 from resnet8, batch 64) needs at least", fragment)
        assert time.monotonic() - started < 60 and not (tmp_path / "out").exists()
    search = run_in_process(distiller.main, "--method", "dkd", *STORAGE_ARGS, "--distiller", "dkd", "crd",
                            "--crd-nce-k", "100000000", "--storage-path", tmp_path / "results", capsys=capsys)
    assert_one_line_error(search, "crd's per-step tensors alone take")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.pth"]


def test_too_few_open_files_is_one_line(tmp_path):
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    result = subprocess.run([sys.executable, "-m", "search.kd_temperature", *STORAGE_ARGS, "--storage-path",
                             str(tmp_path / "results")], capture_output=True, text=True, cwd=REPO, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=limit)
    assert_one_line_error(result, "this shell lets a process open only 40 files (ulimit -n)")
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- 8. SIGTERM ends like Ctrl-C; a storage moves

def stop_search(storage: Path, name: str, send, extra: Sequence[str] = ()) -> tuple[int, str]:
    """A kd_temperature search (its own process group, as a terminal's job is), stopped by `send(process)` once its
    trials reported two more epochs than its folder held at the start. Returns its exit status and output."""
    argv = [sys.executable, "-m", "search.kd_temperature", *STORAGE_ARGS, "--teacher-epochs", "1", "--epochs", "8",
            "--num-samples", "2", "--confirm-seeds", "0", "--storage-path", str(storage), "--name", name, *extra]
    log = storage.parent / f"{name}-{len(extra)}.log"
    with log.open("w") as out:
        driver = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO,
                                  env={**os.environ, "PYTHONPATH": str(REPO)})
        def reported() -> int:
            return sum(len(p.read_text().splitlines()) for p in storage.glob(f"{name}/student_*/result.json"))

        deadline, start = time.monotonic() + 300, reported()
        while time.monotonic() < deadline and driver.poll() is None and reported() < start + 2:
            time.sleep(0.3)
        assert driver.poll() is None, log.read_text()[-3000:]
        send(driver)
        code = driver.wait(timeout=300)
    return code, log.read_text()


@pytest.mark.slow
def test_sigterm_ends_a_search_as_ctrl_c_does(finished_storage, tmp_path):
    """SIGTERM to the driver alone (timeout, Slurm, Kubernetes): exit 143, the runs KILLED, the resume command, no
    traceback or Ray dump. Then Ctrl-C as a terminal sends it, to the whole process group, on the resumed search:
    exit 130, the same, and no worker prints an ignored exception."""
    storage = copied(finished_storage, tmp_path / "results")
    code, out = stop_search(storage, "term", lambda driver: driver.send_signal(signal.SIGTERM))
    assert code == 143, out[-3000:]
    assert "stopped by SIGTERM; continue with:" in out and f"--resume --storage-path {storage} --name term" in out
    code, out2 = stop_search(storage, "term", lambda driver: os.killpg(driver.pid, signal.SIGINT), ["--resume"])
    assert code == 130, out2[-3000:]
    assert "resuming" in out2 and "interrupted; continue with:" in out2
    for text in (out, out2):
        assert "Traceback" not in text and "Exception ignored" not in text and "SIGABRT" not in text
    import mlflow

    client = mlflow.MlflowClient(tracking.sqlite_uri(storage / "mlflow.db"))
    runs = client.search_runs([client.get_experiment_by_name("kdtune-kd_temperature").experiment_id],
                              filter_string="tags.mlflow.runName = 'term'")
    assert [run.info.status for run in runs] == ["KILLED"]
    assert not client.search_runs([runs[0].info.experiment_id], filter_string="attributes.status = 'RUNNING'")


@pytest.mark.slow
def test_a_copied_storage_logs_into_itself_and_a_moved_unfinished_search_is_refused(finished_storage, tmp_path,
                                                                                      capsys):
    """`cp -a S S2`, then a new search in S2: its artifacts (and the copied runs') resolve inside S2, and nothing in
    S changes; a search whose Tune state names S cannot resume in S2, in one line."""
    before = snapshot(finished_storage)
    storage = copied(finished_storage, tmp_path / "moved")
    result = tiny_search(storage, "again")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"storage moved: the MLflow store {storage / 'mlflow.db'} now keeps its artifacts in " in result.stdout
    assert "MLL teacher: resnet14 from " + str(storage / "teachers") in result.stdout
    assert snapshot(finished_storage) == before
    import mlflow

    client = mlflow.MlflowClient(tracking.sqlite_uri(storage / "mlflow.db"))
    experiment = client.get_experiment_by_name("kdtune-kd_temperature")
    runs = client.search_runs([experiment.experiment_id])
    assert experiment.artifact_location == (storage / "mlartifacts").as_uri() and len(runs) >= 4
    assert all(run.info.artifact_uri.startswith((storage / "mlartifacts").as_uri() + "/") for run in runs)
    assert client.list_artifacts(next(r for r in runs if r.info.run_name == "again").info.run_id)
    edit_state(storage / "done", stage="search")
    moved = run_in_process(kd_temperature.main, "--resume", "--storage-path", storage, "--name", "done", capsys=capsys)
    assert_one_line_error(moved, f"{storage / 'done'} was written at {finished_storage / 'done'} and has moved since",
                          "so it continues only where it was written: move it back")
