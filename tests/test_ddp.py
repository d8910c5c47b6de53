"""Training on several processes (torchrun, DDP over Gloo on the CPU) is training on one.

The torchrun tests start two processes on this machine through
`python -m torch.distributed.run` (torchrun itself) and compare what they write with
one process trained here. The AE draws no noise, so two processes match one to
rounding; the VAE's processes each draw their own noise, so its curve matches one
process's as closely as another noise draw of one process would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vaelab.config import DataConfig, DistributedConfig, ModelConfig, RunConfig, TrainConfig
from vaelab.distributed import LOCAL, Group, setup, shard
from vaelab.errors import SettingError, VaelabError
from vaelab.models import build
from vaelab.run import CHECKPOINT, CONFIG, METRICS, WEIGHTS, Run, load_tensors
from vaelab.train import fit

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("ddp_worker.py")
TRAIN_SIZE, BATCH = 1001, 128  # 8 batches an epoch, the last of 105 images: slices 53 and 52
EXACT = 1e-6
"""Relative difference allowed between 1 and 2 processes where no noise is drawn, in the
loss of each epoch: float rounding in the gradient all-reduce (measured on the AE: at
most 5e-9 over 2 epochs, straight, resumed or interrupted)."""
NOISE = 2e-2
"""Relative difference allowed for the VAE, whose processes draw other noise than one
process does. Measured with 2 processes: 8e-5 and 1.8e-3 (epochs 1 and 2 here), 1.1e-2
(one epoch of full MNIST); one process whose noise alone is drawn from other seeds
differs from itself by up to 7e-4 and 7e-3 here, 9.8e-3 on full MNIST."""


def relative(a: list[float], b: list[float]) -> list[float]:
    return [abs(x - y) / abs(y) for x, y in zip(a, b, strict=True)]


def losses(run: Run) -> list[float]:
    return [row["train_loss"] for row in run.metrics()]


def one_process(path: Path, model: str, epochs: int, resume: bool = False) -> Run:
    config = RunConfig(
        DataConfig("mnist-sample", train_size=TRAIN_SIZE),
        ModelConfig(model),
        TrainConfig(epochs, batch_size=BATCH, device="cpu"),
    )
    return fit(config, path, resume=resume, progress=False)


def torchrun(
    workdir: Path, *train_args: str, interrupt: str | None = None
) -> subprocess.CompletedProcess:
    """`torchrun --nproc-per-node 2 tests/ddp_worker.py train ...`, on 127.0.0.1, in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)  # torch's own scratch, left out of the writes
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "TMPDIR": str(workdir / "tmp"),
    }
    env.pop("VAELAB_TEST_INTERRUPT", None)
    if interrupt is not None:
        env["VAELAB_TEST_INTERRUPT"] = interrupt
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0",
        str(WORKER), "train", *train_args, "--device", "cpu", "--quiet",
    ]  # fmt: skip
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)


def sample_args(model: str, epochs: int, out: Path) -> list[str]:
    return [model, "--dataset", "mnist-sample", "--train-size", str(TRAIN_SIZE),
            "--batch-size", str(BATCH), "--epochs", str(epochs), "--out", str(out)]  # fmt: skip


def writes(result: subprocess.CompletedProcess) -> dict[int, list[str]]:
    """What each process wrote, from the worker's `WROTE <rank> <json>` records, found
    anywhere in the output: torchrun merges the ranks' streams, so another rank's line may
    follow a record without a line break between them."""
    records = re.findall(r"WROTE (\d+) (\[[^\]]*\])", result.stdout)
    return {int(rank): json.loads(paths) for rank, paths in records}


