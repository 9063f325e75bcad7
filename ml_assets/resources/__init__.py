"""Resources: landing zone, table storage (IO manager), MLflow; chosen per environment."""
