-- Warnings on loaded deliveries of PUBLIC sources only (published figures, legislation), e.g.
-- a published total that does not reconcile with its parts. Case extracts and partner
-- aggregates are left out, whatever their message says, so that nothing about case data
-- reaches the published layer; example row numbers are never shown.
-- A published-figures warning stays only while it is true of what is published: a total
-- that does not add up is listed while one of its figures is the one published (a later
-- delivery of the same figures that reconciles retires it), and a delivery whose figures are
-- all superseded takes its warnings with it.
with

issues as (
    select * from {{ ref('stg_ops__batch_issues') }}
),

batches as (
    select * from {{ ref('stg_ops__batches') }}
),

published as (
    select * from {{ ref('fct_published_figures_yearly') }}
),

batches_published as (
    select distinct batch_id from published
),

warnings_published as (
    select distinct
        batch_id,
        warning_note
    from published
    where has_warning
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
        and (
            batches.source_kind <> 'published_figures'
            or (
                issues.rule_name = 'total_reconciles'
                and exists (
                    select 1 from warnings_published
                    where warnings_published.batch_id = issues.batch_id
                        and warnings_published.warning_note = issues.message
                )
            )
            or (
                issues.rule_name <> 'total_reconciles'
                and issues.batch_id in (select batch_id from batches_published)
            )
        )
)

select * from final
