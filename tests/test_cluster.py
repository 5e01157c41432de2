"""Searches on a real multi-node Ray cluster: a head and a worker node started with `ray start` as
separate process trees, a real `mlflow server`, searches submitted with `ray job submit` exactly as
on a cluster brought up with cluster.yaml; and a worker node killed in the middle of a search.

Everything runs in a private network namespace whose only interface is loopback (see
tests/loopback_cluster.py), and every process it started is gone when the module ends.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from search.tracking import NODE_TAG, RETRIES_TAG, RETRY_REASON_TAG, ROLE_TAG, SEARCH_TAG, TRIAL_ROLE, TRIAL_TAG
from tests.loopback_cluster import HEAD_IP, WORKER_IP, LoopbackCluster, namespaces_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not namespaces_available(), reason="needs a private network namespace (unshare -n) so that "
                       "Ray, whose gRPC servers bind every interface, is reachable on loopback only"),
]

# A small search on digits: two trials at a time, one CPU each, one per node; the MLL teacher is trained first, as a
# trial on the cluster. No confirmation stage: its runs are Tune trials like these (tests/test_search.py covers it),
# and it would double the test's time.
SEARCH = ["--preset", "digits", "--teacher", "resnet8", "--student", "resnet8", "--teacher-epochs", "2",
          "--num-samples", "2", "--max-concurrent-trials", "2", "--cpus-per-trial", "1", "--confirm-seeds", "0"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    loopback = LoopbackCluster(tmp_path_factory.mktemp("cluster"))
    try:
        loopback.start()
        yield loopback
    finally:
        left = loopback.stop()
    assert not left, f"processes still running after the cluster stopped: {left}"


def search_command(search: str, *argv: str) -> list[str]:
    return [sys.executable, "-m", f"search.{search}", *SEARCH, *argv]


def trial_results(experiment: Path) -> dict[str, list[dict]]:
    """Every result Tune recorded, per trial id, in the order it arrived (trial folders' result.json)."""
    results = {}
    for path in experiment.glob("*/result.json"):
        lines = []
        for line in path.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:  # a line Tune is still writing while the search runs
                break
        if lines:
            results[lines[0]["trial_id"]] = lines
    return results


def store(cluster: LoopbackCluster) -> mlflow.MlflowClient:
    """The MLflow server's own backend store, read directly (the server keeps running)."""
    return mlflow.MlflowClient(f"sqlite:///{cluster.mlflow_db}")


def child_runs(cluster: LoopbackCluster, search: str, search_name: str) -> tuple[object, list]:
    client = store(cluster)
    experiment = client.get_experiment_by_name(f"kdtune-{search}")
    parent = client.search_runs([experiment.experiment_id], filter_string=f"attributes.run_name = '{search_name}'")
    assert len(parent) == 1, [run.info.run_name for run in parent]
    children = client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.`{SEARCH_TAG}` = '{parent[0].info.run_id}' and "
                                                f"tags.`{ROLE_TAG}` = '{TRIAL_ROLE}'")
    return parent[0], children


def test_only_loopback_and_only_with_the_token(cluster):
    assert cluster.interfaces() == ["lo"]  # so Ray's wildcard binds, too, reach loopback only
    listening = cluster.listening()
    assert f"{HEAD_IP}:8265" in listening and "127.0.0.1:5000" in listening  # dashboard and MLflow
    assert all(address.split(":")[0] in ("0.0.0.0", "*", "[::]") or address.startswith(("127.", "[::ffff:127."))
               for address in listening), listening

    hello = [sys.executable, "-c", "print('hello')"]
    outsider = {key: value for key, value in cluster.env.items() if not key.startswith("RAY_AUTH")}
    outsider["HOME"] = str(cluster.root / "outsider")  # no ~/.ray/auth_token either
    refused = cluster.run(cluster.submit(hello), timeout=120, env=outsider)
    assert refused.returncode != 0 and "Missing authentication token" in refused.stdout + refused.stderr
    forged = cluster.run(cluster.submit(hello), timeout=120, env={**outsider, "RAY_AUTH_MODE": "token",
                                                                   "RAY_AUTH_TOKEN": "0" * 64})
    assert forged.returncode != 0 and "Invalid authentication token" in forged.stdout + forged.stderr
    accepted = cluster.run(cluster.submit(hello), timeout=120)
    assert accepted.returncode == 0 and "hello" in accepted.stdout, accepted.stdout + accepted.stderr
    # A search that joins the cluster without its token ends in one line that says how to pass it, and writes
    # nothing. (Ray's operator knob shortens its 20 s of connection retries to 2 here.)
    outsider_results = cluster.root / "outsider" / "results"
    search = cluster.run([sys.executable, "-m", "search.kd_temperature", "--preset", "digits", "--address",
                          cluster.address, "--storage-path", str(outsider_results)], timeout=180,
                         env={**outsider, "RAY_gcs_server_port_wait_time_s": "2"})
    last = search.stderr.strip().splitlines()[-1]
    assert search.returncode == 2 and last.startswith(f"error: cannot join the Ray cluster at {cluster.address}: "
                                                      "it refuses this process's authentication token"), last
    assert "RAY_AUTH_MODE=token" in last and not outsider_results.exists()


