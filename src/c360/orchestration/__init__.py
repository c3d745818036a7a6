"""Orchestrators that run c360's daily pipeline: Dagster (``c360[dagster]``)."""
