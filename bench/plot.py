"""The timeline PNG of a throughput scenario: groups against the quota line, queue depth, creates per window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {"dispatcher": "tab:blue", "naive": "tab:orange"}


def draw_timeline(scenario: str, data: dict[str, Any], raw: dict[str, Any], path: Path) -> Path:
    """Three stacked panels over emulated minutes, both systems in each; written to ``path``."""
    limits = data["limits"]
    fig, (groups, queue, creates) = plt.subplots(3, 1, figsize=(10, 9), sharex=True, constrained_layout=True)
    for system, series in raw.items():
        timeline = series["timeline"]
        minutes = [s["t"] / 60 for s in timeline]
        colour = COLOURS.get(system, "tab:gray")
        groups.plot(minutes, [s["groups"] for s in timeline], label=system, color=colour)
        queue.plot(minutes, [s["queue"] for s in timeline], label=system, color=colour)
        creates.plot(minutes, [s["creates_5min"] for s in timeline], label=f"{system}: last 5 min", color=colour)
        creates.plot(
            minutes, [s["creates_hour"] for s in timeline], label=f"{system}: last hour", color=colour, linestyle="--"
        )
    groups.axhline(limits["groups"], color="red", linestyle=":", label=f"quota: {limits['groups']} groups")
    groups.set_ylabel("container groups")
    groups.set_title(f"Scenario {scenario}: container groups held (sampled each tick)")
    queue.set_ylabel("jobs waiting")
    queue.set_title("Queue depth (dispatcher: queue index; naive: in-memory backlog)")
    creates.axhline(limits["creates_per_5min"], color="red", linestyle=":", label="limit per 5 min")
    creates.axhline(limits["creates_per_hour"], color="darkred", linestyle="-.", label="limit per hour")
    creates.set_ylabel("creates in window")
    creates.set_title("Creates counted by ACI in its two windows")
    creates.set_xlabel("emulated minutes")
    for axis in (groups, queue):
        axis.grid(alpha=0.3)
        axis.legend(loc="upper right", fontsize=8)
    creates.grid(alpha=0.3)
    creates.legend(loc="center right", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
