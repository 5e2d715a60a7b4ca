"""Handle-time distributions a scenario can ask for, each able to draw from a random stream.

They are pydantic models tagged by ``distribution`` so a scenario file names one directly
(``{distribution: lognormal, mean: 240, cv: 0.8}``) and a new kind is one more class here, not a
branch in the traffic generator.  Parameters are the ones planners quote (mean and coefficient of
variation), not the underlying normal's mu and sigma.
"""

from __future__ import annotations

import math
import random
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Distribution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogNormal(_Distribution):
    """Log-normal: the usual fit of contact-center talk times (right-skewed, never negative)."""

    distribution: Literal["lognormal"]
    mean: float = Field(gt=0, description="Mean in seconds.")
    cv: float = Field(gt=0, description="Coefficient of variation: standard deviation / mean.")

    def sample(self, rng: random.Random) -> float:
        # Moments of a log-normal: mean = exp(mu + s²/2), cv² = exp(s²) - 1.
        sigma_squared = math.log1p(self.cv * self.cv)
        mu = math.log(self.mean) - sigma_squared / 2.0
        return rng.lognormvariate(mu, math.sqrt(sigma_squared))


class Exponential(_Distribution):
    """Exponential: what Erlang C and A assume, so the simulator can be checked against them."""

    distribution: Literal["exponential"]
    mean: float = Field(gt=0, description="Mean in seconds.")

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean)


HandleTime = Annotated[LogNormal | Exponential, Field(discriminator="distribution")]
