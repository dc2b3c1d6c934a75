"""Kinds of source: each lands in one ``raw`` table with a fixed canonical shape.

A contract maps its file onto a kind; the kind decides the raw table and its SQL types. The
raw table also carries lineage on every row: ``batch_id`` (-> ``ops.batches``) and the
source row number.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    raw_table: str
    #: canonical column -> SQL type in raw
    columns: dict[str, str]
    #: contract-level fields copied onto every raw row (column -> SQL type)
    constants: dict[str, str]
    #: column -> the raw column that keeps the publisher's own label next to our code
    label_columns: dict[str, str]


PUBLISHED_FIGURES = Kind(
    name="published_figures",
    raw_table="published_figures",
    columns={"year": "integer", "category": "text", "value": "bigint"},
    constants={"publisher": "text", "series": "text", "source_name": "text",
               "is_synthetic": "boolean"},
    label_columns={"category": "category_label"},
)

KINDS = {k.name: k for k in (PUBLISHED_FIGURES,)}
