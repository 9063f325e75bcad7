"""Automation: jobs by intent, the landing sensor, schedules, freshness and automation conditions."""
