-- The deliveries whose rows the published figures stand on, so that a printed figure can name
-- the file it came from (the fact sheet's footnotes): batch, the file's SHA-256 prefix and the
-- day it was loaded. Nothing here is a number: no row count, no file size - a daily case
-- extract's row count is a count of cases - and a case file's name is left out (the sender
-- chose it; only public sources' names are shown, as rpt_batch_warnings shows them).
-- A delivery is listed while its rows count somewhere in the published facts: a partner month's
-- latest delivery, the winning delivery of a published figure, the legislation review in use;
-- for the hotline's case extracts, every extract loaded. (Listing an extract only while one of
-- its cases is current would say, across versions, that one holds at least one case and that
-- another no longer holds any: counts about a handful of cases.)
with

batches as (
    select * from {{ ref('stg_ops__batches') }}
),

case_versions as (
    select * from {{ ref('stg_raw__hotline_case_versions') }}
),

partner_aggregates as (
    select * from {{ ref('stg_raw__partner_aggregates') }}
),

published_figures as (
    select * from {{ ref('fct_published_figures_yearly') }}
),

legislation as (
    select * from {{ ref('fct_legislation_by_country') }}
),

in_use as (
    select batch_id, bool_or(is_synthetic) as is_synthetic
    from case_versions
    group by batch_id
    union all
    select batch_id, bool_or(is_synthetic) as is_synthetic
    from partner_aggregates
    group by batch_id
    union all
    select batch_id, bool_or(is_synthetic) as is_synthetic
    from published_figures
    group by batch_id
    union all
    select batch_id, bool_or(is_synthetic) as is_synthetic
    from legislation
    group by batch_id
),

final as (
    select
        batches.batch_id::text as batch_id,
        batches.source_name,
        batches.source_kind,
        case when batches.source_kind in ({{ "'" ~ var('public_source_kinds', ['published_figures', 'legislation']) | join("', '") ~ "'" }})
            then batches.file_name end as file_name,
        left(batches.file_sha256, 12) as file_sha256_prefix,
        (batches.finished_at at time zone 'UTC')::date as loaded_date,
        bool_or(in_use.is_synthetic) as is_synthetic
    from in_use
    inner join batches on in_use.batch_id = batches.batch_id
    group by 1, 2, 3, 4, 5, 6
)

select * from final
