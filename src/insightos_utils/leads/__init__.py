"""Lead scoring, one module per concern, in the order a run uses them:

``features`` (the per-user feature table) → ``eda`` (class balance, collinearity, the leakage
audit, feature decisions) → ``split`` (the time-based holdout) → ``pipelines`` (the two
scikit-learn pipelines and their named steps) → ``train`` (tuning, champion, calibration) →
``metrics`` (holdout metrics, gains, calibration tables) → ``grades`` (fixed grade cut-offs) →
``bundle`` (what scoring needs, saved and loaded) → ``explain`` (per-lead reasons) →
``scoring`` (``insightos score``) → ``backtest`` (do top grades convert later?) → ``card``
(``model_card.json``) → ``narrative`` (report sentences); ``stage`` is the one call
03_lead_scoring makes. Beside them: ``attributes`` (extra users columns and marketing keys as
features, with their leakage audit), ``labels`` (the horizon label), ``survival`` (Kaplan–Meier
of days to conversion by grade), ``trend`` (score against the previous run), ``value`` (expected value per lead and the ``rank_by`` ranking; runs after LTV:
the runner rewrites ``scored_leads.csv`` with it).
"""
