"""Airflow Assets shared by the DAG files: one per raw table, updated by a successful load."""

from __future__ import annotations

from airflow.sdk import Asset


def raw_asset(raw_table: str) -> Asset:
    return Asset(name=f"raw.{raw_table}", uri=f"safeguard://warehouse/raw/{raw_table}")