def test_search_job_spreads_over_both_nodes_logs_to_the_server_and_survives_a_lost_worker(cluster):
    """A λ search submitted as a Ray job: its two trials start one on each node and log to the MLflow server over
    HTTP (artifacts through the server). The worker dies while its trial fine-tunes the teacher (the MCMI stage);
    the trial continues on the head from its last teacher-stage checkpoint, then distils its student: each
    stage's epochs appear once, in Tune's results and in the trial's one MLflow run. The best trial is tested once."""
    teacher_epochs, student_epochs, kill_after = 6, 3, 2
    log_path = cluster.root / "node-failure-job.log"
    command = search_command("mcmi_lambda", "--mcmi-epochs", str(teacher_epochs), "--epochs", str(student_epochs),
                             "--grace-period", str(student_epochs), "--name", "node-failure", "--max-failures", "2")
    experiment = cluster.storage / "node-failure"  # no --address: the job's RAY_ADDRESS
    with open(log_path, "w") as log:
        job = subprocess.Popen(cluster.inside(cluster.submit(command)), cwd=cluster.root, env=cluster.env,
                               stdout=log, stderr=subprocess.STDOUT)
        try:
            victim = wait_for_trial_on(experiment, WORKER_IP, "teacher_epoch", kill_after, job, timeout=600)
            cluster.kill_worker()
            assert job.wait(900) == 0, log_path.read_text()[-4000:]
        finally:
            if job.poll() is None:
                job.kill()
            if "worker" not in cluster.processes:
                cluster.start_worker()  # leave the cluster whole for any later test

    output = log_path.read_text()
    assert "best trial" in output and "test (once, best trial)" in output
    summary = json.loads((experiment / "summary.json").read_text())
    assert summary["mlflow"]["tracking_uri"] == cluster.tracking_uri  # MLFLOW_TRACKING_URI, over HTTP
    results = trial_results(experiment)
    assert len(results) == 2 and {lines[0]["node_ip"] for lines in results.values()} == {HEAD_IP, WORKER_IP}
    lines = results[victim]
    before = [line for line in lines if line["node_ip"] == WORKER_IP]
    after = [line for line in lines if line["node_ip"] == HEAD_IP]
    assert before and after and lines.index(after[0]) == len(before), "the trial moved once, worker -> head"
    # Restarted from its last checkpoint, not from scratch: the first result after the restart continues the
    # teacher's epochs, and Tune counts iterations since the restore afresh.
    assert after[0]["teacher_epoch"] == before[-1]["teacher_epoch"] + 1 and after[0]["iterations_since_restore"] == 1
    teacher = [line["teacher_epoch"] for line in lines if line["student_epoch"] == 0]
    student = [line["student_epoch"] for line in lines if line["student_epoch"] > 0]
    assert teacher == list(range(1, teacher_epochs + 1)) and student == list(range(1, student_epochs + 1))

    parent, children = child_runs(cluster, "mcmi_lambda", "node-failure")
    assert parent.info.status == "FINISHED" and "test_acc" in parent.data.metrics
    assert sorted(run.data.tags[TRIAL_TAG] for run in children) == sorted(results)  # one run per trial
    for run in children:  # nothing lost, nothing twice
        for metric, epochs in (("teacher_val_acc", teacher_epochs), ("student_val_acc", student_epochs)):
            history = store(cluster).get_metric_history(run.info.run_id, metric)  # step 0: the objective's "none yet"
            assert [m.step for m in history if m.step > 0] == list(range(1, epochs + 1)), (run.info.run_name, metric)
        assert run.info.status == "FINISHED"
    retried = next(run for run in children if run.data.tags[TRIAL_TAG] == victim)
    assert retried.data.tags[RETRIES_TAG] == "1" and retried.data.tags[NODE_TAG] == HEAD_IP
    reason = retried.data.tags[RETRY_REASON_TAG].lower()  # Ray's error: the trial's actor went with its node
    assert any(word in reason for word in ("actor", "node", "died", "unavailable")), reason
    # Artifacts went through the server (--serve-artifacts) into its destination folder.
    assert store(cluster).get_experiment(parent.info.experiment_id).artifact_location.startswith("mlflow-artifacts:")
    assert list(cluster.artifacts.rglob("summary.md")) and list(cluster.artifacts.rglob("student.pth"))


def wait_for_trial_on(experiment: Path, node_ip: str, epoch_key: str, epochs: int, job: subprocess.Popen,
                      timeout: float) -> str:
    """The id of a trial running on `node_ip`, still before its student stage, whose latest result (and
    checkpoint) has `epoch_key` >= `epochs`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert job.poll() is None, "the search ended before a trial reached the worker node"
        for trial_id, lines in trial_results(experiment).items():
            last = lines[-1]
            if last["node_ip"] == node_ip and last.get(epoch_key, 0) >= epochs and not last.get("student_epoch"):
                return trial_id
        time.sleep(0.2)
    raise TimeoutError(f"no trial on {node_ip} reached {epoch_key} {epochs} in {timeout:.0f}s")
