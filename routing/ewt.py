"""Expected-wait-time (EWT) estimators: how long a new contact would wait at a site.

Least-cost routing holds a contact for a cheaper site only while that site's EWT fits in the
service-level budget, so the estimate must be cheap (called per decision) and honest about an
unstaffed site (infinite wait).
"""

from __future__ import annotations

import math


def queue_position_ewt(ahead: float, staffed: int, mean_handle_time: float) -> float:
    """Wait of a contact with ``ahead`` contacts before it, when ``staffed`` agents each free up
    about once per handle time: it is served at the (ahead+1)-th departure, departures arriving
    at rate staffed/AHT.  A site with nobody staffed never answers."""
    if staffed <= 0:
        return math.inf
    return (ahead + 1.0) * mean_handle_time / staffed
