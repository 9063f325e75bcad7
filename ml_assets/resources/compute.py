"""How many of the machine's cores a step's own computation may use."""

import dagster as dg
from pydantic import Field


class Compute(dg.ConfigurableResource):
    """CPU threads for a step's pure functions over a partition range, where their NumPy work
    releases the GIL (the features step's congestion features, 64 flight dates a thread)."""

    threads: int = Field(
        default=1,
        ge=1,
        description="Threads a step computes a range on (the features' congestion features); 1 for one.",
    )
