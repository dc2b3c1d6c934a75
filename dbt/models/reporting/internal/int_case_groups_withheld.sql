{{ config(materialized='ephemeral') }}
-- The shared grain of the published case counts: month x region x channel x source_kind. Never
-- materialized (the reporting schema is what the viewer reads): rpt_cases_monthly and
-- rpt_case_outcomes_monthly break these groups down (by country; by assessment and referral)
-- and take from here which groups are withheld as a whole.
-- Every group of the declared grid is here (macros/publication.sql, rule 5): every month from
-- the first to the last, every region and channel of the reference lists, every source kind
-- and flag the facts hold; a group without a case counts 0 and is withheld like any small
-- count. The published tables show a withheld group as one row and a published one as every
-- cell of its breakdown, so no row's presence says a case was there: a withheld group, and
-- each cell of a published one, may hold 0 (their floor is 0).
-- A group total an attacker can learn elsewhere is protected here (macros/publication.sql):
--   - the months (both sources) of a year, region and channel add up to the channel total of
--     rpt_stage_by_channel_yearly, which its shares give away;
--   - the hotline groups of a month, over all regions and channels, add up to the month's
--     hotline intake, which the weekly intake and the hotline total give away (exactly so over
--     the months whose first day is a Monday; taken as given for every month, to be safe).
-- A group is withheld to begin with where it is small. (A published group can always protect
-- its breakdowns: every region but 'Unknown', which is one country, has many countries and
-- there are 24 outcomes, so withholding every cell of the breakdown holds the group's k cases
-- or more over two cells at least.)
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

grid_months as (
    select generate_series(min(month_start), max(month_start), interval '1 month')::date
        as month_start
    from cases
),

grid_regions as (
    select distinct region from countries
),

grid_channels as (
    select channel_code from channels
),

grid_sources as (
    select distinct source_kind from cases
),

grid_flags as (
    select distinct is_synthetic from cases
),

grid as (
    {{ declared_grid(['grid_months', 'grid_regions', 'grid_channels', 'grid_sources',
                      'grid_flags']) }}
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

group_counts as (
    select
        month_start,
        region,
        channel_code,
        source_kind,
        is_synthetic,
        sum(country_case_count)::bigint as case_count
    from by_country
    group by 1, 2, 3, 4, 5
),

groups as (
    select
        grid.month_start,
        grid.region,
        grid.channel_code,
        grid.source_kind,
        grid.is_synthetic,
        coalesce(group_counts.case_count, 0)::bigint as case_count,
        -- every cell of a published group's breakdown has a row, a withheld group has one:
        -- none says 'a case at least'
        0 as row_floor,
        {{ is_suppressed('coalesce(group_counts.case_count, 0)') }} as is_primary
    from grid
    left join group_counts
        on grid.month_start = group_counts.month_start
        and grid.region = group_counts.region
        and grid.channel_code = group_counts.channel_code
        and grid.source_kind = group_counts.source_kind
        and grid.is_synthetic = group_counts.is_synthetic
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
