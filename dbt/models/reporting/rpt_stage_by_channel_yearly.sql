-- Yearly spread of grooming stages within each channel and region. A share gives the channel's
-- total away (and rpt_cases_monthly adds up to it too), so the stages of a channel, year and
-- region are one group with a known total: complementary suppression (macros/publication.sql)
-- withholds further stages until the withheld ones are at least two and hold enough cases that
-- none can be had or narrowed down by subtraction.
-- The same total is what protects the months of rpt_cases_monthly withheld within that year,
-- region and channel (int_case_groups_withheld). Where those cannot be protected (too few
-- cases beyond one per published row), the total must not be given away: every stage of the
-- channel, year and region is withheld, shares included.
-- Every cell of the year x region x channel x stage grid has a row, zeros withheld like small
-- counts (macros/publication.sql, rule 5).
with

distribution_counts as (
    select * from {{ ref('fct_stage_distribution_by_channel') }}
),

countries as (
    select * from {{ ref('dim_countries') }}
),

channels as (
    select * from {{ ref('dim_channels') }}
),

stages as (
    select * from {{ ref('dim_grooming_stages') }}
),

case_groups as (
    select * from {{ ref('int_case_groups_withheld') }}
),

grid_years as (
    select generate_series(min(year), max(year)) as year from distribution_counts
),

grid_regions as (
    select distinct region from countries
),

grid_channels as (
    select channel_code from channels
),

grid_stages as (
    select grooming_stage_code from stages
),

grid_flags as (
    select distinct is_synthetic from distribution_counts
),

grid as (
    {{ declared_grid(['grid_years', 'grid_regions', 'grid_channels', 'grid_stages',
                      'grid_flags']) }}
),

distribution as (
    select
        grid.year,
        make_date(grid.year, 1, 1) as year_start,
        grid.region,
        grid.channel_code,
        grid.grooming_stage_code,
        grid.is_synthetic,
        coalesce(distribution_counts.case_count, 0)::bigint as case_count,
        distribution_counts.share_of_channel_pct
    from grid
    left join distribution_counts
        on grid.year = distribution_counts.year
        and grid.region = distribution_counts.region
        and grid.channel_code = distribution_counts.channel_code
        and grid.grooming_stage_code = distribution_counts.grooming_stage_code
        and grid.is_synthetic = distribution_counts.is_synthetic
),

unprotected_channel_years as (
    -- the months withheld within a year, region and channel are one alone, or hold too few
    -- cases beyond one per row, for their total to be known
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

cells as (
    select
        distribution.*,
        concat_ws('|', distribution.year, distribution.region, distribution.channel_code,
            distribution.is_synthetic, distribution.grooming_stage_code) as cell_key,
        distribution.case_count as cell_count,
        1 as cell_floor,
        {{ is_suppressed('distribution.case_count') }}
        or unprotected_channel_years.year is not null as is_primary,
        concat_ws('|', distribution.year, distribution.region, distribution.channel_code,
            distribution.is_synthetic) as channel_group
    from distribution
    left join unprotected_channel_years
        on distribution.year = unprotected_channel_years.year
        and distribution.region = unprotected_channel_years.region
        and distribution.channel_code = unprotected_channel_years.channel_code
        and distribution.is_synthetic = unprotected_channel_years.is_synthetic
),

{{ complementary_suppression('cells', ['channel_group']) }},

suppressed as (
    select * from cells__withheld
),

final as (
    select
        suppressed.year,
        suppressed.year_start as period_start,
        suppressed.region,
        suppressed.channel_code,
        channels.channel_name,
        suppressed.grooming_stage_code,
        stages.grooming_stage_name,
        stages.stage_order,
        case when not suppressed.is_withheld then suppressed.case_count end as cases,
        case when not suppressed.is_withheld then suppressed.share_of_channel_pct end
            as share_of_channel_pct,
        suppressed.is_withheld as is_suppressed,
        suppressed.is_synthetic
    from suppressed
    inner join channels on suppressed.channel_code = channels.channel_code
    inner join stages on suppressed.grooming_stage_code = stages.grooming_stage_code
)

select * from final
