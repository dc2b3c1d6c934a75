with

source as (
    select * from {{ source('ops', 'releases') }}
),

renamed as (
    select
        release_no,
        as_of_date,
        embargo_days,
        released_at,
        run_by,
        publication_run_id,
        tables_changed as tables_changed_count,
        rows_published as rows_published_count
    from source
)

select * from renamed
