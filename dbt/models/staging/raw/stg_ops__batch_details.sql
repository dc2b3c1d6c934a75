-- The columns of ops.batches that stg_ops__batches leaves out: who ran the load, the file's
-- size, and the loader's message (file, rows as numbered in the file, column, rule; no values).
with

source as (
    select * from {{ source('ops', 'batches') }}
),

renamed as (
    select
        batch_id,
        file_bytes,
        run_by,
        message
    from source
)

select * from renamed
