"""A partition at a glance: a compact table of client sizes and label counts, and a heatmap
(clients x classes) beside the clients' sizes as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TOP_LABELS = 4  # labels listed per client where there are too many classes for a column each
WIDE = 20  # above this many classes, a client's row lists its commonest labels instead


def summary_lines(counts: np.ndarray) -> list[str]:
    """Totals over the clients of a [clients, classes] label-count matrix."""
    sizes = counts.sum(axis=1)
    present = (counts > 0).sum(axis=1)
    dominant = counts.max(axis=1) / np.maximum(sizes, 1)
    return [
        f"{len(sizes)} clients, {int(sizes.sum()):,} samples, {counts.shape[1]} classes",
        f"samples per client: min {sizes.min()}, median {int(np.median(sizes))}, mean {sizes.mean():.1f}, "
        f"max {sizes.max()}",
        f"classes per client: mean {present.mean():.1f} (min {present.min()}, max {present.max()}); "
        f"commonest class's share: mean {dominant.mean():.2f}",
    ]


def client_table(counts: np.ndarray, max_rows: int) -> list[str]:
    """One row per client (the first `max_rows`): its size and its label counts, a column per
    class, or its commonest labels as label:count where the classes are many."""
    clients, classes = counts.shape
    wide = classes > WIDE
    header = ["client", "samples"] + (["commonest labels (label:count)"] if wide else [str(k) for k in range(classes)])
    rows = []
    for client in range(min(clients, max_rows)):
        row = counts[client]
        if wide:
            top = [k for k in np.argsort(-row, kind="stable")[:TOP_LABELS] if row[k] > 0]
            cells = [" ".join(f"{k}:{row[k]}" for k in top) + (" ..." if (row > 0).sum() > TOP_LABELS else "")]
        else:
            cells = [str(n) if n else "." for n in row]
        rows.append([str(client), str(row.sum()), *cells])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) if i < len(header) - 1 or not wide else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(r, widths))).rstrip() for r in [header, *rows]]
    if clients > max_rows:
        lines.append(f"... {clients - max_rows} more clients (all of them in the heatmap and partition.parquet)")
    return lines


def heatmap_figure(counts: np.ndarray, title: str):
    """Clients (rows) x classes (columns), each cell the share of the client's samples in that class;
    beside it, on the same rows, a bar of each client's samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    clients, classes = counts.shape
    sizes = counts.sum(axis=1)
    shares = counts / np.maximum(sizes[:, None], 1)
    height = min(12.0, 2.0 + 0.12 * clients)
    width = min(16.0, 3.0 + 0.3 * classes)
    fig, (ax, bars) = plt.subplots(1, 2, sharey=True, figsize=(width + 2.5, height), layout="constrained",
                                   gridspec_kw={"width_ratios": [width, 2.5]})
    image = ax.imshow(shares, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1)
    ax.set_xlabel("class")
    ax.set_ylabel("client")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    bars.barh(np.arange(clients), sizes, height=0.8, color="gray")
    bars.set_xlabel("samples")
    bars.grid(axis="x", alpha=0.3)
    ax.set_ylim(clients - 0.5, -0.5)  # client 0 at the top, in both panels
    fig.colorbar(image, ax=[ax, bars], label="share of the client's samples", fraction=0.04, aspect=40)
    return fig


def write_heatmap(counts: np.ndarray, path: Path, title: str) -> None:
    """heatmap_figure as a PNG."""
    from fedmr_ray.report import save_figure

    save_figure(heatmap_figure(counts, title), path)
