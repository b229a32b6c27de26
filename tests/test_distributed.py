"""Data-parallel training gives the single-process result: two processes on gloo (CPU) train
an example for a few steps under DDP and under FSDP2 (`fully_shard` per block, then the root,
which keeps the tied embedding and logits weight in one unit), and every step's loss and the
final weights equal those of one process training on the whole batch.

Why they must be equal: each of the W ranks takes an equal share of the global batch, and every
sequence is full length with no ignored ids, so each rank's mean loss averages over the same
number of tokens. The full-batch mean loss is then the mean of the rank losses, and its gradient
is the mean of the rank gradients: exactly what DDP's all-reduce (sum / W) and FSDP2's
reduce-scatter (average) compute. Every rank so applies the same optimizer step to the same
weights as the single process. What remains is the rounding of a different summation order, which
float64 keeps near 1e-15. SGD is linear in the gradient, so it shows a wrong gradient scale (a sum
where a mean belongs) plainly; AdamW sees scale only through its eps, but keeps state per
(sharded) parameter.

The workers are this file run as a script (`python tests/test_distributed.py OUT`), with the
rendezvous in MASTER_ADDR / MASTER_PORT / RANK / WORLD_SIZE as torchrun would set them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from functools import cache
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from conftest import ROOT
from torch import Tensor, nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel

import xtc

WORLD_SIZE = 2
GLOBAL_BATCH = 4  # sequences; each rank takes GLOBAL_BATCH // WORLD_SIZE
SEQ_LEN = 32
STEPS = 4
TIMEOUT_S = 120  # a hung collective fails the test instead of blocking CI

TIED_GPT = """
xtc: 1
name: tied_gpt
model:
  type: TransformerWrapper
  num_tokens: 64
  max_seq_len: 32
  tie_embedding: true
  attn_layers: {type: Decoder, dim: 32, depth: 2, heads: 2, attn: {dim_head: 16}}
"""
SPECS = ("tied_gpt", "char_gpt")  # char_gpt is the shipped examples/char_gpt.yaml
STRATEGIES = ("ddp", "fsdp2")
OPTIMIZERS = ("sgd", "adamw")
CONTROL = "local"  # each rank trains on its half alone: no gradient is exchanged
CASES = [(spec, strategy, optimizer) for spec in SPECS
         for strategy in (*STRATEGIES, CONTROL) for optimizer in OPTIMIZERS]
DATA_PARALLEL_CASES = pytest.mark.parametrize(("spec", "strategy", "optimizer"),
                                              [case for case in CASES if case[1] != CONTROL])


def load(name: str) -> xtc.Spec:
    if name == "tied_gpt":
        return xtc.loads_spec(TIED_GPT, "tied_gpt.yaml")
    return xtc.load_spec(ROOT / "examples" / f"{name}.yaml")


def fresh_model(name: str) -> nn.Module:
    """The same initial weights in every process: the seed is set just before building."""
    torch.manual_seed(0)
    return xtc.build(load(name), dtype=torch.float64)


def global_batch(num_tokens: int) -> Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randint(num_tokens, (GLOBAL_BATCH, SEQ_LEN), generator=generator)  # (B, T)


def make_optimizer(name: str, model: nn.Module) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.5)
    return torch.optim.AdamW(model.parameters(), lr=1e-3)


class NextTokenLoss(nn.Module):
    """`model.loss` as a forward: DDP synchronises gradients only for what runs through its
    own forward, so calling `ddp.module.loss` would train each rank on its own."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.loss(x)


