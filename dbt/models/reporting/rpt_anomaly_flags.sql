-- Points to check: each point of each published series with what its pattern expected and how
-- far it is from it (robust z), flagged where |z| > 3.5 (marts.fct_series_anomalies says how).
-- Every number here is computed from published values only (the mart reads this layer), so
-- this table tells the viewer nothing the other reporting tables do not; a withheld point is
-- published as withheld and never flagged. A flag never changes a figure.
with

anomalies as (
    select * from {{ ref('fct_series_anomalies') }}
),

final as (
    select
        series_kind,
        series_key,
        series_name,
        channel_code,
        channel_name,
        period_start,
        period_label,
        value,
        expected_value,
        robust_z,
        is_flagged,
        is_withheld as is_suppressed,
        method,
        is_synthetic
    from anomalies
)

select * from final
