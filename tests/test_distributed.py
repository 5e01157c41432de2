"""Data-parallel runs (two gloo workers on CPU, as Ray Train's TorchTrainer starts them) against one process:
the MCMI centroids and the batch CMI with its EMA centroid update are the same numbers, the workers' shards of an
epoch are disjoint halves of the one-process order, and a DDP epoch leaves both workers with the same weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from distill import distributed, models
from distill.config import OptimConfig, RuntimeConfig, TeacherJob
from distill.teachers import MCMIConfig
from distill.data import BatchSpec, load_raw, make_splits
from distill.errors import UserError
from distill.losses.cmi import MCMIObjective
from distill.runs import build_teacher_run

WORKERS = 2
JOB = TeacherJob(arch="resnet8", objective=MCMIConfig(lam=0.3, centroid_ema=0.9),
                 optim=OptimConfig(epochs=1, batch_size=32, lr=0.05, schedule="cosine", milestones=()),
                 runtime=RuntimeConfig(seed=1, eval_batch_size=64))


def digits():
    return make_splits(load_raw("digits"), val_size=180, seed=0)


def teacher() -> models.FeatureNet:
    torch.manual_seed(0)
    return models.create("resnet8", 10)


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits and labels of one batch of 16 and centroids to score them against."""
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(16, 10, generator=generator)
    centroids = torch.softmax(torch.randn(10, 10, generator=generator), dim=1)
    return logits, torch.arange(16) % 10, centroids


def measure(rank: int) -> dict:
    """What this process computes: in a process group, its worker's share; alone, the whole."""
    splits = digits()
    run = build_teacher_run(JOB, splits, teacher=teacher())
    out = {"centroids": run.trainer.objective.loss.centroids.clone()}
    logits, labels, centroids = batch()
    if distributed.is_distributed():  # each worker holds half of the batch
        logits, labels = logits[rank::WORKERS], labels[rank::WORKERS]
    objective = MCMIObjective(0.3, centroids, ema_decay=0.9).train()
    out["neg_cmi"] = objective(logits, labels)["neg_cmi"]
    out["ema_centroids"] = objective.centroids.clone()
    train = run.trainer.train_loader
    loader = splits.train.loader(BatchSpec(splits.mean, splits.std, 16, "cpu", train=True, seed=2, indices=True,
                                           sharded=True))
    out["shard"] = torch.cat([positions for *_, positions in loader])
    out["steps"] = len(train)
    result = run.trainer.train_epoch()
    out["weights"] = {k: v.clone() for k, v in run.trainer.model.state_dict().items()}
    out["train_loss"], out["images_per_epoch"] = result.train_loss, len(train) * train.batch_size
    try:
        distributed.per_worker_batch(33)
    except UserError as err:
        out["odd_batch"] = str(err)
    return out


def worker(rank: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=WORKERS)
    try:
        torch.set_num_threads(1)
        torch.save(measure(rank), Path(folder, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[dict, list[dict]]:
    folder = tmp_path_factory.mktemp("ddp")
    mp.spawn(worker, args=(str(folder),), nprocs=WORKERS)
    shards = [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(WORKERS)]
    return measure(0), shards


def test_the_mcmi_centroids_of_two_workers_are_those_of_one(results):
    alone, shards = results
    for shard in shards:
        torch.testing.assert_close(shard["centroids"], alone["centroids"], atol=1e-6, rtol=1e-5)


def test_the_batch_cmi_and_its_ema_centroid_update_match_one_process(results):
    alone, shards = results
    # DDP averages the workers' gradients, so the loss it optimises is the mean of the workers' equal halves.
    torch.testing.assert_close(sum(s["neg_cmi"] for s in shards) / WORKERS, alone["neg_cmi"])
    for shard in shards:
        torch.testing.assert_close(shard["ema_centroids"], alone["ema_centroids"])


def test_the_workers_read_disjoint_equal_halves_of_the_one_process_order(results):
    alone, shards = results
    first, second = (s["shard"] for s in shards)
    assert len(first) == len(second) and not set(first.tolist()) & set(second.tolist())
    cut = len(alone["shard"]) // WORKERS * WORKERS
    assert sorted(torch.cat([first, second]).tolist()) == sorted(alone["shard"][:cut].tolist())


def test_a_ddp_epoch_takes_the_global_batch_and_leaves_the_workers_with_equal_weights(results):
    alone, shards = results
    assert shards[0]["steps"] == shards[1]["steps"] == alone["steps"]  # half the images at half the batch
    assert shards[0]["images_per_epoch"] * WORKERS == alone["images_per_epoch"]
    for name, value in shards[0]["weights"].items():
        torch.testing.assert_close(shards[1]["weights"][name], value, msg=name)
    assert shards[0]["train_loss"] == shards[1]["train_loss"]  # the loss sums are added across the workers


def test_a_batch_that_does_not_split_over_the_workers_is_refused(results):
    _, shards = results
    assert shards[0]["odd_batch"] == "the batch size 33 does not split evenly over 2 workers: give a multiple of 2"


def test_one_process_runs_are_untouched_by_the_data_parallel_paths():
    assert distributed.world() == (0, 1)
    order = torch.arange(10)
    assert distributed.shard(order, train=True) is order
    module = torch.nn.Linear(2, 2)
    assert distributed.data_parallel(module, torch.device("cpu")) is module
    assert distributed.per_worker_batch(33) == 33
