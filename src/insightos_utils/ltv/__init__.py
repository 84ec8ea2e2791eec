"""Customer lifetime value, one module per concern, in the order the analysis runs:

``transactions`` (reading, checking) → ``rfm`` (the summary) → ``models/`` (BG/NBD, Gamma-Gamma
over one optimiser base) → ``validation`` (holdout) → ``value`` (the one LTV function) →
``analysis`` (one run of all of it) → ``economics`` (campaigns, CAC, payback, reference ratio)
→ ``narrative`` (report sentences) → ``outputs`` (files); ``command`` is ``insightos ltv``,
``stage`` the one call 04_ltv makes; ``simulate`` draws worlds with known parameters; ``units``
holds the time conventions.
"""
