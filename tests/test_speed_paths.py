"""The GPU speed paths, exercised where this machine can: feature shapes probed on the net's own device, batches in
the dtype and memory format the nets consume, the training step under torch.compile (a learning rate and an epoch
that change without a recompile), GPU packing of search trials, and the progress table's columns. The CUDA-graph
run itself needs a GPU: its test skips without one."""
from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from distill import models, step
from distill.config import OptimConfig, RuntimeConfig, StudentJob
from distill.data import BatchSpec, DeviceLoader, ImageSet, load_raw, make_splits
from distill.engine import EpochResult
from distill.losses import KDConfig
from distill.losses.crd import CRDConfig
from distill.losses.dkd import DKDConfig
from distill.runs import build_student_run, feature_shapes
from search.packing import CPU_CONCURRENT_TRIALS, pack
from tests.conftest import assert_one_line_error, run_in_process
from trainables import common
from trainables.metrics import GPU_MEMORY_GIB, IMAGES_PER_SEC, PROGRESS, STUDENT_EPOCH, STUDENT_VAL_ACC

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
COSINE = OptimConfig(epochs=2, batch_size=32, lr=0.05, schedule="cosine", milestones=())


@pytest.fixture(scope="module")
def few():
    return make_splits(load_raw("digits"), val_size=180, seed=0, few_shot_fraction=0.1)


@pytest.fixture(scope="module")
def teacher(few):
    torch.manual_seed(0)
    return models.create("resnet8", few.num_classes)


def test_feature_shapes_are_probed_where_the_net_lives():
    """A teacher already moved to another device (here `meta`, the one a CPU machine has) or another dtype is probed
    there, not with a CPU float tensor (which failed for a CUDA teacher)."""
    net = models.create("resnet8x4", 100)
    expected = feature_shapes(net)
    assert feature_shapes(models.create("resnet8x4", 100).to("meta")) == expected
    assert feature_shapes(models.create("resnet8x4", 100).to(torch.bfloat16)) == expected
    assert feature_shapes(net, (3, 64, 64))[0] == torch.Size([expected[0][0], 64, 64])


def test_batches_come_in_the_dtype_and_memory_format_the_nets_consume(few, teacher):
    data = ImageSet(torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8), torch.arange(8) % 2)
    plain, = DeviceLoader(data, BatchSpec(MEAN, STD, 8, train=False))
    fast, = DeviceLoader(data, BatchSpec(MEAN, STD, 8, train=False, dtype=torch.bfloat16, channels_last=True))
    assert fast[0].dtype == torch.bfloat16 and fast[0].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast[0], plain[0].to(torch.bfloat16), rtol=0, atol=0)
    job = StudentJob(arch="resnet8", teacher_arch="resnet8", optim=COSINE,
                     runtime=RuntimeConfig(precision="bf16", channels_last=True))
    run = build_student_run(job, few, teacher=teacher)
    assert run.trainer.train_loader.dtype == run.trainer.val_loader.dtype == torch.bfloat16
    fp32 = build_student_run(StudentJob(arch="resnet8", teacher_arch="resnet8", optim=COSINE), few, teacher=teacher)
    assert fp32.trainer.train_loader.dtype == torch.float32


def student(few, teacher, mode: str, distillers=None, optim: OptimConfig = COSINE):
    job = StudentJob(arch="resnet8", teacher_arch="resnet8", optim=optim, runtime=RuntimeConfig(seed=1, compile=mode),
                     distillers=distillers or {"kd": KDConfig()})
    return build_student_run(job, few, teacher=teacher)


