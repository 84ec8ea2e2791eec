"""InsightOS: lead scoring and customer lifetime value over a SaaS company's raw data.

One module per stage, in the pipeline's order: ``synth`` and ``ingest`` (raw data in),
``leads`` (features → eda → split → pipelines → train → bundle → explain → scoring, backtest,
card), ``ltv`` (value), ``product``,
``runner`` (papermill orchestration and reports), ``collector`` (event capture), ``cli`` on top.
"""

__version__ = "0.1.0"
