with

source as (
    select * from {{ source('ops', 'batches') }}
),

renamed as (
    select
        batch_id,
        source_name,
        source_kind,
        file_name,
        file_sha256,
        file_bytes,
        status as batch_status,
        -- rows of these batches are in raw ('quarantined': the good rows loaded, the rest
        -- set aside); the other statuses left nothing in raw
        status in ('loaded', 'loaded_with_warnings', 'quarantined') as has_loaded_rows,
        rows_read as rows_read_count,
        rows_loaded as rows_loaded_count,
        rows_quarantined as rows_quarantined_count,
        started_at,
        finished_at,
        run_by,
        -- the loader's summary: file, rows as numbered in the file, column, rule; no values
        message
    from source
)

select * from renamed