def check(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def ae_straight(tmp_path_factory) -> Run:
    """The AE trained for 2 epochs by one process, in one go."""
    return one_process(tmp_path_factory.mktemp("ae") / "straight", "ae", 2)


# The order each process trains on


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("n_images,batch_size", [(1001, 128), (1024, 128), (100, 7), (9, 4)])
def test_the_shards_cover_every_image_once_an_epoch_as_the_global_batches(
    world, n_images, batch_size
):
    order = torch.randperm(n_images, generator=torch.Generator().manual_seed(0))
    seen = []
    for start in range(0, n_images, batch_size):
        batch = order[start : start + batch_size]
        slices = [shard(batch, rank, world) for rank in range(world)]
        assert torch.equal(torch.cat(slices), batch)  # in rank order, the global batch
        sizes = [len(s) for s in slices]
        assert sizes == sorted(sizes, reverse=True) and sizes[0] - sizes[-1] <= 1
        seen.extend(torch.cat(slices).tolist())
    assert sorted(seen) == list(range(n_images))


def test_one_process_trains_on_the_global_batch_itself():
    batch = torch.randperm(10)
    assert shard(batch, 0, 1) is batch
    assert LOCAL.shard(batch) is batch


@pytest.mark.parametrize(
    "world,n_images,batch_size,refused",
    [(2, 1001, 128, None), (2, 1025, 128, "last batch of each epoch holds 1 of the 1025"),
     (8, 1030, 128, "holds 6 of the 1030 images, fewer than the 8"), (8, 1032, 128, None),
     (3, 100, 2, "3 processes cannot share batches of 2 images"), (1, 1025, 128, None)],
)  # fmt: skip
def test_batches_that_leave_a_process_without_images_are_refused(
    world, n_images, batch_size, refused
):
    group = Group(rank=0, world=world)
    if refused is None:
        group.check_batches(n_images, batch_size)
        return
    with pytest.raises(SettingError, match=refused) as error:
        group.check_batches(n_images, batch_size)
    assert "--batch-size" in error.value.as_flags()
    empty = any(
        len(shard(torch.arange(n_images)[start : start + batch_size], world - 1, world)) == 0
        for start in range(0, n_images, batch_size)
    )
    assert empty  # refused exactly when some process would get no image


# The loss and the noise


def test_the_slices_losses_average_to_the_global_batch_mean_and_its_gradient():
    """What DDP averages over 2 processes is the one-process loss, uneven slices included."""
    torch.manual_seed(0)
    model = build(ModelConfig("ae")).double()
    images = torch.rand(5, 1, 28, 28, dtype=torch.float64)
    whole = model(images).loss
    expected = torch.autograd.grad(whole, list(model.parameters()))
    groups = [Group(rank=rank, world=2) for rank in range(2)]
    batch = torch.arange(len(images))
    parts = [g.batch_loss(model(images[g.shard(batch)]), len(batch)) for g in groups]
    averaged = sum(parts) / 2
    torch.testing.assert_close(averaged, whole, rtol=1e-12, atol=0)
    grads = torch.autograd.grad(averaged, list(model.parameters()))
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-14)


def test_one_process_keeps_its_own_loss_stream_and_answers():
    out = build(ModelConfig("vae"))(torch.rand(4, 1, 28, 28))
    assert torch.equal(LOCAL.batch_loss(out, 4), out.loss)  # the model's own mean
    assert LOCAL.agree(out.loss, True) == (out.loss.item(), True)
    sums = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert LOCAL.sum(sums) is sums and LOCAL.any(False) is False
    assert LOCAL.noise_seed(7) == 7 and LOCAL.noise_seed(7, steps=30) == 7


def test_every_process_draws_noise_of_its_own():
    seeds = {Group(rank=r, world=4).noise_seed(0, steps) for r in range(4) for steps in (0, 8)}
    assert len(seeds) == 7  # rank 0 always continues the run's own stream, seed 0
    draws = []
    for seed in seeds:
        torch.manual_seed(seed)  # torch's CPU generator reads 32 bits of the seed
        draws.append(tuple(torch.randn(4).tolist()))
    assert len(set(draws)) == len(seeds)


# Starting the group


def test_without_torchrun_training_is_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with setup(torch.device("cpu")) as group:
        assert group is LOCAL
    monkeypatch.setenv("WORLD_SIZE", "1")
    with setup(torch.device("cpu")) as group:
        assert group is LOCAL


def test_a_broken_environment_or_an_unsupported_device_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(VaelabError, match="WORLD_SIZE is 'two', not a whole number.*torchrun"):
        setup(torch.device("cpu")).__enter__()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(VaelabError, match="RANK is unset in the environment"):
        setup(torch.device("cpu")).__enter__()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(VaelabError, match="runs on cpu or cuda, not mps; use device cpu"):
        setup(torch.device("mps")).__enter__()


