"""Airflow Assets shared by the DAG files: one per raw table, updated by a successful load, and
one for the published tables, updated by each release."""

from __future__ import annotations

from airflow.sdk import Asset


def raw_asset(raw_table: str) -> Asset:
    return Asset(name=f"raw.{raw_table}", uri=f"safeguard://warehouse/raw/{raw_table}")


def published_asset() -> Asset:
    """The published tables (schema ``reporting``): a release updates them, and what is made
    from them (the fact sheet) follows."""
    return Asset(name="reporting", uri="safeguard://warehouse/reporting")
