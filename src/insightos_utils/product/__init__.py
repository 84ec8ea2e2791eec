"""Product intelligence (05_product): where users get stuck on the way to converting.

``activity`` (each signup's early activity: first time and count per event name, before
converting), ``funnel`` (key steps, reach with Wilson intervals, drop-off by campaign),
``friction`` (steps ranked by users lost x conversion gap), ``drivers`` (early behaviours
associated with converting, lift with interval), ``narrative`` (the findings in words) and
``stage`` (the one call the notebook makes: analyse, write the outputs, record the stage).
"""
