"""Which numeric path gives the same bits on two CPU models, and what the portable convolutions cost.

    .venv/bin/python benchmarks/numeric_portability.py [--steps 10] [--size 32]

Trains three small models for a few AdamW steps, each in a child process on the pinned path of
`numerics: portable` with one thread, and prints a digest of the trained weights and the time:
`linear` (matmuls in MKL under MKL_CBWR=COMPATIBLE, GELU in ATen with oneDNN off, as every job runs them), `conv oneDNN` (2D, depthwise, transposed
and 3D convolutions as torch runs them by default, in oneDNN: `numerics: portable` before oneDNN
was turned off), and `conv ATen` (the same model and steps as every job runs them now, oneDNN and
NNPACK off by `pin_torch_kernels`: ATen's im2col + MKL path). Run it on two CPU models and compare
the digests: a row whose digests differ is a path that is not portable. The ratio (fastest step
of each) is the cost of the portable convolutions, measured in this run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

from sambrats.numerics import THREAD_VARIABLES, numeric_environment, pin_torch_kernels

VARIANTS = ("linear", "conv oneDNN", "conv ATen")


def model(variant: str, torch):
    """The model of a variant (its first layers see ``size`` x ``size`` images, or volumes)."""
    nn = torch.nn
    if variant == "linear":
        return nn.Sequential(nn.Linear(256, 512), nn.GELU(), nn.Linear(512, 256), nn.LayerNorm(256), nn.Linear(256, 64))
    return nn.ModuleDict({
        "plane": nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.SiLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1),
                               nn.Conv2d(64, 64, 7, padding=3, groups=64), nn.ConvTranspose2d(64, 32, 2, stride=2),
                               nn.Conv2d(32, 1, 1)),
        "volume": nn.Sequential(nn.Conv3d(1, 16, 3, padding=1), nn.LeakyReLU(), nn.Conv3d(16, 32, 3, padding=1),
                                nn.Conv3d(32, 1, 1)),
    })


def loss(variant: str, net, generator, size: int, torch):
    if variant == "linear":
        x = torch.randn(64, 256, generator=generator)
        return net(x).square().mean()
    image = torch.randn(4, 3, size, size, generator=generator)
    volume = torch.randn(2, 1, size, size, size // 2, generator=generator)
    return net["plane"](image).square().mean() + net["volume"](volume).square().mean()


def train(variant: str, steps: int, size: int) -> dict:
    """Train one variant in this process; its weights' digest and the seconds of its fastest step."""
    import torch

    if variant != "conv oneDNN":  # the portable path as every job takes it; oneDNN as torch's default
        pin_torch_kernels()
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    net = model(variant, torch)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss(variant, net, generator, size, torch).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    seconds = min(times)  # the first step also builds oneDNN's kernels
    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode() + tensor.contiguous().numpy().tobytes())
    return {"digest": digest.hexdigest()[:16], "seconds": seconds}


def run_child(variant: str, steps: int, size: int) -> dict:
    environ = {**os.environ, **numeric_environment("portable"), **dict.fromkeys(THREAD_VARIABLES, "1")}
    command = [sys.executable, __file__, "--child", variant, "--steps", str(steps), "--size", str(size)]
    result = subprocess.run(command, env=environ, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--size", type=int, default=32, help="image side (volumes: side x side x side/2)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(train(args.child, args.steps, args.size)))
        return
    from sambrats.numerics import cpu_model

    print(f"numeric portability, {cpu_model()}, numerics portable, one thread, {args.steps} AdamW steps")
    results = {variant: run_child(variant, args.steps, args.size) for variant in VARIANTS}
    for variant, result in results.items():
        print(f"  {variant:12s} weights {result['digest']}  fastest step {result['seconds'] * 1000:8.1f} ms")
    ratio = results["conv ATen"]["seconds"] / results["conv oneDNN"]["seconds"]
    print(f"  ratio (conv ATen / conv oneDNN): {ratio:.2f}x")


if __name__ == "__main__":
    main()
