"""Why activations matter: MLPs with each activation, and with none, on two spirals.

Trains one small MLP of ``fusedact.FusedLinear`` layers per activation on a 2-D data set that
no straight line separates, prints each one's accuracy next to a plain linear classifier's,
shows with ``fusedact.collapse`` that the activation-free MLP *is* a single linear layer,
and saves one PNG with a panel of decision boundaries per activation (needs matplotlib:
``pip install -e '.[examples]'``; without it the PNG is skipped).

    python examples/decision_boundary.py [--steps 300] [--out decision_boundaries.png]

Runs in seconds on a CPU (plain-torch path) and downloads nothing.
"""
from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

import fusedact


def two_spirals(n: int, generator: torch.Generator, noise: float = 0.03):
    """n points on two interleaved spirals in [-1, 1]², labels 0/1."""
    turns = torch.rand(n, generator=generator) * 2.5 * math.pi + 0.6
    label = torch.arange(n) % 2
    sign = 1.0 - 2.0 * label.float()
    points = torch.stack([sign * turns * torch.cos(turns), sign * turns * torch.sin(turns)], 1)
    points = points / (3.1 * math.pi) + noise * torch.randn(points.shape, generator=generator)
    return points, label


def mlp(activation: str, hidden: int, depth: int) -> nn.Sequential:
    widths = [2] + [hidden] * depth
    layers = [fusedact.FusedLinear(a, b, activation=activation) for a, b in zip(widths, widths[1:])]
    return nn.Sequential(*layers, fusedact.FusedLinear(hidden, 2))  # logits: no activation


def train(model: nn.Module, x, y, steps: int, lr: float) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


@torch.no_grad()
def accuracy(model: nn.Module, x, y) -> float:
    return (model(x).argmax(1) == y).float().mean().item()


def save_panels(path: str, models: dict, x, y, resolution: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 3
    rows = math.ceil(len(models) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False)
    grid = torch.linspace(-1.15, 1.15, resolution)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    plane = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    for ax, (title, (model, acc)) in zip(axes.flat, models.items()):
        with torch.no_grad():
            prob = model(plane).softmax(1)[:, 1].reshape(resolution, resolution)
        ax.contourf(gx, gy, prob, levels=20, cmap="RdBu", vmin=0, vmax=1, alpha=0.8)
        ax.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu", s=4, edgecolors="none")
        ax.set_title(f"{title}: {acc:.0%}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    fig.suptitle("Decision boundaries of fused MLPs on two spirals (test accuracy)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="Adam steps per model")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--depth", type=int, default=3, help="hidden layers")
    parser.add_argument("--points", type=int, default=768)
    parser.add_argument("--lr", type=float, default=2e-2)
    parser.add_argument("--out", default="decision_boundaries.png", help="PNG path ('' for none)")
    parser.add_argument("--resolution", type=int, default=150, help="PNG grid points per axis")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (models this small train fastest on one)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    x, y = two_spirals(args.points, generator)
    x_test, y_test = two_spirals(args.points // 2, generator)
    print(f"fusedact {fusedact.__version__}; ops take the {fusedact.backend.active(x)!r} path")

    start = time.perf_counter()
    torch.manual_seed(0)
    linear = fusedact.FusedLinear(2, 2)
    train(linear, x, y, args.steps, args.lr)
    linear_acc = accuracy(linear, x_test, y_test)
    print(f"{'one linear layer':<20} test accuracy {linear_acc:.3f}")

    models = {}
    for activation in fusedact.ACTIVATIONS:
        torch.manual_seed(0)
        model = mlp(activation, args.hidden, args.depth)
        loss = train(model, x, y, args.steps, args.lr)
        acc = accuracy(model, x_test, y_test)
        label = "no activation" if activation == "identity" else activation
        models[label] = (model, acc)
        print(f"{label:<20} test accuracy {acc:.3f}  (final train loss {loss:.3f})")

    # Without activations the MLP is W4 W3 W2 W1 x + b': one linear map, whatever its depth.
    stack, _ = models["no activation"]
    single = fusedact.collapse(stack)
    with torch.no_grad():
        gap = (single(x_test) - stack(x_test)).abs().max().item()
    print(f"the {args.depth + 1}-layer activation-free MLP collapses to one nn.Linear "
          f"(max output difference {gap:.1e}); a linear classifier reaches {linear_acc:.3f}")
    print(f"trained {len(models) + 1} models in {time.perf_counter() - start:.1f} s")

    if args.out:
        try:
            save_panels(args.out, models, x_test, y_test, args.resolution)
            print(f"saved {args.out}")
        except ImportError:
            print("matplotlib is not installed (pip install -e '.[examples]'): no PNG")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
