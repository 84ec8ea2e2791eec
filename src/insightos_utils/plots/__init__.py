"""Charts, kept apart from computation: ``plots.leads`` (EDA and scoring), ``plots.ltv`` (value)."""
