-- The rules and expectations deliveries failed (error) or warned on (warning), one row per
-- rule per delivery, with the delivery's source and outcome: which rules fail most, and where.
-- The message names the file, rows as numbered in the file, column and rule, never values;
-- example row numbers are left in staging.
with

issues as (
    select * from {{ ref('stg_ops__batch_issues') }}
),

batches as (
    select * from {{ ref('fct_pipeline_batches') }}
),

final as (
    select
        issues.issue_id,
        issues.batch_id,
        batches.source_name,
        batches.source_kind,
        batches.file_name,
        batches.batch_status,
        issues.rule_name,
        issues.column_name,
        issues.severity,
        issues.row_count,
        issues.message,
        batches.started_at,
        batches.started_date
    from issues
    inner join batches on issues.batch_id = batches.batch_id
)

select * from final
