"""Pure data and ML functions: no Dagster imports, unit-testable on their own."""