def train(loss_fn, optimizer: torch.optim.Optimizer, batch: Tensor) -> list[Tensor]:
    """The loss of each step, taken before that step's update."""
    losses = []
    for _ in range(STEPS):
        loss = loss_fn(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return losses


def full_parameters(model: nn.Module) -> dict[str, Tensor]:
    """Every parameter by name, FSDP2's shards gathered into whole tensors."""
    return {name: (p.full_tensor() if isinstance(p, DTensor) else p).detach().clone()
            for name, p in model.named_parameters()}


# ---- the single-process reference ----------------------------------------------------------


@cache
def single_process_run(spec: str, optimizer: str) -> tuple[list[float], dict[str, Tensor]]:
    model = fresh_model(spec)
    batch = global_batch(model.config.num_tokens)
    losses = train(model.loss, make_optimizer(optimizer, model), batch)
    return [loss.item() for loss in losses], full_parameters(model)


# ---- the workers -----------------------------------------------------------------------------


def shard_fsdp2(model: nn.Module) -> nn.Module:
    """One FSDP unit per block; the root unit holds the embeddings, the final norm and the
    logits weight, so a tied embedding is all-gathered once and its gradient reduced once."""
    mesh = init_device_mesh("cpu", (WORLD_SIZE,))
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def distributed_run(spec: str, strategy: str, optimizer: str) -> tuple[list[float], dict]:
    """This rank's share of one run: the global mean loss of every step and the final weights."""
    model = fresh_model(spec)
    batch = global_batch(model.config.num_tokens).chunk(WORLD_SIZE)[dist.get_rank()]
    if strategy == "ddp":
        loss_fn = DistributedDataParallel(NextTokenLoss(model))
    elif strategy == "fsdp2":
        loss_fn = shard_fsdp2(model).loss  # its forward hooks gather and reduce
    else:
        loss_fn = model.loss
    rank_losses = torch.stack(train(loss_fn, make_optimizer(optimizer, model), batch))
    dist.all_reduce(rank_losses)  # sum: gloo has no AVG
    return (rank_losses / WORLD_SIZE).tolist(), full_parameters(model)


def run_worker(out: Path) -> None:
    torch.set_num_threads(1)  # two ranks share this machine's cores
    dist.init_process_group("gloo", timeout=timedelta(seconds=TIMEOUT_S // 2))
    try:
        results = {case: distributed_run(*case) for case in CASES}
        if dist.get_rank() == 0:
            torch.save(results, out)
    finally:
        dist.destroy_process_group()


# ---- launching the workers from the test ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(rank: int, port: int) -> dict[str, str]:
    return {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(WORLD_SIZE),
            "OMP_NUM_THREADS": "1"}


def wait_all(procs: list[subprocess.Popen]) -> bool:
    """True when every worker exits 0; stops at the first failure or at the timeout."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        codes = [p.poll() for p in procs]
        if any(code not in (None, 0) for code in codes) or all(code == 0 for code in codes):
            break
        time.sleep(0.1)
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
    return all(p.returncode == 0 for p in procs)


def launch_workers(tmp: Path) -> dict:
    """The workers' results. A port found free can be taken before the workers bind it, so the
    workers get a second try on a fresh port, and a second failure reports both."""
    try:
        return launch_workers_once(tmp / "first")
    except pytest.fail.Exception as first:
        try:
            return launch_workers_once(tmp / "second")
        except pytest.fail.Exception as second:
            pytest.fail(f"first try:\n{first}\nsecond try:\n{second}")


def launch_workers_once(tmp: Path) -> dict:
    tmp.mkdir()
    out, port = tmp / "results.pt", free_port()
    logs = [tmp / f"rank{rank}.log" for rank in range(WORLD_SIZE)]
    procs = []
    for rank, log in enumerate(logs):
        with log.open("w") as sink:  # a file, not a pipe: a chatty worker cannot block on it
            procs.append(subprocess.Popen([sys.executable, __file__, str(out)], cwd=ROOT,
                                          env=worker_env(rank, port), stdout=sink,
                                          stderr=subprocess.STDOUT))
    if not wait_all(procs):
        report = "\n".join(f"--- rank {rank} (exit {p.returncode}) ---\n{log.read_text()[-4000:]}"
                           for rank, (p, log) in enumerate(zip(procs, logs)))
        pytest.fail(f"distributed workers failed or timed out after {TIMEOUT_S} s\n{report}")
    return torch.load(out)


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory) -> dict:
    return launch_workers(tmp_path_factory.mktemp("distributed"))


# ---- the tests -------------------------------------------------------------------------------


def test_tied_gpt_computes_logits_with_the_token_embedding():
    model = fresh_model("tied_gpt")
    assert not hasattr(model, "to_logits")
    x = global_batch(model.config.num_tokens)
    h = model(x, return_embeddings=True)  # (B, T, C)
    expected = h @ model.token_emb.weight.t() * model.config.tie_embedding_scale
    torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


@DATA_PARALLEL_CASES
def test_losses_equal_a_single_process_run(distributed_results, spec, strategy, optimizer):
    expected, _ = single_process_run(spec, optimizer)
    losses, _ = distributed_results[spec, strategy, optimizer]
    assert expected[-1] < expected[0] - 0.01  # the steps train: later losses test the updates
    torch.testing.assert_close(losses, expected, rtol=1e-10, atol=0)


@DATA_PARALLEL_CASES
def test_final_weights_equal_a_single_process_run(distributed_results, spec, strategy, optimizer):
    _, expected = single_process_run(spec, optimizer)
    _, weights = distributed_results[spec, strategy, optimizer]
    assert weights.keys() == expected.keys()
    # AdamW turns rounding noise in near-zero gradients into ~1e-13 here
    torch.testing.assert_close(weights, expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("spec", SPECS)
def test_ranks_training_alone_differ_from_a_single_process_run(distributed_results, spec,
                                                               optimizer):
    """The control: without exchanging gradients the first loss still agrees (same weights),
    and every later one does not, so the comparisons above can fail."""
    expected, _ = single_process_run(spec, optimizer)
    losses, _ = distributed_results[spec, CONTROL, optimizer]
    assert losses[0] == pytest.approx(expected[0], rel=1e-10)
    assert all(loss != pytest.approx(want, rel=1e-6) for loss, want in zip(losses[1:], expected[1:]))


if __name__ == "__main__":
    run_worker(Path(sys.argv[1]))
    # Leave without the interpreter's teardown: now and then gloo's threads abort the process
    # as C++ statics are destroyed ("terminate called without an active exception", exit -6)
    # after the work is done and the results written, which failed every case of a suite run.
    sys.stdout.flush()
    os._exit(0)
