-- Partner counts as delivered, renamed. A partner that delivers a month again replaces it:
-- per source organisation and month only the rows of the latest batch that loaded rows count.
with

source as (
    select * from {{ source('raw', 'partner_aggregates') }}
),

batches as (
    select * from {{ ref('stg_ops__batches') }}
),

latest as (
    -- every row of the latest delivery counts (dense_rank), not just one
    {{ latest_batch_wins('source', 'batches', 'source.source_organisation, source.month', ranking='dense_rank') }}
),

renamed as (
    select
        batch_id,
        source_row_number,
        batch_finished_at,
        source_organisation,
        is_synthetic,
        month as month_start,
        country_code,
        channel as channel_code,
        exploitation_type as exploitation_type_code,
        grooming_stage as grooming_stage_code,
        reporter_type as reporter_type_code,
        case_count
    from latest
)

select * from renamed