def test_old_configs_without_a_distributed_section_still_load():
    raw = RunConfig().to_dict()
    assert raw["distributed"] == {"world_size": 1, "backend": None}
    del raw["distributed"]
    assert RunConfig.from_dict(raw).distributed == DistributedConfig()


# Two processes under torchrun


def test_two_processes_train_the_vae_to_the_curve_of_one_and_only_rank_0_writes(tmp_path):
    result = torchrun(tmp_path / "cwd", *sample_args("vae", 2, tmp_path / "two"))
    check(result)
    two, one = Run(tmp_path / "two"), one_process(tmp_path / "one", "vae", 2)
    assert max(relative(losses(two), losses(one))) < NOISE

    files = sorted(p.name for p in two.path.iterdir())
    assert files == [CHECKPOINT, CONFIG, "figures", METRICS, WEIGHTS]
    assert list(two.figures.iterdir()) == [] and len(two.metrics()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "one", "two"]
    assert sorted(p.name for p in (tmp_path / "cwd").iterdir()) == ["tmp"]
    wrote = writes(result)
    assert wrote[1] == []
    assert {Path(p).name for p in wrote[0]} >= {CONFIG, METRICS, CHECKPOINT + ".tmp"}
    assert all(Path(p).is_relative_to(two.path) for p in wrote[0]), wrote[0]
    assert result.stdout.count("trained vae for 2 epochs") == 1
    saved = json.loads((two.path / CONFIG).read_text())["distributed"]
    assert saved == {"world_size": 2, "backend": "gloo"}
    assert one.config.distributed == DistributedConfig(1, None)


def test_two_processes_then_one_resume_as_one_process_trains_straight(tmp_path, ae_straight):
    check(torchrun(tmp_path / "cwd", *sample_args("ae", 1, tmp_path / "run")))
    run = Run(tmp_path / "run")
    assert relative(losses(run), losses(ae_straight)[:1])[0] < EXACT
    one_process(run.path, "ae", 2, resume=True)
    assert max(relative(losses(run), losses(ae_straight))) < EXACT
    assert run.config.distributed == DistributedConfig(1, None)
    resumed = load_file(str(run.path / WEIGHTS))
    for key, value in load_file(str(ae_straight.path / WEIGHTS)).items():
        torch.testing.assert_close(resumed[key], value, rtol=1e-4, atol=1e-6, msg=key)


def test_ctrl_c_on_one_process_stops_both_at_one_batch_and_resumes_elsewhere(tmp_path, ae_straight):
    # Rank 1 alone sees a Ctrl-C in its 11th batch: epoch 2, batch 3 of 8.
    result = torchrun(tmp_path / "cwd", *sample_args("ae", 2, tmp_path / "run"), interrupt="1:11")
    assert result.returncode != 0
    assert "interrupted in epoch 2 after 3/8 batches" in result.stderr
    run = Run(tmp_path / "run")
    assert len(run.metrics()) == 1
    _, meta = load_tensors(run.path / CHECKPOINT)
    assert (meta["epoch"], meta["step"]) == (1, 3)
    one_process(run.path, "ae", 2, resume=True)
    assert max(relative(losses(run), losses(ae_straight))) < EXACT


@pytest.mark.slow
def test_two_processes_train_the_vae_on_full_mnist_as_one(tmp_path, mnist_dir):
    args = ["vae", "--dataset", "mnist", "--data-dir", str(mnist_dir), "--epochs", "1"]
    check(torchrun(tmp_path / "cwd", *args, "--out", str(tmp_path / "two")))
    config = RunConfig(
        DataConfig("mnist", data_dir=str(mnist_dir)),
        ModelConfig("vae"),
        TrainConfig(1, device="cpu"),
    )
    one = fit(config, tmp_path / "one", progress=False)
    two = Run(tmp_path / "two")
    assert relative(losses(two), losses(one))[0] < NOISE
    assert two.config.distributed == DistributedConfig(2, "gloo")
