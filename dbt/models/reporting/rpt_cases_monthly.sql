-- Cases per month, country and channel, hotline and partner kept apart; small counts withheld.
-- The countries of a month, region, channel and source are one group whose total is published:
-- as the sum of its published countries plus one remainder row (country_code 'XX') holding the
-- countries withheld one by one, so that sums over countries are right. The remainder is
-- published only where the withheld countries are at least two and hold enough cases that none
-- can be had or narrowed down from it (complementary suppression, macros/publication.sql).
-- Zeros and row existence (rule 5): every group of the declared grid (int_case_groups_withheld)
-- has rows. A published group has a row for every country of its region, a country without a
-- case counting 0 and withheld like any small count; a group withheld as a whole is one row
-- (country_code 'XX', not a remainder), so a country's row never says a case was there.
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

case_groups as (
    select * from {{ ref('int_case_groups_withheld') }}
),

monthly as (
    select
        cases.month_start,
        cases.country_code,
        cases.channel_code,
        cases.source_kind,
        cases.is_synthetic,
        sum(cases.case_count)::bigint as case_count
    from cases
    group by 1, 2, 3, 4, 5
),

published_groups as (
    -- every country of the region of a published group, with its cases or 0
    select
        case_groups.month_start,
        case_groups.region,
        countries.country_code,
        countries.country_name,
        case_groups.channel_code,
        case_groups.source_kind,
        case_groups.is_synthetic,
        coalesce(monthly.case_count, 0)::bigint as case_count,
        concat_ws('|', case_groups.month_start, case_groups.region, case_groups.channel_code,
            case_groups.source_kind, case_groups.is_synthetic) as group_key
    from case_groups
    inner join countries on case_groups.region = countries.region
    left join monthly
        on case_groups.month_start = monthly.month_start
        and countries.country_code = monthly.country_code
        and case_groups.channel_code = monthly.channel_code
        and case_groups.source_kind = monthly.source_kind
        and case_groups.is_synthetic = monthly.is_synthetic
    where not case_groups.is_withheld
),

cells as (
    select
        published_groups.*,
        group_key || '|' || country_code as cell_key,
        case_count as cell_count,
        -- a row for every country: a withheld one may hold 0
        0 as cell_floor,
        {{ is_suppressed('case_count') }} as is_primary
    from published_groups
),

-- one kind of group over a floor of 0: two passes reach the fixed point (the macro says why)
{{ complementary_suppression('cells', ['group_key'], passes=2) }},

withheld as (
    select * from cells__withheld
),

by_country as (
    select
        month_start,
        region,
        country_code,
        country_name,
        channel_code,
        source_kind,
        is_synthetic,
        case when not is_withheld then case_count end as cases,
        is_withheld as is_suppressed,
        false as is_remainder
    from withheld
),

remainders as (
    -- the withheld countries of a published group, as one count
    select
        month_start,
        region,
        'XX' as country_code,
        'Other countries of ' || region || ' (withheld one by one)' as country_name,
        channel_code,
        source_kind,
        is_synthetic,
        sum(case_count) filter (where is_withheld)::bigint as cases,
        false as is_suppressed,
        true as is_remainder
    from withheld
    group by 1, 2, 3, 4, 5, 6, 7
    having count(*) filter (where is_withheld) > 0
),

withheld_groups as (
    -- a group withheld as a whole: one row, whatever its countries
    select
        month_start,
        region,
        'XX' as country_code,
        'All countries of ' || region || ' (withheld as a group)' as country_name,
        channel_code,
        source_kind,
        is_synthetic,
        null::bigint as cases,
        true as is_suppressed,
        false as is_remainder
    from case_groups
    where is_withheld
),

unioned as (
    select * from by_country
    union all
    select * from remainders
    union all
    select * from withheld_groups
),

final as (
    select
        unioned.month_start as period_start,
        extract(year from unioned.month_start)::integer as year,
        unioned.region,
        unioned.country_code,
        unioned.country_name,
        unioned.channel_code,
        channels.channel_name,
        unioned.source_kind,
        unioned.cases,
        unioned.is_suppressed,
        unioned.is_synthetic,
        unioned.is_remainder
    from unioned
    inner join channels on unioned.channel_code = channels.channel_code
)

select * from final
