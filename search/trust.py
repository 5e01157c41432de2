"""Ray Tune's own state is read back only when this user's kdtune signed it, never because of where it sits.

Ray Tune keeps an experiment's state as cloudpickle (`tuner.pkl`, the searcher's and callbacks' `*.pkl`, the trials
inside `experiment_state-*.json`); restoring a folder unpickles them, which runs whatever they hold. So every Tune
folder kdtune writes is signed as Jupyter signs notebooks: an HMAC-SHA256 of each such file (its name and its
bytes) with a secret kept outside every storage folder, in `$KDTUNE_SECRET` (for drivers on several
machines that share a storage path) or else in `~/.config/kdtune/secret`, made on first use. A folder is handed to
`Tuner.restore` only when every such file it holds carries a valid signature (`tuner`); `python -m search.trust
FOLDER` signs a folder its owner vouches for (one written before kdtune signed), as `jupyter trust` does.

What it protects: a folder at rest (copied from elsewhere, or changed while no kdtune driver ran on it). A process
that can write into a folder while its driver runs is out of its reach (the driver signs what Ray writes a second
later, and cannot tell Ray's writes from another's), as a notebook changed while Jupyter has it open is signed
on its next save.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from distill.cli import ArgumentParser, run_cli
from distill.errors import UserError
from search import console

SECRET_ENV = "KDTUNE_SECRET"
SIGNATURE_FILE = "kdtune-signature.json"
TUNER_FILE = "tuner.pkl"  # what makes a folder a Tune experiment (Ray's `Tuner.can_restore`)
SIGNATURE_FORMAT = 1
MIN_KEY = 32  # characters of a signing key
VERSIONS_KEPT = 3  # signed versions of each state file that verify (Ray uploads its state after writing it)


def config_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kdtune"


def secret() -> bytes:
    """This user's signing key: `$KDTUNE_SECRET`, else the key file in the config folder, created (mode 600) the
    first time any kdtune process needs it."""
    shared = os.environ.get(SECRET_ENV)
    if shared is not None:
        if len(shared) < MIN_KEY:
            raise UserError(f"${SECRET_ENV} is {len(shared)} characters; a signing key needs at least {MIN_KEY} "
                            "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)")
        return shared.encode()
    path = config_dir() / "secret"
    try:
        return read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    scratch = path.with_name(f".secret-{os.getpid()}")
    handle = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private before it holds the key
    with os.fdopen(handle, "wb") as out:
        out.write(os.urandom(32).hex().encode())
    try:
        os.link(scratch, path)  # atomic, and never over a key another process made first
    except FileExistsError:
        pass
    finally:
        scratch.unlink()
    return read_key(path)


def read_key(path: Path) -> bytes:
    key = path.read_bytes().strip()
    if len(key) < MIN_KEY:
        raise UserError(f"the signing key {path} is damaged (too short); delete it, and kdtune makes a new one (the "
                        f"folders signed with the old key then need `python -m search.trust FOLDER` again)")
    return key


def is_experiment(folder: Path) -> bool:
    return (folder / TUNER_FILE).is_file()


def ray_state_files(folder: Path) -> list[Path]:
    """The entries of the Tune experiment `folder` that Ray unpickles on a restore, whatever their type: its `.pkl`
    files (the tuner, the searcher's and the callbacks' state) and its JSON states, which carry pickled trials. They
    all sit at its top (Ray 2.60 unpickles nothing from a trial's folder on a restore); experiments nested in it (a
    search's confirmation batches) are signed on their own."""
    return sorted(path for path in folder.iterdir() if path.suffix == ".pkl"
                  or (path.suffix == ".json" and "state-" in path.name))


def file_signature(key: bytes, path: Path) -> str:
    """HMAC-SHA256 of the file's name and bytes: a signed file cannot stand in for another state file."""
    mac = hmac.new(key, path.name.encode() + b"\0", hashlib.sha256)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            mac.update(block)
    return mac.hexdigest()


def sign(folder: Path, written: Path | None = None) -> int:
    """Sign the Ray state files of the experiment `folder` (or those Ray just `written` to its staging folder, on
    their way to `folder`); each name keeps its last few signed versions, so a file whose upload has not landed yet
    still verifies. The number of files signed."""
    key = secret()
    saved = saved_signature(folder).get("files")
    signatures = {name: [s for s in versions if isinstance(s, str)] for name, versions in saved.items()
                  if isinstance(versions, list)} if isinstance(saved, dict) else {}
    signed = 0
    for path in ray_state_files(written or folder):
        if not regular(path):
            continue  # never Ray's: `unsigned` refuses it
        try:
            new = file_signature(key, path)
        except FileNotFoundError:  # Ray replaced it meanwhile: the next signing pass covers the new one
            continue
        signatures[path.name] = [new, *(s for s in signatures.get(path.name, []) if s != new)][:VERSIONS_KEPT]
        signed += 1
    scratch = folder / f".{SIGNATURE_FILE}.{os.getpid()}"
    scratch.write_text(json.dumps({"format": SIGNATURE_FORMAT, "folder": str(folder.resolve()),
                                   "files": signatures}, indent=1))
    scratch.replace(folder / SIGNATURE_FILE)
    return signed


def regular(path: Path) -> bool:
    """A plain file, not a link, FIFO or device (which could hand Ray other bytes than those signed)."""
    return path.is_file() and not path.is_symlink()


def unsigned(folder: Path) -> str | None:
    """Why the experiment `folder` must not be restored (a state file unsigned, or changed since it was signed), or
    None when every file Ray would unpickle carries this user's signature."""
    signatures = saved_signature(folder).get("files")
    if signatures is None:
        return "it carries no kdtune signature"
    if not isinstance(signatures, dict):
        return f"its {SIGNATURE_FILE} is not one kdtune wrote"
    key = secret()
    for path in ray_state_files(folder):
        versions = signatures.get(path.name)
        if not regular(path):
            return f"{path.name} is not a plain file"
        if not isinstance(versions, list) or not versions:
            return f"{path.name} is not signed"
        actual = file_signature(key, path)
        if not any(isinstance(v, str) and hmac.compare_digest(v, actual) for v in versions):
            return (f"{path.name} does not match its signature (changed since kdtune wrote it, or signed with "
                    "another key)")
    return None


def saved_signature(folder: Path) -> dict:
    """The folder's signature file as written ({} when it has none; `files` not a mapping when it is damaged)."""
    try:
        saved = json.loads((folder / SIGNATURE_FILE).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError):
        return {"files": "damaged"}
    return saved if isinstance(saved, dict) and saved.get("format") == SIGNATURE_FORMAT else {"files": "other"}


def moved_from(folder: Path) -> str | None:
    """Where a signed experiment was written, when that is not `folder`: Ray's pickles (the MLflow callback, the
    Optuna searcher) name the stores there, so it may continue only in place."""
    written = saved_signature(folder).get("folder")
    return written if isinstance(written, str) and written != str(folder.resolve()) else None


def check(folder: Path, otherwise: str) -> None:
    """A UserError unless the experiment `folder` may be restored; `otherwise` says how to go on without it."""
    if not folder.is_dir() or not ray_state_files(folder):
        return
    why = unsigned(folder)
    if why:
        raise UserError(f"{folder} holds Ray Tune state that this user's kdtune did not sign ({why}), and restoring "
                        f"it would run whatever it holds. If you wrote it (before kdtune signed its folders), vouch "
                        f"for it with `python -m search.trust {folder}`; "
                        f"otherwise {otherwise}")
    written = moved_from(folder)
    if written:
        raise UserError(f"{folder} was written at {written} and has moved since; Ray's saved state there names the "
                        f"MLflow and Optuna stores of that place, so it continues only where it was written: move "
                        f"it back, or {otherwise}")


def tuner(folder: Path, trainable, otherwise: str, new):
    """The Tune experiment in `folder`: restored (`Tuner.restore`) when one was started there, else `new()`. Either
    way whatever Ray state the folder already holds is checked first (`check`), so a fresh experiment never signs
    a state file planted before it began."""
    from ray import tune

    check(folder, otherwise)
    if not is_experiment(folder):
        return new()
    console.say(f"resuming {folder}")
    return tune.Tuner.restore(str(folder), trainable=trainable, resume_errored=True)


def signer():
    """A Tune callback that signs its experiment's state as Ray saves it. Tune asks its callbacks for their state
    while it saves (`get_state`), after writing the experiment's and the searcher's state to its staging folder and
    before uploading them to the storage path, so their signature is in place before they land; the end of every
    step signs what else changed (the tuner). A driver that dies (killed, or its node lost) leaves a folder its
    resume can trust; `tuning.fit` signs once more at the end. It keeps no state of its own, and kdtune's
    callbacks none either, so Tune writes no callback-state pickle at all."""
    from ray import tune

    class Signer(tune.Callback):
        def __init__(self) -> None:
            self.seen, self.folders = None, None

        def on_step_begin(self, iteration: int, trials: list, **info) -> None:
            if trials and self.folders is None:
                self.folders = Path(trials[0].local_experiment_path), Path(trials[0].remote_experiment_path)

        def get_state(self) -> None:
            if self.folders is not None:
                staging, folder = self.folders
                with contextlib.suppress(OSError):
                    sign(folder, written=staging)
            return None

        def on_step_end(self, iteration: int, trials: list, **info) -> None:
            if self.folders is None:
                return
            folder = self.folders[1]
            try:
                stamp = [(p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in ray_state_files(folder)]
                if stamp != self.seen:
                    sign(folder)
                    self.seen = stamp
            except OSError:  # a file replaced mid-pass, a storage hiccup: the next pass, or the fit's end, signs
                pass

    return Signer()


def vouch(folders: Sequence[Path]) -> list[str]:
    """Sign `folders` (a search folder with its confirmation batches, or a teacher's) on their owner's word."""
    lines = []
    for folder in folders:
        experiments = [folder, *sorted(sub for sub in folder.iterdir() if sub.is_dir() and is_experiment(sub))] \
            if folder.is_dir() else []
        if not experiments or not is_experiment(folder):
            raise UserError(f"{folder} is not a Ray Tune experiment folder (it has no {TUNER_FILE}); nothing to sign")
        for experiment in experiments:
            lines.append(f"signed {experiment} ({sign(experiment)} Ray state files)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m search.trust", description=(
        "Vouch for Tune experiment folders you wrote, so a search may restore them: kdtune restores only folders "
        "signed with this user's key (in $KDTUNE_SECRET, else ~/.config/kdtune/secret). Never sign a folder you "
        "were sent: restoring it runs whatever its pickles hold."))
    parser.add_argument("folders", nargs="+", type=Path, metavar="FOLDER",
                        help="a search folder (STORAGE/NAME, its confirmation batches with it) or a teacher's "
                        "(STORAGE/teacher-...)")
    args = parser.parse_args(argv)
    for line in vouch([folder.absolute() for folder in args.folders]):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
