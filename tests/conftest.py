"""Shared fixtures: small CIFAR folders in the official python-pickle format, and a CLI runner."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# The searches the tests run sign their Ray state (search.trust) with a key of this session's own, never the user's.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="kdtune-test-config-")
os.environ.pop("KDTUNE_SECRET", None)


def write_pickle(path: Path, entry: dict) -> None:
    with open(path, "wb") as handle:
        pickle.dump(entry, handle, protocol=2)


def make_cifar100(root: Path, train: int = 300, test: int = 100, seed: int = 0) -> Path:
    """A small `cifar-100-python/` with the official keys (str keys, as the py2 pickles load)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in (("train", train), ("test", test)):
        fine = rng.permutation(np.arange(count) % 100)  # balanced, like the official files
        write_pickle(folder / name, {
            "filenames": [f"img_{i}.png" for i in range(count)],
            "batch_label": f"{name}ing batch 1 of 1",
            "fine_labels": fine.tolist(),
            "coarse_labels": (fine // 5).tolist(),
            "data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
        })
    write_pickle(folder / "meta", {
        "fine_label_names": [f"fine_{i}" for i in range(100)],
        "coarse_label_names": [f"coarse_{i}" for i in range(20)],
    })
    return folder


def make_cifar10(root: Path, per_batch: int = 40, test: int = 50, seed: int = 0) -> Path:
    """A small `cifar-10-batches-py/` whose pickles carry bytes keys, as Python 2 wrote them."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    batches = [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", test)]
    for name, count in batches:
        write_pickle(folder / name, {
            b"batch_label": name.encode(),
            b"labels": rng.permutation(np.arange(count) % 10).tolist(),
            b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
            b"filenames": [f"{i}.png".encode() for i in range(count)],
        })
    write_pickle(folder / "batches.meta", {
        b"label_names": [f"class_{i}".encode() for i in range(10)], b"num_cases_per_batch": per_batch,
    })
    return folder


@pytest.fixture
def cifar100_dir(tmp_path: Path) -> Path:
    make_cifar100(tmp_path)
    return tmp_path


@pytest.fixture
def cifar10_dir(tmp_path: Path) -> Path:
    make_cifar10(tmp_path)
    return tmp_path


def run_module(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m ARGS` the way a user would, capturing its output."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True, text=True, cwd=cwd or REPO,
                          env=env, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """A user mistake: non-zero exit, a single `error:` line naming the problem, no traceback."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def run_in_process(main, *args: object, capsys) -> subprocess.CompletedProcess:
    """A command's `main` called as its `__main__` calls it (one-line errors, exit codes), without the seconds a new
    interpreter spends importing torch: for the many bad-input checks; `run_module` keeps the real thing."""
    from distill.cli import run_cli

    argv = [str(a) for a in args]
    code = run_cli(main, argv)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out, err)
