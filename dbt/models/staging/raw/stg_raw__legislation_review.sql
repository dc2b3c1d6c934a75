-- The legislation review as delivered, renamed. A later delivery of an edition replaces the
-- earlier one: per edition only the rows of the latest batch that loaded rows count.
with

source as (
    select * from {{ source('raw', 'legislation_review') }}
),

batches as (
    select * from {{ ref('stg_ops__batches') }}
),

latest as (
    -- every row of the latest delivery counts (dense_rank), not just one
    {{ latest_batch_wins('source', 'batches', 'source.edition', ranking='dense_rank') }}
),

renamed as (
    select
        batch_id,
        source_row_number,
        batch_finished_at,
        publisher,
        source_name,
        is_synthetic,
        country_code,
        edition,
        has_dedicated_law
    from latest
)

select * from renamed
