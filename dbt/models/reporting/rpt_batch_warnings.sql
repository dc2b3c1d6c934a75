-- Warnings on loaded deliveries of PUBLIC sources only (published figures, legislation), e.g.
-- a published total that does not reconcile with its parts. Case extracts and partner
-- aggregates are left out, whatever their message says, so that nothing about case data
-- reaches the published layer; example row numbers are never shown.
with

issues as (
    select * from {{ ref('stg_ops__batch_issues') }}
),

batches as (
    select * from {{ ref('stg_ops__batches') }}
),

final as (
    select
        batches.source_name,
        batches.file_name,
        batches.finished_at as loaded_at,
        issues.severity,
        issues.rule_name as rule,
        issues.message,
        issues.row_count
    from issues
    inner join batches on issues.batch_id = batches.batch_id
    where issues.severity = 'warning'
        and batches.has_loaded_rows
        and batches.source_kind in ({{ "'" ~ var('public_source_kinds', ['published_figures', 'legislation']) | join("', '") ~ "'" }})
)

select * from final
