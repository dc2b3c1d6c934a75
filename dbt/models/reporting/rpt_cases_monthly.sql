-- Cases per month, country and channel, hotline and partner kept apart; small counts withheld.
-- The countries of a month, region, channel and source are one group whose total is published:
-- as the sum of its published countries plus one remainder row (country_code 'XX') holding the
-- countries withheld one by one, so that sums over countries are right. The remainder is
-- published only where the withheld countries are at least two and hold enough cases that none
-- can be had or narrowed down from it (complementary suppression, macros/publication.sql); where
-- the group itself is withheld (int_case_groups_withheld) all its countries are, and no
-- remainder is shown.
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
        countries.region,
        cases.country_code,
        countries.country_name,
        cases.channel_code,
        cases.source_kind,
        cases.is_synthetic,
        sum(cases.case_count)::bigint as case_count
    from cases
    inner join countries on cases.country_code = countries.country_code
    group by 1, 2, 3, 4, 5, 6, 7
),

grouped as (
    select
        monthly.*,
        concat_ws('|', monthly.month_start, monthly.region, monthly.channel_code,
            monthly.source_kind, monthly.is_synthetic) as group_key,
        case_groups.is_withheld as is_group_withheld
    from monthly
    inner join case_groups
        on monthly.month_start = case_groups.month_start
        and monthly.region = case_groups.region
        and monthly.channel_code = case_groups.channel_code
        and monthly.source_kind = case_groups.source_kind
        and monthly.is_synthetic = case_groups.is_synthetic
),

cells as (
    select
        grouped.*,
        group_key || '|' || country_code as cell_key,
        case_count as cell_count,
        1 as cell_floor,
        {{ is_suppressed('case_count') }} or is_group_withheld as is_primary
    from grouped
),

{{ complementary_suppression('cells', ['group_key']) }},

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
    where not is_group_withheld
    group by 1, 2, 3, 4, 5, 6, 7
    having count(*) filter (where is_withheld) > 0
),

unioned as (
    select * from by_country
    union all
    select * from remainders
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
