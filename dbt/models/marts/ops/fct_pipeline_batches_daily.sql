-- Deliveries per day (UTC, by when the load started) and source: how many ended in each
-- status, and the rows they read, loaded and set aside.
with

batches as (
    select * from {{ ref('fct_pipeline_batches') }}
),

final as (
    select
        started_date as batch_date,
        source_name,
        count(*) as batch_count,
        count(*) filter (where batch_status = 'loaded') as loaded_batch_count,
        count(*) filter (where batch_status = 'loaded_with_warnings')
            as loaded_with_warnings_batch_count,
        count(*) filter (where batch_status = 'quarantined') as quarantined_batch_count,
        count(*) filter (where batch_status = 'rejected') as rejected_batch_count,
        count(*) filter (where batch_status = 'failed') as failed_batch_count,
        count(*) filter (where batch_status = 'duplicate') as duplicate_batch_count,
        count(*) filter (where is_in_progress) as in_progress_batch_count,
        count(*) filter (where needs_attention) as needs_attention_batch_count,
        coalesce(sum(rows_read_count), 0)::bigint as rows_read_count,
        coalesce(sum(rows_loaded_count), 0)::bigint as rows_loaded_count,
        coalesce(sum(rows_quarantined_count), 0)::bigint as rows_quarantined_count
    from batches
    group by started_date, source_name
)

select * from final
