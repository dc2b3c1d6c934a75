-- Publication refreshes (dbt builds of staging, marts and reporting), one row per build, with
-- dbt's counts and, on failure, the nodes that failed.
with

runs as (
    select * from {{ ref('stg_ops__publication_runs') }}
),

final as (
    select
        run_id,
        run_status,
        dbt_selection,
        is_full_build,
        models_built_count,
        tests_passed_count,
        tests_failed_count,
        run_by,
        message,
        started_at,
        finished_at,
        (started_at at time zone 'UTC')::date as started_date,
        round(extract(epoch from finished_at - started_at), 1) as duration_seconds,
        row_number() over (order by started_at desc, run_id) = 1 as is_latest
    from runs
)

select * from final
