"""How well each expected-wait estimator predicted the waits contacts actually had.

Each contact's prediction was made when it arrived, from the live counters of the site it landed
at; the truth is how long it waited for an agent (arrival to reservation).  Only contacts that
were served at that same site count: a contact that abandoned has no wait to compare (it is
censored, and leaving it out is the usual, slightly optimistic, choice), and one that moved to
another site waited in a queue the prediction was not about.  The warm-up is left out like
everywhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from site_agent.simulation.trace import Trace


@dataclass(frozen=True, slots=True)
class EwtError:
    """``mae``: mean absolute error (s); ``bias``: mean of predicted minus actual (s), positive
    when the estimator is pessimistic; ``n``: contacts compared (``None`` errors when 0)."""

    n: int
    mae: float | None
    bias: float | None


def ewt_errors(trace: Trace, measured_from: float) -> dict[str, EwtError]:
    pairs = [
        (i, outcome.reserved_at - scheduled.contact.arrival)
        for i, (scheduled, outcome) in enumerate(zip(trace.contacts, trace.outcomes, strict=True))
        if scheduled.contact.arrival >= measured_from
        and outcome.answered_at is not None
        and outcome.reserved_at is not None
        and outcome.serving_site == scheduled.site
    ]
    errors: dict[str, EwtError] = {}
    for name, predictions in trace.ewt_predictions.items():
        diffs = [predictions[i] - actual for i, actual in pairs if math.isfinite(predictions[i])]
        if not diffs:
            errors[name] = EwtError(n=0, mae=None, bias=None)
            continue
        errors[name] = EwtError(
            n=len(diffs),
            mae=math.fsum(abs(d) for d in diffs) / len(diffs),
            bias=math.fsum(diffs) / len(diffs),
        )
    return errors
