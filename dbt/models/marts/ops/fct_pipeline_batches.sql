-- Every delivered file and what became of it, for the data engineers' pipeline-health
-- dashboard: names, counts, times and the loader's message (file, rows as numbered in the file,
-- column, rule), never a row's values. A view over the audit trail: always current, including
-- rejected files, which no dbt run follows.
with

batches as (
    select * from {{ ref('stg_ops__batches') }}
),

issues as (
    select * from {{ ref('stg_ops__batch_issues') }}
),

issues_per_batch as (
    select
        batch_id,
        count(*) filter (where severity = 'error') as error_count,
        count(*) filter (where severity = 'warning') as warning_count,
        string_agg(distinct rule_name, ', ' order by rule_name)
            filter (where severity = 'error') as error_rule_names,
        string_agg(distinct rule_name, ', ' order by rule_name)
            filter (where severity = 'warning') as warning_rule_names
    from issues
    group by batch_id
),

final as (
    select
        batches.batch_id,
        batches.source_name,
        batches.source_kind,
        batches.file_name,
        batches.file_bytes,
        batches.batch_status,
        -- what `safeguard status` flags: the file, or some of its rows, did not load cleanly
        batches.batch_status in ('quarantined', 'rejected', 'failed', 'loaded_with_warnings')
            as needs_attention,
        batches.batch_status in ('landing', 'landed') as is_in_progress,
        row_number() over (
            partition by batches.source_name
            order by batches.started_at desc, batches.batch_id
        ) = 1 as is_latest_for_source,
        batches.rows_read_count,
        batches.rows_loaded_count,
        batches.rows_quarantined_count,
        coalesce(issues_per_batch.error_count, 0) as error_count,
        coalesce(issues_per_batch.warning_count, 0) as warning_count,
        issues_per_batch.error_rule_names,
        issues_per_batch.warning_rule_names,
        batches.started_at,
        batches.finished_at,
        (batches.started_at at time zone 'UTC')::date as started_date,
        round(extract(epoch from batches.finished_at - batches.started_at), 1)
            as duration_seconds,
        batches.run_by,
        batches.message
    from batches
    left join issues_per_batch on batches.batch_id = issues_per_batch.batch_id
)

select * from final
