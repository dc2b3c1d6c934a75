-- Online enticement 2019 -> 2020 in our data, by channel and by grooming stage. Both breakdowns
-- add up to the same yearly total, so within a breakdown and year the withheld counts must be at
-- least two and hold enough cases that none can be had or narrowed down by subtraction
-- (complementary suppression, macros/publication.sql). A change is published only where both
-- years are published and count 50 or more. rpt_exploitation_types_yearly breaks the channel
-- counts down by region and withholds the breakdown of a withheld count; a channel count whose
-- regions include a small one and hold too few cases beyond one per region to protect it is
-- withheld here to begin with.
with

changes as (
    select * from {{ ref('fct_enticement_change_2019_2020') }}
),

counts as (
    select * from {{ ref('fct_case_counts_monthly') }}
),

countries as (
    select * from {{ ref('dim_countries') }}
),

regions as (
    -- the regional breakdown rpt_exploitation_types_yearly publishes for the channel counts
    select
        counts.year,
        counts.channel_code,
        counts.is_synthetic,
        countries.region,
        sum(counts.case_count) as case_count
    from counts
    inner join countries on counts.country_code = countries.country_code
    where counts.exploitation_type_code = 'online_enticement'
        and counts.year in (2019, 2020)
    group by 1, 2, 3, 4
),

unprotectable_channel_years as (
    select
        year,
        channel_code,
        is_synthetic
    from regions
    group by 1, 2, 3
    having count(*) filter (where {{ is_suppressed('case_count') }}) > 0
        and sum(case_count) - count(*) < {{ min_published_count() }}
),

yearly as (
    select breakdown, code, is_synthetic, 2019 as year, cases_2019 as case_count from changes
    union all
    select breakdown, code, is_synthetic, 2020 as year, cases_2020 as case_count from changes
),

cells as (
    select
        concat_ws('|', yearly.breakdown, yearly.code, yearly.is_synthetic, yearly.year) as cell_key,
        yearly.case_count as cell_count,
        -- a row is there when either year had a case: a count may be 0
        0 as cell_floor,
        {{ is_suppressed('yearly.case_count') }}
        or unprotectable_channel_years.year is not null as is_primary,
        concat_ws('|', yearly.breakdown, yearly.is_synthetic, yearly.year) as breakdown_group
    from yearly
    left join unprotectable_channel_years
        on yearly.breakdown = 'channel'
        and yearly.code = unprotectable_channel_years.channel_code
        and yearly.year = unprotectable_channel_years.year
        and yearly.is_synthetic = unprotectable_channel_years.is_synthetic
),

{{ complementary_suppression('cells', ['breakdown_group']) }},

withheld as (
    select
        changes.*,
        withheld_2019.is_withheld as is_2019_withheld,
        withheld_2020.is_withheld as is_2020_withheld
    from changes
    inner join cells__withheld as withheld_2019
        on withheld_2019.cell_key
        = concat_ws('|', changes.breakdown, changes.code, changes.is_synthetic, 2019)
    inner join cells__withheld as withheld_2020
        on withheld_2020.cell_key
        = concat_ws('|', changes.breakdown, changes.code, changes.is_synthetic, 2020)
),

final as (
    select
        breakdown,
        code,
        name,
        sort_order,
        case when not is_2019_withheld then cases_2019 end as cases_2019,
        case when not is_2020_withheld then cases_2020 end as cases_2020,
        case when not is_2019_withheld and not is_2020_withheld
            then {{ published_pct_change('cases_2020', 'cases_2019') }}
        end as pct_change,
        is_2019_withheld or is_2020_withheld as is_suppressed,
        is_synthetic
    from withheld
)

select * from final
