-- Complementary suppression reached its fixed point (macros/publication.sql): in every group
-- whose total an attacker can learn, the withheld cells are none, or at least two holding k
-- cases or more beyond one per row - unless nothing is left to withhold. Checked on the
-- published tables against the unsuppressed facts, so that too few passes
-- (var('suppression_passes')) or a broken join fails the build, not just the attacker test.
-- The gridded models (rules 5 of macros/publication.sql) have rows where the facts have none:
-- those cells count 0, as the models count them (a left join, not an inner one: an inner join
-- dropped a withheld zero and saw its partner cell as a lone one: partner re-deliveries of the
-- 2019 months, which replace those months, left a region's year of a channel without a case).
-- One row per group that breaks the rule.
{% set k = var('min_published_count', 10) %}
with

cases_by_country as (
    select
        cases.month_start as period_start,
        cases.country_code,
        cases.channel_code,
        cases.source_kind,
        cases.is_synthetic,
        sum(cases.case_count) as true_count
    from {{ ref('fct_cases_monthly') }} as cases
    group by 1, 2, 3, 4, 5
),

country_groups as (
    select
        published.period_start,
        published.region,
        published.channel_code,
        published.source_kind,
        published.is_synthetic,
        count(*) filter (where published.is_suppressed) as withheld_cells,
        count(*) filter (where not published.is_suppressed and not published.is_remainder)
            as published_cells,
        -- (a row for every country of a published group: a withheld one's floor is 0)
        coalesce(sum(cases_by_country.true_count) filter (where published.is_suppressed), 0)
            as withheld_slack,
        coalesce(sum(cases_by_country.true_count) filter (where published.is_suppressed), 0)
            as withheld_count,
        max(published.cases) filter (where published.is_remainder) as remainder
    from {{ ref('rpt_cases_monthly') }} as published
    left join cases_by_country
        on published.period_start = cases_by_country.period_start
        and published.country_code = cases_by_country.country_code
        and published.channel_code = cases_by_country.channel_code
        and published.source_kind = cases_by_country.source_kind
        and published.is_synthetic = cases_by_country.is_synthetic
    group by 1, 2, 3, 4, 5
),

outcome_groups as (
    select
        published.period_start,
        published.region,
        published.channel_code,
        published.is_synthetic,
        count(*) filter (where published.is_suppressed) as withheld_cells,
        count(*) filter (where not published.is_suppressed and not published.is_remainder)
            as published_cells,
        -- (a row for every outcome of a published group: a withheld one's floor is 0)
        coalesce(sum(outcomes.case_count) filter (where published.is_suppressed), 0)
            as withheld_slack,
        coalesce(sum(outcomes.case_count) filter (where published.is_suppressed), 0)
            as withheld_count,
        max(published.cases) filter (where published.is_remainder) as remainder
    from {{ ref('rpt_case_outcomes_monthly') }} as published
    left join {{ ref('fct_case_outcomes_monthly') }} as outcomes
        on published.period_start = outcomes.month_start
        and published.region = outcomes.region
        and published.channel_code = outcomes.channel_code
        and published.assessment = outcomes.assessment_code
        and published.referred_to = outcomes.referral_target_code
        and published.is_synthetic = outcomes.is_synthetic
    group by 1, 2, 3, 4
),

case_groups as (
    select * from {{ ref('int_case_groups_withheld') }}
),

case_group_rules as (
    -- the months of a year, region and channel; the hotline groups of a month
    select
        concat_ws(' ', 'year', extract(year from month_start), region, channel_code,
            is_synthetic) as case_group,
        is_withheld,
        case_count,
        row_floor
    from case_groups
    union all
    select
        'hotline month ' || month_start,
        is_withheld,
        case_count,
        row_floor
    from case_groups
    where source_kind = 'hotline'
),

stage_groups as (
    select
        published.year,
        published.region,
        published.channel_code,
        published.is_synthetic,
        count(*) filter (where published.is_suppressed) as withheld_cells,
        count(*) filter (where not published.is_suppressed) as published_cells,
        coalesce(sum(coalesce(truth.case_count, 0) - 1) filter (where published.is_suppressed),
            0) as withheld_slack,
        count(*) filter (where published.share_of_channel_pct is not null) as shares
    from {{ ref('rpt_stage_by_channel_yearly') }} as published
    left join {{ ref('fct_stage_distribution_by_channel') }} as truth
        using (year, region, channel_code, grooming_stage_code, is_synthetic)
    group by 1, 2, 3, 4
),

unprotected_channel_years as (
    select
        extract(year from month_start)::integer as year,
        region,
        channel_code,
        is_synthetic
    from case_groups
    group by 1, 2, 3, 4
    having {{ withheld_cells_exposed('count(*) filter (where is_withheld)',
                                     'sum(case_count - row_floor) filter (where is_withheld)') }}
),

week_group as (
    select
        count(*) filter (where published.is_suppressed) as withheld_cells,
        count(*) filter (where not published.is_suppressed) as published_cells,
        coalesce(sum(coalesce(truth.intake_count, 0) - 1)
            filter (where published.is_suppressed), 0) as withheld_slack
    from {{ ref('rpt_case_handling_weekly') }} as published
    left join {{ ref('fct_case_handling_weekly') }} as truth using (week_start)
),

enticement as (
    select
        published.breakdown,
        published.code,
        published.is_synthetic,
        years.year,
        case years.year when 2019 then published.cases_2019 else published.cases_2020 end
            as published_count,
        case years.year when 2019 then truth.cases_2019 else truth.cases_2020 end as true_count
    from {{ ref('rpt_enticement_change_2019_2020') }} as published
    inner join {{ ref('fct_enticement_change_2019_2020') }} as truth
        using (breakdown, code, is_synthetic)
    cross join (values (2019), (2020)) as years (year)
),

enticement_groups as (
    select
        breakdown,
        year,
        is_synthetic,
        count(*) filter (where published_count is null) as withheld_cells,
        count(*) filter (where published_count is not null) as published_cells,
        coalesce(sum(true_count) filter (where published_count is null), 0) as withheld_slack
    from enticement
    group by 1, 2, 3
),

enticement_regions as (
    select
        published.year,
        published.channel_code,
        published.is_synthetic,
        channel_total.published_count as channel_count,
        count(*) filter (where published.is_suppressed) as withheld_cells,
        count(*) filter (where not published.is_suppressed) as published_cells,
        coalesce(sum(coalesce(truth.case_count, 0) - 1)
            filter (where published.is_suppressed), 0) as withheld_slack
    from {{ ref('rpt_exploitation_types_yearly') }} as published
    left join (
        select
            counts.year,
            countries.region,
            counts.channel_code,
            counts.is_synthetic,
            sum(counts.case_count) as case_count
        from {{ ref('fct_case_counts_monthly') }} as counts
        inner join {{ ref('dim_countries') }} as countries using (country_code)
        where counts.exploitation_type_code = 'online_enticement'
        group by 1, 2, 3, 4
    ) as truth using (year, region, channel_code, is_synthetic)
    inner join enticement as channel_total
        on channel_total.breakdown = 'channel'
        and channel_total.code = published.channel_code
        and channel_total.year = published.year
        and channel_total.is_synthetic = published.is_synthetic
    where published.exploitation_type_code = 'online_enticement'
    group by 1, 2, 3, 4
),

violations as (
    select
        'rpt_cases_monthly' as model,
        concat_ws(' ', period_start, region, channel_code, source_kind) as cell_group,
        'remainder over fewer than two withheld countries, too little slack, or not their sum'
            as problem
    from country_groups
    where remainder is not null
        and (withheld_cells < 2 or withheld_slack < {{ k }} or remainder <> withheld_count)
    union all
    select
        'rpt_cases_monthly',
        concat_ws(' ', period_start, region, channel_code, source_kind),
        'countries withheld in a published group with no remainder row'
    from country_groups
    where remainder is null and withheld_cells > 0 and published_cells > 0
    union all
    select
        'rpt_case_outcomes_monthly',
        concat_ws(' ', period_start, region, channel_code),
        'remainder over fewer than two withheld outcomes, too little slack, or not their sum'
    from outcome_groups
    where remainder is not null
        and (withheld_cells < 2 or withheld_slack < {{ k }} or remainder <> withheld_count)
    union all
    select
        'rpt_case_outcomes_monthly',
        concat_ws(' ', period_start, region, channel_code),
        'outcomes withheld in a published group with no remainder row'
    from outcome_groups
    where remainder is null and withheld_cells > 0 and published_cells > 0
    union all
    select
        'int_case_groups_withheld',
        case_group,
        'a lone withheld group, or too little slack, with groups left to withhold'
    from case_group_rules
    group by case_group
    having count(*) filter (where is_withheld) >= 1
        and count(*) filter (where not is_withheld) >= 1
        and {{ withheld_cells_exposed('count(*) filter (where is_withheld)',
                                      'sum(case_count - row_floor) filter (where is_withheld)') }}
    union all
    select
        'rpt_stage_by_channel_yearly',
        concat_ws(' ', year, region, channel_code),
        'a lone withheld stage, or too little slack, with stages left to withhold'
    from stage_groups
    where withheld_cells >= 1 and published_cells >= 1
        and {{ withheld_cells_exposed('withheld_cells', 'withheld_slack') }}
    union all
    select
        'rpt_stage_by_channel_yearly',
        concat_ws(' ', stage_groups.year, stage_groups.region, stage_groups.channel_code),
        'a share gives away a channel total whose withheld months are unprotected'
    from stage_groups
    inner join unprotected_channel_years
        using (year, region, channel_code, is_synthetic)
    where stage_groups.shares > 0
    union all
    select
        'rpt_case_handling_weekly',
        'all weeks',
        'a lone withheld week, or too little slack, with weeks left to withhold'
    from week_group
    where withheld_cells >= 1 and published_cells >= 1
        and {{ withheld_cells_exposed('withheld_cells', 'withheld_slack') }}
    union all
    select
        'rpt_enticement_change_2019_2020',
        concat_ws(' ', breakdown, year),
        'a lone withheld count, or too few cases withheld, with counts left to withhold'
    from enticement_groups
    where withheld_cells >= 1 and published_cells >= 1
        and {{ withheld_cells_exposed('withheld_cells', 'withheld_slack') }}
    union all
    select
        'rpt_exploitation_types_yearly',
        concat_ws(' ', year, channel_code),
        case when channel_count is null
            then 'a region published under a withheld channel count'
            else 'a lone withheld region, or too little slack, under a published channel count'
        end
    from enticement_regions
    where (channel_count is null and published_cells > 0)
        or (channel_count is not null and withheld_cells >= 1 and published_cells >= 1
            and {{ withheld_cells_exposed('withheld_cells', 'withheld_slack') }})
)

select * from violations
