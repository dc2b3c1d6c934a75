-- Cases per month, country and channel, hotline and partner kept apart; small counts withheld.
with

cases as (
    select * from {{ ref('fct_cases_monthly') }}
),

countries as (
    select * from {{ ref('dim_countries') }}
),

channels as (
    select * from {{ ref('dim_channels') }}
),

monthly as (
    select
        month_start,
        country_code,
        channel_code,
        source_kind,
        is_synthetic,
        sum(case_count)::bigint as case_count
    from cases
    group by 1, 2, 3, 4, 5
),

final as (
    select
        monthly.month_start as period_start,
        extract(year from monthly.month_start)::integer as year,
        countries.region,
        monthly.country_code,
        countries.country_name,
        monthly.channel_code,
        channels.channel_name,
        monthly.source_kind,
        {{ published_count('monthly.case_count') }} as cases,
        {{ is_suppressed('monthly.case_count') }} as is_suppressed,
        monthly.is_synthetic
    from monthly
    inner join countries on monthly.country_code = countries.country_code
    inner join channels on monthly.channel_code = channels.channel_code
)

select * from final
