"""The timeline PNG of a throughput scenario: groups against the quota line, queue depth, creates and deletes per
window (and for E, tasks ended against each system's create-rate ceiling)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {"dispatcher": "tab:blue", "naive": "tab:orange"}


def draw_timeline(scenario: str, data: dict[str, Any], raw: dict[str, Any], path: Path) -> Path:
    """Four stacked panels over emulated minutes, both systems in each; written to ``path``."""
    limits = data["limits"]
    fig, (groups, queue, creates, deletes) = plt.subplots(4, 1, figsize=(10, 12), sharex=True, constrained_layout=True)
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
        deletes.plot(minutes, [s.get("deletes_5min", 0) for s in timeline], label=f"{system}: last 5 min", color=colour)
        deletes.plot(
            minutes,
            [s.get("deletes_hour", 0) for s in timeline],
            label=f"{system}: last hour",
            color=colour,
            linestyle="--",
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
    deletes.axhline(limits["creates_per_5min"], color="red", linestyle=":", label="limit per 5 min")
    deletes.axhline(limits["creates_per_hour"], color="darkred", linestyle="-.", label="limit per hour")
    deletes.set_ylabel("deletes in window")
    deletes.set_title("Deletes counted by ACI in its two windows: slots freed")
    deletes.set_xlabel("emulated minutes")
    for axis in (groups, queue):
        axis.grid(alpha=0.3)
        axis.legend(loc="upper right", fontsize=8)
    for axis in (creates, deletes):
        axis.grid(alpha=0.3)
        axis.legend(loc="center right", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def draw_tasks_timeline(scenario: str, data: dict[str, Any], raw: dict[str, Any], path: Path) -> Path:
    """Scenario E over emulated minutes: tasks ended (beside an ideal quota-bound dispatcher's, for each system),
    container groups held, tasks waiting, and creates in ACI's windows; both systems in each panel."""
    limits, bound = data["limits"], data["bound"]
    fig, (done, groups, queue, creates) = plt.subplots(4, 1, figsize=(10, 12), sharex=True, constrained_layout=True)
    horizon_min = data["horizon_s"] / 60
    for system, series in raw.items():
        timeline = series["timeline"]
        minutes = [0.0] + [s["t"] / 60 for s in timeline]
        colour = COLOURS.get(system, "tab:gray")
        done.plot(minutes, [0] + [s["completed"] or 0 for s in timeline], label=f"{system}: tasks ended", color=colour)
        ceiling = bound["create_ceiling_per_hour"][system]
        curve = bound["ideal"][system]["curve"]
        done.step(
            [0.0] + [t / 60 for t, _ in curve] + [horizon_min],
            [0] + [n for _, n in curve] + [curve[-1][1] if curve else 0],
            where="post",
            color=colour,
            linestyle=":",
            label=f"{system}: ideal within the quota (long-run create ceiling {ceiling:g} tasks/h)",
        )
        groups.plot(minutes[1:], [s["groups"] for s in timeline], label=system, color=colour)
        queue.plot(minutes[1:], [s["queue"] for s in timeline], label=system, color=colour)
        creates.plot(minutes[1:], [s["creates_5min"] for s in timeline], label=f"{system}: last 5 min", color=colour)
        creates.plot(
            minutes[1:],
            [s["creates_hour"] for s in timeline],
            label=f"{system}: last hour",
            color=colour,
            linestyle="--",
        )
    done.axhline(data["tasks"], color="black", linestyle="-.", label=f"{data['tasks']} tasks")
    done.set_ylim(0, data["tasks"] * 1.1)
    done.set_ylabel("tasks ended")
    done.set_title(
        f"Scenario {scenario}: tasks ended (dispatcher: one array job, {bound['tasks_per_group']} per group; "
        "naive: one group per task)"
    )
    groups.axhline(limits["groups"], color="red", linestyle=":", label=f"quota: {limits['groups']} groups")
    groups.set_ylabel("container groups")
    groups.set_title("Container groups held (sampled each tick)")
    queue.set_ylabel("tasks waiting")
    queue.set_title("Tasks not yet in a group (dispatcher: the array's pending tasks; naive: in-memory backlog)")
    creates.axhline(limits["creates_per_5min"], color="red", linestyle=":", label="limit per 5 min")
    creates.axhline(limits["creates_per_hour"], color="darkred", linestyle="-.", label="limit per hour")
    creates.set_ylabel("creates in window")
    creates.set_title("Creates counted by ACI in its two windows")
    creates.set_xlabel("emulated minutes")
    for axis in (done, groups, queue, creates):
        axis.grid(alpha=0.3)
        axis.legend(loc="upper right" if axis is not creates else "center right", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
