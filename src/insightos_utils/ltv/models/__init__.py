"""Purchase and spend models, one module per model over one shared base (``base``) that owns
the optimiser: ``bgnbd`` (BG/NBD, how often customers buy and when they stop) and
``gamma_gamma`` (Gamma-Gamma, how much they spend per purchase)."""
