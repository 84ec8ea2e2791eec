"""InsightOS: lead scoring and customer lifetime value over a SaaS company's raw data.

One module per stage, in the pipeline's order: ``synth`` and ``ingest`` (raw data in),
``features`` → ``eda`` → ``modeling`` → ``explain`` → ``scoring`` (leads), ``ltv`` (value),
``runner`` (papermill orchestration and reports), ``collector`` (event capture), ``cli`` on top.
"""

__version__ = "0.1.0"
