"""The community-size plot of one graph (for the report)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from xmhash.io import atomic_path, read_json  # noqa: E402


def community_size_plot(stats_json: str, out: str) -> None:
    """Community sizes by rank (log-log), with the counts and modularity in the title."""
    stats = read_json(stats_json)
    sizes = np.asarray(stats["sizes"])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.loglog(np.arange(1, len(sizes) + 1), sizes, marker="o", markersize=3, linewidth=1)
    ax.set_xlabel("community rank")
    ax.set_ylabel("size (items)")
    nmi = stats.get("diagnostic_nmi")
    ax.set_title(
        f"{stats['kind']}: {stats['communities']} communities on {stats['nodes']} items\n"
        f"modularity {stats['modularity']:.3f}"
        + (f", NMI vs labels {nmi:.3f} (diagnostic)" if nmi is not None else ""),
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
