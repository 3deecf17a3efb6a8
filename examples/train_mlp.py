"""Train a small MLP of FusedLinear layers for a few steps and say which path ran.

Runs anywhere: on a GPU the fused Triton kernels run compiled; on a CPU the plain-torch
path runs, or the same Triton kernels through the interpreter with TRITON_INTERPRET=1.

    python examples/train_mlp.py [--steps 200] [--activation gelu]
"""
import argparse
import math
import time

import torch
from torch import nn

import fusedact


def two_spirals(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n points on two interleaved spirals in 2-D, labels 0/1: not linearly separable."""
    t = torch.rand(n, generator=generator) * 3 * math.pi + 0.5
    label = torch.randint(0, 2, (n,), generator=generator)
    sign = 1 - 2 * label.float()
    x = torch.stack([sign * t * torch.cos(t), sign * t * torch.sin(t)], dim=1) / (3 * math.pi)
    return x + 0.02 * torch.randn(x.shape, generator=generator), label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--activation", default="gelu", choices=fusedact.ACTIVATIONS)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = torch.Generator().manual_seed(0)
    x, y = two_spirals(2048, generator)
    x, y = x.to(device), y.to(device)
    torch.manual_seed(0)
    model = nn.Sequential(
        fusedact.FusedLinear(2, args.hidden, activation=args.activation, device=device),
        fusedact.FusedLinear(args.hidden, args.hidden, activation=args.activation, device=device),
        fusedact.FusedLinear(args.hidden, 2, device=device),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    print(f"fusedact {fusedact.__version__}: {args.activation} MLP on {device}; "
          f"ops ran on the {fusedact.backend.active(x)!r} path")
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 1 or step % max(1, args.steps // 5) == 0:
            accuracy = (model(x).argmax(1) == y).float().mean().item()
            print(f"step {step:4d}  loss {loss.item():.4f}  accuracy {accuracy:.3f}")
    print(f"{args.steps} steps in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
