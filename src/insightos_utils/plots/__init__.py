"""Charts, kept apart from computation: ``plots.ingest``, ``plots.eda``, ``plots.scoring``, ``plots.ltv`` (value), ``plots.survival`` (time to conversion)."""