def test_the_aot_eager_traced_step_trains_like_the_eager_one_and_recompiles_nothing_later(few, teacher, monkeypatch):
    """Two epochs of KD + DKD (its warm-up reads the epoch) + CRD (memory banks written in place) under
    torch.compile: the learning rate (cosine) and the epoch change between them, yet the second epoch compiles
    nothing new, and the losses match the eager run's. The backend is aot_eager: the graphs inductor would compile,
    traced and run uncompiled, so the test needs no C++ build."""
    monkeypatch.setattr(step, "BACKEND", "aot_eager")
    torch._dynamo.reset()
    distillers = {"kd": KDConfig(), "dkd": DKDConfig(), "crd": CRDConfig(nce_k=64)}
    eager = [r.train_terms for r in student(few, teacher, "off", distillers).trainer.epochs()]
    run = student(few, teacher, "reduce-overhead", distillers)
    assert all(isinstance(g["lr"], torch.Tensor) for g in run.trainer.optimizer.param_groups)
    counters.clear()
    compiled = [run.trainer.train_epoch().train_terms]  # compiles (the optimiser twice: before and after momentum)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 2  # at least the forward with its loss, and the optimiser step
    with torch._dynamo.config.patch(error_on_recompile=True):
        compiled.append(run.trainer.train_epoch().train_terms)
    assert counters["stats"]["unique_graphs"] == graphs
    assert run.trainer.optimizer.param_groups[0]["lr"].item() < COSINE.lr  # the schedule wrote into the tensor
    for got, want in zip(compiled, eager):
        assert got.keys() == want.keys() == {"ce", "kd", "dkd_tckd", "dkd_nckd", "crd"}
        assert got == pytest.approx(want, rel=1e-3, abs=1e-5)
    torch._dynamo.reset()


def test_a_resumed_compiled_run_gets_tensor_learning_rates_back_and_compiles_once(few, teacher, monkeypatch):
    """A checkpoint brings the learning rates back in whatever form it saved them (CPU tensors, or floats from an
    eager run). The resumed compiled run turns them into tensors on the parameters' device again, so the
    schedule's next change recompiles nothing; a float would be baked into the graph and recompile every epoch."""
    monkeypatch.setattr(step, "BACKEND", "aot_eager")
    three = OptimConfig(epochs=3, batch_size=32, lr=0.05, schedule="cosine", milestones=())
    eager = student(few, teacher, "off", optim=three)
    eager.trainer.train_epoch()
    state = eager.trainer.state_dict()
    assert not isinstance(state["optimizer"]["param_groups"][0]["lr"], torch.Tensor)
    run = student(few, teacher, "reduce-overhead", optim=three)
    run.trainer.load_state_dict(state)
    params = run.trainer.optimizer.param_groups[0]["params"][0]
    for group in run.trainer.optimizer.param_groups:
        assert isinstance(group["lr"], torch.Tensor) and group["lr"].device == params.device
    resumed_lr = run.trainer.optimizer.param_groups[0]["lr"].item()
    assert resumed_lr == pytest.approx(eager.trainer.optimizer.param_groups[0]["lr"])
    run.trainer.train_epoch()  # compiles
    with torch._dynamo.config.patch(error_on_recompile=True):
        run.trainer.train_epoch()
    assert run.trainer.done
    torch._dynamo.reset()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU; none is visible here")
def test_cuda_graphs_replay_the_step_and_match_the_eager_run(few, teacher):
    """On CUDA, reduce-overhead replays the step as CUDA graphs (inductor, bf16, channels_last): two epochs with a
    changing learning rate and epoch end close to the eager run (bf16 tolerance) without a recompile."""
    torch._dynamo.reset()
    eager = [r.train_loss for r in student(few, teacher, "off").trainer.epochs()]
    run = student(few, teacher, "reduce-overhead")
    with torch._dynamo.config.patch(error_on_recompile=True):
        compiled = [r.train_loss for r in run.trainer.epochs()]
    assert compiled == pytest.approx(eager, rel=0.05)
    assert run.trainer.history[-1]["gpu_memory_gib"] > 0
    torch._dynamo.reset()


def test_compile_modes_on_the_command_line(capsys):
    from distill import train
    from distill.config import COMPILE_MODES, GRAPHED

    args = train.parse(["teacher", "--out", "o", "--compile"])
    assert args.compile == GRAPHED == "reduce-overhead"
    assert train.parse(["teacher", "--out", "o"]).compile == "off"
    assert train.parse(["teacher", "--out", "o", "--compile", "default"]).compile == "default"
    assert set(COMPILE_MODES) == {"off", "default", "reduce-overhead", "max-autotune"}
    assert_one_line_error(run_in_process(train.main, "teacher", "--dataset", "digits", "--compile", "fast", "--out",
                                         "o", capsys=capsys), "--compile", "invalid choice: 'fast'")


