-- Hotline cases for analysts: one row per case, coarsened so that no row stands out.
-- cases.fct_hotline_cases (the engineer's alone) says when each step happened to the minute and
-- in which country: with an age band, that is enough for anyone who knows when a report was
-- made to find it. Here a case says no time and no country, and every combination of
-- everything a row says is shared by at least var('min_analyst_group') cases (k-anonymity over
-- all columns), at one of two levels:
--   detail 'by_year'     year, region, channel, age band, grooming stage and assessment, where
--                        at least k cases share them all;
--   detail 'by_quarter'  the cases left: quarter, region and channel only (the rest withheld),
--                        where at least k of them share those;
-- the cases left after that are not in the table. How long steps took is in the weekly
-- aggregates (fct_case_handling_weekly), not here.
with

cases as (
    select * from {{ ref('fct_hotline_cases') }}
),

countries as (
    select * from {{ ref('dim_countries') }}
),

attributes as (
    select
        cases.source_organisation,
        cases.is_synthetic,
        date_trunc('year', cases.received_month_start)::date as received_year,
        date_trunc('quarter', cases.received_month_start)::date as received_quarter,
        coalesce(countries.region, 'Unknown') as region,
        cases.channel_code,
        cases.age_band_code,
        cases.grooming_stage_code,
        coalesce(cases.assessment_code, 'not_assessed') as assessment_code
    from cases
    left join countries on cases.country_code = countries.country_code
),

by_year as (
    select
        *,
        count(*) over (partition by source_organisation, is_synthetic, received_year, region,
            channel_code, age_band_code, grooming_stage_code, assessment_code) as group_size
    from attributes
),

by_quarter as (
    select
        *,
        count(*) over (partition by source_organisation, is_synthetic, received_quarter, region,
            channel_code) as quarter_group_size
    from by_year
    where group_size < {{ var('min_analyst_group') }}
),

final as (
    select
        'by_year' as detail, source_organisation, is_synthetic,
        received_year as received_period_start, region, channel_code, age_band_code,
        grooming_stage_code, assessment_code
    from by_year
    where group_size >= {{ var('min_analyst_group') }}
    union all
    select
        'by_quarter', source_organisation, is_synthetic, received_quarter, region, channel_code,
        null, null, null
    from by_quarter
    where quarter_group_size >= {{ var('min_analyst_group') }}
)

select * from final
