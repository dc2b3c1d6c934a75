-- Countries reviewed and countries with dedicated online-grooming legislation, per edition and
-- region, plus one overall row per edition (region 'World'). The sample gives 63 of 196 for the
-- 1st edition (2017) and 77 of 196 for the 2nd, as ICMEC published.
with

by_country as (
    select * from {{ ref('fct_legislation_by_country') }}
),

by_region as (
    select
        edition,
        edition_label,
        region,
        false as is_overall,
        count(*) as countries_reviewed,
        count(*) filter (where has_dedicated_law) as countries_with_law,
        bool_or(is_synthetic) as is_synthetic,
        string_agg(distinct source_name, '; ') as source_name
    from by_country
    group by edition, edition_label, region
),

overall as (
    select
        edition,
        edition_label,
        'World' as region,
        true as is_overall,
        count(*) as countries_reviewed,
        count(*) filter (where has_dedicated_law) as countries_with_law,
        bool_or(is_synthetic) as is_synthetic,
        string_agg(distinct source_name, '; ') as source_name
    from by_country
    group by edition, edition_label
),

unioned as (
    select * from by_region
    union all
    select * from overall
),

final as (
    select
        edition || '|' || region as coverage_id,
        edition,
        edition_label,
        region,
        is_overall,
        countries_reviewed,
        countries_with_law,
        round(100.0 * countries_with_law / nullif(countries_reviewed, 0), 1) as share_with_law_pct,
        is_synthetic,
        source_name
    from unioned
)

select * from final
