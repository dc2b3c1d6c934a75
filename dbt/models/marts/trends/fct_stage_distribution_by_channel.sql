-- Each year, how the cases of a channel spread over grooming stages, per region: the stage's
-- share of the channel's cases. Each case counted once (fct_cases_monthly).
with

cases as (
    select * from {{ ref('fct_cases_monthly') }}
),

countries as (
    select * from {{ ref('dim_countries') }}
),

yearly as (
    select
        extract(year from cases.month_start)::integer as year,
        countries.region,
        cases.channel_code,
        cases.grooming_stage_code,
        cases.is_synthetic,
        sum(cases.case_count)::bigint as case_count
    from cases
    inner join countries on cases.country_code = countries.country_code
    group by 1, 2, 3, 4, 5
),

with_channel_total as (
    select
        yearly.*,
        sum(yearly.case_count) over (
            partition by yearly.year, yearly.region, yearly.channel_code, yearly.is_synthetic
        )::bigint as channel_case_count
    from yearly
),

final as (
    select
        year,
        make_date(year, 1, 1) as year_start,
        region,
        channel_code,
        grooming_stage_code,
        is_synthetic,
        case_count,
        channel_case_count,
        round(100.0 * case_count / nullif(channel_case_count, 0), 1) as share_of_channel_pct
    from with_channel_total
)

select * from final