def test_searches_pack_small_trials_onto_visible_gpus_and_say_so():
    one_gpu = pack(None, None, visible_gpus=1, cpus=16, cpus_per_trial=1, image_side=32)
    assert (one_gpu.gpus_per_trial, one_gpu.max_concurrent_trials) == (0.25, 4)
    assert "4 trials share each GPU (--gpus-per-trial 0.25, --max-concurrent-trials 4)" in one_gpu.note
    cpu_bound = pack(None, None, visible_gpus=8, cpus=16, cpus_per_trial=1, image_side=32)
    assert cpu_bound.max_concurrent_trials == 16  # the GPUs would hold 32
    assert "(--gpus-per-trial 0.25, --max-concurrent-trials 16, as many as 16 CPUs hold at --cpus-per-trial 1)" \
        in cpu_bound.note
    assert pack(None, None, visible_gpus=8, cpus=64, cpus_per_trial=1, image_side=224).gpus_per_trial == 1.0
    assert pack(None, 2, visible_gpus=1, cpus=16, cpus_per_trial=1, image_side=32).max_concurrent_trials == 2
    chosen = pack(0.5, None, visible_gpus=2, cpus=16, cpus_per_trial=1, image_side=32)
    assert (chosen.gpus_per_trial, chosen.max_concurrent_trials) == (0.5, 4) and chosen.note
    assert pack(0.5, 3, visible_gpus=2, cpus=16, cpus_per_trial=1, image_side=32).note is None  # all given
    eight = pack(None, None, visible_gpus=16, cpus=64, cpus_per_trial=32, image_side=224, workers=8)
    assert (eight.gpus_per_trial, eight.max_concurrent_trials) == (8.0, 2)  # one GPU per worker, two trials
    gloo = pack(None, None, visible_gpus=0, cpus=8, cpus_per_trial=2, image_side=32, workers=2)
    assert (gloo.gpus_per_trial, gloo.max_concurrent_trials) == (0.0, 4)  # as many CPU-worker trials as CPUs hold
    cpu_only = pack(None, None, visible_gpus=0, cpus=2, cpus_per_trial=1, image_side=32)
    assert (cpu_only.gpus_per_trial, cpu_only.max_concurrent_trials, cpu_only.note) == (0.0, CPU_CONCURRENT_TRIALS, None)


def test_the_progress_table_shows_accuracy_epoch_speed_and_gpu_memory_first():
    result = EpochResult(epoch=1, epochs=2, train_terms={"kd": 0.5}, train_loss=0.5, val_acc=0.4, val_acc_max=0.4,
                         val_cmi=0.1, lr=0.05, images_per_sec=900.0, seconds=1.0, gpu_memory_gib=1.5)
    metrics = common.progress_first(common.stage_metrics("student", result))
    assert tuple(metrics)[:4] == PROGRESS == (STUDENT_VAL_ACC, STUDENT_EPOCH, IMAGES_PER_SEC, GPU_MEMORY_GIB)
    assert metrics[IMAGES_PER_SEC] == 900.0 and metrics[GPU_MEMORY_GIB] == 1.5
    on_cpu = EpochResult(**{**result.__dict__, "gpu_memory_gib": None})
    assert GPU_MEMORY_GIB not in common.stage_metrics("student", on_cpu)
    assert "gpu_memory_gib" not in on_cpu.metrics()


def test_a_search_compiles_every_stage_it_is_asked_to_and_leaves_gpus_to_packing():
    from search import kd_temperature, mcmi_lambda, spec
    from search.options import build_jobs

    args = spec.parse(mcmi_lambda.DEFINITION, ["--preset", "digits", "--compile"])
    jobs = build_jobs(args, "mcmi")
    assert {job.runtime.compile for job in jobs.all()} == {"reduce-overhead"} and len(jobs.all()) == 3
    assert build_jobs(spec.parse(kd_temperature.DEFINITION, [])).student.runtime.compile == "off"
    assert args.gpus_per_trial is None  # filled in by search.packing once Ray says what it has
