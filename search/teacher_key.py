"""What identifies a cached MLL teacher: the whole teacher job (less what only says where or how fast it runs) and
the fingerprint of the data it trains on, hashed. A field added to the job later is in the key without anyone
listing it, and a teacher of one tree or one version of a folder is never handed to a search on another."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from distill.config import TeacherJob

CACHE_FORMAT = 2  # 2: the whole job and the data's fingerprint (1 hashed a hand-written list of fields)
NOT_THE_TEACHER = {  # job fields that never change the trained teacher: where the data lives and whether it may be
    # fetched or checked, and the student's share of it (the teacher trains on all of train, every class)
    "data": ("data_dir", "download", "verify_md5", "few_shot_fraction", "few_shot_mode", "zero_shot_classes"),
}


def identity(job: TeacherJob) -> dict:
    """Everything in `job` that determines the trained teacher: the whole job with its recipe resolved, less
    `NOT_THE_TEACHER` and the runtime (all but its seed)."""
    whole = asdict(job)
    for part, names in NOT_THE_TEACHER.items():
        for name in names:
            whole[part].pop(name)
    whole["optim"] = asdict(job.recipe())
    whole["runtime"] = {"seed": job.runtime.seed}  # RuntimeConfig: nothing else in it changes what is learned
    whole["objective"] = job.objective.described()
    return whole


def cache_key(job: TeacherJob, fingerprint: str) -> str:
    """A short hash of the job's `identity` and the `fingerprint` of the data it trains on."""
    key = {"format": CACHE_FORMAT, "job": identity(job), "data": fingerprint}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
