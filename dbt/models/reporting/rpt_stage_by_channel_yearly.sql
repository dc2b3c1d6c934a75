-- Yearly spread of grooming stages within each channel and region. A share reveals the
-- channel's total, so when exactly one stage of a channel is below the threshold, the next
-- smallest is withheld too (otherwise total minus the others would give the hidden count).
with

distribution as (
    select * from {{ ref('fct_stage_distribution_by_channel') }}
),

channels as (
    select * from {{ ref('dim_channels') }}
),

stages as (
    select * from {{ ref('dim_grooming_stages') }}
),

flagged as (
    select
        distribution.*,
        {{ is_suppressed('distribution.case_count') }} as is_primary_suppressed
    from distribution
),

suppressed as (
    select
        flagged.*,
        flagged.is_primary_suppressed
        or {{ is_secondarily_suppressed(
            'flagged.case_count', 'flagged.is_primary_suppressed',
            'flagged.year, flagged.region, flagged.channel_code, flagged.is_synthetic',
            'flagged.grooming_stage_code') }} as is_withheld
    from flagged
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
