"""Data-parallel training on cufftconv.torch: one process per GPU, NCCL, DistributedDataParallel.

A two-layer Hyena-style model (LayerNorm, Linear projections to q, k, v, the gated long
convolution ``q * conv(k * v, h)`` through :class:`cufftconv.torch.FFTConv1d`, an output
Linear, residual) learns a synthetic task: reproduce ``x + conv(x, teacher)`` for a fixed,
decaying causal teacher filter, which only the long convolutions can model. Parameters stay
float32; activations run in bfloat16 under ``torch.autocast`` (the fused tensor-core path).

Each rank draws its own batches; DDP averages the gradients. The script prints the loss (mean
over ranks) per step and fails (non-zero exit) unless the loss fell and every rank ends with
bit-identical parameters.

Run:
    python examples/ddp_train.py                    # every visible GPU, 60 steps
    python examples/ddp_train.py --world-size 2 --steps 40
    python examples/ddp_train.py --device cpu       # smoke test without GPUs (gloo, NumPy path)
"""

from __future__ import annotations

import os

# NVLink SHARP / multicast stay off in every process (children inherit os.environ); the GPU
# hosts this runs on need it. Set before torch (and NCCL) is imported.
os.environ["NCCL_NVLS_ENABLE"] = "0"
os.environ["TORCH_SYMM_MEM_DISABLE_MULTICAST"] = "1"
os.environ["NVSHMEM_DISABLE_NVLS"] = "1"

import argparse
import math
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cufftconv.torch import FFTConv1d, fftconv


class HyenaBlock(nn.Module):
    """``x + out(q * conv(k * v, h) + skip)`` on ``x (B, L, D)``: a one-order Hyena operator."""

    def __init__(self, d: int, seq_len: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.proj = nn.Linear(d, 3 * d)
        self.conv = FFTConv1d(d, seq_len, skip=True)
        self.out = nn.Linear(d, d)
        with torch.no_grad():
            self.proj.bias[: 2 * d] = 1.0  # gates start near the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.proj(self.norm(x)).transpose(1, 2).chunk(3, dim=1)
        return x + self.out(self.conv(v, pregate=k, postgate=q).transpose(1, 2))


def _teacher(d: int, seq_len: int, device: torch.device) -> torch.Tensor:
    """The same decaying causal filter on every rank (seeded generator, made on the CPU)."""
    gen = torch.Generator().manual_seed(1234)
    t = torch.arange(seq_len)
    return (torch.randn(d, seq_len, generator=gen) * torch.exp(-t / 30.0) / 4).to(device)


def _flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def worker(rank: int, world: int, port: int, args: argparse.Namespace) -> None:
    """One rank: build, wrap in DDP, train, then check the loss and the replicas."""
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group(
        "nccl" if cuda else "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
    )
    try:
        _train(rank, world, device, args)
    finally:
        dist.destroy_process_group()


def _train(rank: int, world: int, device: torch.device, args: argparse.Namespace) -> None:
    d, seq_len, batch = args.dim, args.seq_len, args.batch
    torch.manual_seed(0)  # same initial weights everywhere (DDP also broadcasts rank 0's)
    model = nn.Sequential(HyenaBlock(d, seq_len), HyenaBlock(d, seq_len)).to(device)
    ddp = DistributedDataParallel(model, device_ids=[rank] if device.type == "cuda" else None)
    opt = torch.optim.Adam(ddp.parameters(), lr=args.lr)
    teacher = _teacher(d, seq_len, device)
    data_gen = torch.Generator(device=device).manual_seed(1000 + rank)  # different per rank
    amp_dtype = torch.bfloat16

    losses = []
    for step in range(args.steps):
        x = torch.randn(batch, seq_len, d, device=device, generator=data_gen)
        with torch.no_grad():
            target = x + fftconv(x.transpose(1, 2), teacher).transpose(1, 2)
        with torch.autocast(device.type, dtype=amp_dtype):
            pred = ddp(x)
        loss = nn.functional.mse_loss(pred.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        mean = mean.item() / world
        losses.append(mean)
        if rank == 0:
            print(f"step {step:3d} loss {mean:.5f}", flush=True)

    window = max(1, min(10, len(losses) // 4))
    first = sum(losses[:window]) / window
    last = sum(losses[-window:]) / window
    ok_loss = all(math.isfinite(v) for v in losses) and last < args.max_ratio * first

    flat = _flat_params(model)
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    same = all(torch.equal(g, gathered[0]) for g in gathered)
    if rank == 0:
        print(f"loss first {first:.5f} -> last {last:.5f} (ratio {last / first:.3f}, "
              f"needed < {args.max_ratio})", flush=True)
        print(f"parameters ({flat.numel()} values) "
              f"{'identical' if same else 'DIFFER'} across {world} ranks", flush=True)
    if not ok_loss:
        raise SystemExit(f"rank {rank}: the loss did not fall enough: {first:.5f} -> {last:.5f}")
    if not same:
        raise SystemExit(f"rank {rank}: parameters differ between ranks")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--world-size", type=int, default=None,
                        help="processes (default: every visible GPU; 2 on the CPU)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=8, help="per rank")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--max-ratio", type=float, default=0.6,
                        help="pass if mean(last losses) < max_ratio * mean(first losses)")
    args = parser.parse_args(argv)
    if args.device == "cuda":
        gpus = torch.cuda.device_count()
        world = args.world_size or gpus
        if world < 1 or world > gpus:
            print(f"need {world} GPU(s), {gpus} visible", file=sys.stderr)
            return 2
        if not dist.is_nccl_available():
            print("this PyTorch has no NCCL", file=sys.stderr)
            return 2
    else:
        world = args.world_size or 2
    print(f"ddp_train: {world} process(es) on {args.device}, {args.steps} steps", flush=True)
    mp.spawn(worker, args=(world, _free_port(), args), nprocs=world, join=True)
    print("ddp_train: OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
