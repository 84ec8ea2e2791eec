"""Ingest charts: each takes what ``insightos_utils.ingest`` computed and returns a matplotlib
Figure whose title states the finding and whose axes are labelled."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure


def plot_events_per_week(weekly: pd.Series) -> Figure:
    """Events per week (``ingest.events_per_week``): the shape of the log at a glance."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(weekly.index, weekly.to_numpy(), color="#264653", linewidth=1.5)
    ax.fill_between(weekly.index, weekly.to_numpy(), color="#2a9d8f", alpha=0.25)
    ax.set_xlabel("week starting (UTC)")
    ax.set_ylabel("events")
    ax.set_ylim(bottom=0)
    if len(weekly):
        busiest = weekly.idxmax()
        ax.set_title(
            f"{int(weekly.sum()):,} events over {len(weekly)} weeks; busiest week "
            f"{busiest:%Y-%m-%d} with {int(weekly.max()):,}"
        )
    else:
        ax.set_title("No events were written")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
