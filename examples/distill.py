"""Knowledge distillation with fusedact.KDLoss on scikit-learn's bundled digits.

Trains a teacher MLP, then the same small student twice: once on the labels alone, and once
per temperature with ``fusedact.KDLoss`` (``hard_weight`` mixes in the label loss), and
prints each student's test accuracy. The data set (1797 8x8 digit images) ships inside
scikit-learn, so nothing is downloaded: ``pip install -e '.[examples]'``.

    python examples/distill.py [--epochs 60] [--temperatures 1 2 4 8]

Runs in well under a minute on a CPU (plain-torch path).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import fusedact

try:
    from tqdm import tqdm
except ImportError:  # progress bars are optional
    def tqdm(iterable, **_):
        return iterable


def load_digits(test_fraction: float, seed: int):
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0      # pixels 0..16 -> 0..1
    y = torch.tensor(data.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(y) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-3)
    return ((x[train] - mean) / std, y[train]), ((x[test] - mean) / std, y[test])


def mlp(widths: list, activation: str) -> nn.Sequential:
    hidden = [fusedact.FusedLinear(a, b, activation=activation)
              for a, b in zip(widths[:-2], widths[1:-1])]
    return nn.Sequential(*hidden, fusedact.FusedLinear(widths[-2], widths[-1]))


@torch.no_grad()
def accuracy(model: nn.Module, x, y) -> float:
    return (model(x).argmax(1) == y).float().mean().item()


def fit(model: nn.Module, x, y, epochs: int, batch: int, desc: str, teacher=None,
        criterion=None, lr: float = 3e-3, seed: int = 0) -> nn.Module:
    """Adam on minibatches; cross entropy, or ``criterion(student, teacher, labels)``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)  # same batches for every student
    for _ in tqdm(range(epochs), desc=desc, leave=False, ncols=80):
        for index in torch.randperm(len(y), generator=generator).split(batch):
            logits = model(x[index])
            if criterion is None:
                loss = nn.functional.cross_entropy(logits, y[index])
            else:
                with torch.no_grad():
                    teacher_logits = teacher(x[index])
                loss = criterion(logits, teacher_logits, y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60, help="student epochs")
    parser.add_argument("--teacher-epochs", type=int, default=30)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0])
    parser.add_argument("--hard-weight", type=float, default=0.3,
                        help="weight of the label loss mixed into KDLoss")
    parser.add_argument("--student-hidden", type=int, default=12)
    parser.add_argument("--train-fraction", type=float, default=0.25,
                        help="fraction of the non-test images the students see (few labels: "
                             "where a teacher helps most)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (models this small train fastest on one)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    (x, y), (x_test, y_test) = load_digits(test_fraction=0.3, seed=0)
    n_student = max(args.batch, int(len(y) * args.train_fraction))
    x_few, y_few = x[:n_student], y[:n_student]
    print(f"fusedact {fusedact.__version__}; ops take the {fusedact.backend.active(x)!r} path; "
          f"digits: {len(y)} train ({n_student} for the students), {len(y_test)} test")
    start = time.perf_counter()

    torch.manual_seed(0)
    teacher = fit(mlp([64, 256, 256, 10], "gelu"), x, y, args.teacher_epochs, args.batch,
                  "teacher").eval()
    print(f"{'teacher 64-256-256-10':<32} test accuracy {accuracy(teacher, x_test, y_test):.3f}")

    widths = [64, args.student_hidden, 10]
    name = f"student 64-{args.student_hidden}-10"
    torch.manual_seed(1)
    baseline = fit(mlp(widths, "relu"), x_few, y_few, args.epochs, args.batch, "labels only")
    print(f"{name + ', labels only':<32} test accuracy {accuracy(baseline, x_test, y_test):.3f}")
    for temperature in args.temperatures:
        criterion = fusedact.KDLoss(temperature=temperature, hard_weight=args.hard_weight)
        torch.manual_seed(1)  # the same initial student as the baseline
        student = fit(mlp(widths, "relu"), x_few, y_few, args.epochs, args.batch,
                      f"KD T={temperature:g}", teacher=teacher, criterion=criterion)
        label = f"{name}, KD T={temperature:g}"
        print(f"{label:<32} test accuracy {accuracy(student, x_test, y_test):.3f}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
