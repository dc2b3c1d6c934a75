-- Legislation coverage per edition and region, with the overall 'World' row of each edition.
with

coverage as (
    select * from {{ ref('fct_legislation_coverage') }}
),

final as (
    select
        edition,
        edition_label,
        region,
        is_overall,
        countries_reviewed,
        countries_with_law,
        share_with_law_pct,
        is_synthetic,
        source_name
    from coverage
)

select * from final
