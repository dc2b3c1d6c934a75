-- The published layer for dashboards: published figures are public aggregates, shown as
-- they are; a percentage change is shown only where both years count 50 or more (NCMEC's
-- practice), since a change on a small base misleads.
with

figures as (
    select * from {{ ref('fct_published_figures_yearly') }}
),

final as (
    select
        publisher,
        series,
        category_code,
        category_name,
        figure_year as year,
        figure_value,
        previous_value,
        case when figure_value >= {{ var('min_count_for_change', 50) }}
                and previous_value >= {{ var('min_count_for_change', 50) }}
            then yoy_change_pct end as yoy_change_pct,
        is_total,
        source_name,
        is_synthetic
    from figures
)

select * from final
