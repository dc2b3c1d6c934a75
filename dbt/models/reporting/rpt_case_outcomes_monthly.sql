-- Assessment and referral outcomes per month of receipt, region and channel.
with

outcomes as (
    select * from {{ ref('fct_case_outcomes_monthly') }}
),

channels as (
    select * from {{ ref('dim_channels') }}
),

assessments as (
    select * from {{ ref('dim_assessments') }}
),

referral_targets as (
    select * from {{ ref('dim_referral_targets') }}
),

final as (
    select
        outcomes.month_start as period_start,
        outcomes.region,
        outcomes.channel_code,
        channels.channel_name,
        outcomes.assessment_code as assessment,
        coalesce(assessments.assessment_name, 'Pending') as assessment_name,
        outcomes.referral_target_code as referred_to,
        coalesce(referral_targets.referral_target_name, 'Pending') as referred_to_name,
        {{ published_count('outcomes.case_count') }} as cases,
        {{ is_suppressed('outcomes.case_count') }} as is_suppressed,
        outcomes.is_synthetic
    from outcomes
    inner join channels on outcomes.channel_code = channels.channel_code
    left join assessments on outcomes.assessment_code = assessments.assessment_code
    left join referral_targets
        on outcomes.referral_target_code = referral_targets.referral_target_code
)

select * from final
