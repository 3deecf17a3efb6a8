"""Bar charts of the benchmark rows: speedup over eager and fraction of the ceiling."""
from __future__ import annotations

from pathlib import Path


def plot(rows: list[dict], path: Path) -> str:
    """Writes ``path`` (PNG) and says so, or says why no plot was made."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install matplotlib)"
    measured = [r for r in rows if r.get("status") == "ok" and r["provider"] != "eager"]
    if not measured:
        return "no plot: nothing measured"
    labels = [f"{r['op']} {r['mode']}\n{r['shape']} {r['dtype']} [{r['provider']}]" for r in measured]
    fig, axes = plt.subplots(1, 2, figsize=(14, 0.35 * len(measured) + 1.5), sharey=True)
    for axis, key, title in ((axes[0], "speedup_vs_eager", "speedup over eager (x)"),
                             (axes[1], "fraction_of_ceiling", "fraction of the measured ceiling")):
        values = [r.get(key) or 0.0 for r in measured]
        axis.barh(range(len(values)), values)
        axis.set_title(title)
        axis.axvline(1.0, color="black", linewidth=0.8)
    axes[0].set_yticks(range(len(labels)), labels, fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot: {path}"
