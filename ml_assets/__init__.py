"""A Dagster code location: NYC flight landing files to a production delay model."""
