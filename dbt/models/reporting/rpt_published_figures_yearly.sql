-- The published layer for dashboards: published figures are public aggregates, shown as
-- they are, one row per figure (its identity: publisher, series, measure, dimensions and
-- period); a percentage change is shown only where both periods count 50 or more (NCMEC's
-- practice), since a change on a small base misleads. A figure whose published total does
-- not add up carries the warning with it.
with

figures as (
    select * from {{ ref('fct_published_figures_yearly') }}
),

countries as (
    select * from {{ ref('dim_countries') }}
),

final as (
    select
        figures.figure_id,
        figures.publisher,
        figures.publisher_name,
        figures.series,
        figures.series_name,
        figures.category_code,
        figures.category_name,
        figures.country_code,
        countries.country_name,
        countries.iso3 as iso3_code,
        coalesce(figures.region, countries.region) as region,
        figures.age_group,
        figures.sex,
        figures.channel_code,
        figures.period_type,
        figures.period_label,
        figures.figure_year as year,
        figures.figure_value,
        figures.unit,
        figures.previous_value,
        case when figures.figure_value >= {{ var('min_count_for_change', 50) }}
                and figures.previous_value >= {{ var('min_count_for_change', 50) }}
            then figures.yoy_change_pct end as yoy_change_pct,
        figures.is_total,
        figures.has_warning,
        figures.warning_note,
        figures.source_name,
        figures.source_url,
        figures.source_role,
        figures.is_synthetic
    from figures
    left join countries on figures.country_code = countries.country_code
)

select * from final
