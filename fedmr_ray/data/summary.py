"""A partition at a glance: a compact table of client sizes and label counts, and a heatmap
(clients x classes) as a PNG."""

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


def write_heatmap(counts: np.ndarray, path: Path, title: str) -> None:
    """Clients (rows) x classes (columns), each cell the share of the client's samples in that class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    clients, classes = counts.shape
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    height = min(12.0, 2.0 + 0.12 * clients)
    width = min(16.0, 3.0 + 0.3 * classes)
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(shares, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1)
    ax.set_xlabel("class")
    ax.set_ylabel("client")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of the client's samples")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
