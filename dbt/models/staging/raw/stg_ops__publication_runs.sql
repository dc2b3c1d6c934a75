with

source as (
    select * from {{ source('ops', 'publication_runs') }}
),

renamed as (
    select
        run_id,
        status as run_status,
        selection as dbt_selection,
        selection = 'all' as is_full_build,
        models_built as models_built_count,
        tests_passed as tests_passed_count,
        tests_failed as tests_failed_count,
        run_by,
        message,
        started_at,
        finished_at
    from source
)

select * from renamed
