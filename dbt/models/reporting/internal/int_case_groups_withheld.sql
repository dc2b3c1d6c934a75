{{ config(materialized='ephemeral') }}
-- The shared grain of the published case counts: month x region x channel x source_kind. Never
-- materialized (the reporting schema is what the viewer reads): rpt_cases_monthly and
-- rpt_case_outcomes_monthly break these groups down (by country; by assessment and referral)
-- and take from here which groups are withheld as a whole.
-- A group total an attacker can learn elsewhere is protected here (macros/publication.sql):
--   - the months (both sources) of a year, region and channel add up to the channel total of
--     rpt_stage_by_channel_yearly, which its shares give away;
--   - the hotline groups of a month, over all regions and channels, add up to the month's
--     hotline intake, which the weekly intake and the hotline total give away (exactly so over
--     the months whose first day is a Monday; taken as given for every month, to be safe).
-- A group is withheld to begin with where it is small, or where a breakdown of it (countries,
-- outcomes) has a small cell and could not be protected even with every cell withheld. A
-- withheld group's floor is the number of rows that break it down (each holds a case at least).
with

cases as (
    select * from {{ ref('fct_cases_monthly') }}
),

countries as (
    select * from {{ ref('dim_countries') }}
),

outcomes as (
    select * from {{ ref('fct_case_outcomes_monthly') }}
),

by_country as (
    select
        cases.month_start,
        countries.region,
        cases.channel_code,
        cases.source_kind,
        cases.is_synthetic,
        cases.country_code,
        sum(cases.case_count)::bigint as country_case_count
    from cases
    inner join countries on cases.country_code = countries.country_code
    group by 1, 2, 3, 4, 5, 6
),

by_group as (
    select
        month_start,
        region,
        channel_code,
        source_kind,
        is_synthetic,
        sum(country_case_count)::bigint as case_count,
        count(*) as country_count,
        count(*) filter (where {{ is_suppressed('country_case_count') }}) as small_country_count
    from by_country
    group by 1, 2, 3, 4, 5
),

outcome_groups as (
    select
        month_start,
        region,
        channel_code,
        is_synthetic,
        count(*) as outcome_count,
        count(*) filter (where {{ is_suppressed('case_count') }}) as small_outcome_count
    from outcomes
    group by 1, 2, 3, 4
),

groups as (
    select
        by_group.*,
        -- a withheld group's rows say 'a case at least' each: the least it can hold
        greatest(by_group.country_count, coalesce(outcome_groups.outcome_count, 0)) as row_floor,
        -- a published group must be able to protect its breakdowns: where a small cell is there
        -- and even all cells withheld together would hold too little beyond a case per row,
        -- the group is withheld instead
        {{ is_suppressed('by_group.case_count') }}
        or (by_group.small_country_count > 0
            and by_group.case_count - by_group.country_count < {{ min_published_count() }})
        or (coalesce(outcome_groups.small_outcome_count, 0) > 0
            and by_group.case_count - outcome_groups.outcome_count < {{ min_published_count() }})
            as is_primary
    from by_group
    left join outcome_groups
        on by_group.source_kind = 'hotline'
        and by_group.month_start = outcome_groups.month_start
        and by_group.region = outcome_groups.region
        and by_group.channel_code = outcome_groups.channel_code
        and by_group.is_synthetic = outcome_groups.is_synthetic
),

cells as (
    select
        groups.*,
        concat_ws('|', month_start, region, channel_code, source_kind, is_synthetic) as cell_key,
        case_count as cell_count,
        row_floor as cell_floor,
        concat_ws('|', extract(year from month_start), region, channel_code, is_synthetic)
            as year_group,
        -- (the weekly intake counts sample and real cases together: so does this group)
        case when source_kind = 'hotline' then month_start::text end as hotline_month_group
    from groups
),

{{ complementary_suppression('cells', ['year_group', 'hotline_month_group']) }},

final as (
    select
        month_start,
        region,
        channel_code,
        source_kind,
        is_synthetic,
        case_count,
        row_floor,
        is_withheld
    from cells__withheld
)

select * from final
