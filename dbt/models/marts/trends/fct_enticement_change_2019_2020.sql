-- Online-enticement cases in 2019 and 2020 in our data, by channel and by grooming stage:
-- our counterpart of NCMEC's published +97.5%. Hotline cases and partner aggregates together
-- (a hotline case counts once: it has the form online_enticement or not). Every channel and
-- stage has a row, zeros too: a declared grid (macros/publication.sql, rule 5).
with

counts as (
    select * from {{ ref('fct_case_counts_monthly') }}
),

channels as (
    select * from {{ ref('dim_channels') }}
),

stages as (
    select * from {{ ref('dim_grooming_stages') }}
),

enticement as (
    select *
    from counts
    where exploitation_type_code = 'online_enticement'
        and year in (2019, 2020)
),

flags as (
    select distinct is_synthetic from counts
),

by_channel as (
    select
        'channel' as breakdown,
        channels.channel_code as code,
        channels.channel_name as name,
        channels.channel_order as sort_order,
        flags.is_synthetic,
        coalesce(sum(enticement.case_count) filter (where enticement.year = 2019), 0) as cases_2019,
        coalesce(sum(enticement.case_count) filter (where enticement.year = 2020), 0) as cases_2020
    from channels
    cross join flags
    left join enticement
        on channels.channel_code = enticement.channel_code
        and flags.is_synthetic = enticement.is_synthetic
    group by 1, 2, 3, 4, 5
),

by_stage as (
    select
        'grooming_stage' as breakdown,
        stages.grooming_stage_code as code,
        stages.grooming_stage_name as name,
        stages.stage_order as sort_order,
        flags.is_synthetic,
        coalesce(sum(enticement.case_count) filter (where enticement.year = 2019), 0) as cases_2019,
        coalesce(sum(enticement.case_count) filter (where enticement.year = 2020), 0) as cases_2020
    from stages
    cross join flags
    left join enticement
        on stages.grooming_stage_code = enticement.grooming_stage_code
        and flags.is_synthetic = enticement.is_synthetic
    group by 1, 2, 3, 4, 5
),

unioned as (
    select * from by_channel
    union all
    select * from by_stage
),

final as (
    select
        breakdown,
        code,
        name,
        sort_order,
        is_synthetic,
        cases_2019::bigint as cases_2019,
        cases_2020::bigint as cases_2020,
        (cases_2020 - cases_2019)::bigint as change_count,
        case when cases_2019 > 0
            then round(100.0 * (cases_2020 - cases_2019) / cases_2019, 1) end as pct_change
    from unioned
)

select * from final
