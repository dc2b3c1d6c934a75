-- Assessment and referral outcomes per month of receipt, region and channel.
-- The outcomes of a month, region and channel add up to the hotline cases that
-- rpt_cases_monthly publishes for them, so they are one group with a published total: the
-- outcomes withheld one by one are published as one remainder row ('withheld'), only where
-- they are at least two and hold enough cases (complementary suppression,
-- macros/publication.sql); where the group itself is withheld (int_case_groups_withheld) all
-- its outcomes are, and no remainder is shown.
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

case_groups as (
    select * from {{ ref('int_case_groups_withheld') }}
    where source_kind = 'hotline'
),

grouped as (
    select
        outcomes.month_start,
        outcomes.region,
        outcomes.channel_code,
        outcomes.assessment_code,
        outcomes.referral_target_code,
        outcomes.is_synthetic,
        outcomes.case_count,
        concat_ws('|', outcomes.month_start, outcomes.region, outcomes.channel_code,
            outcomes.is_synthetic) as group_key,
        case_groups.is_withheld as is_group_withheld
    from outcomes
    inner join case_groups
        on outcomes.month_start = case_groups.month_start
        and outcomes.region = case_groups.region
        and outcomes.channel_code = case_groups.channel_code
        and outcomes.is_synthetic = case_groups.is_synthetic
),

cells as (
    select
        grouped.*,
        concat_ws('|', group_key, assessment_code, referral_target_code) as cell_key,
        case_count as cell_count,
        1 as cell_floor,
        {{ is_suppressed('case_count') }} or is_group_withheld as is_primary
    from grouped
),

{{ complementary_suppression('cells', ['group_key']) }},

withheld as (
    select * from cells__withheld
),

by_outcome as (
    select
        withheld.month_start,
        withheld.region,
        withheld.channel_code,
        withheld.assessment_code as assessment,
        coalesce(assessments.assessment_name, 'Pending') as assessment_name,
        withheld.referral_target_code as referred_to,
        coalesce(referral_targets.referral_target_name, 'Pending') as referred_to_name,
        case when not withheld.is_withheld then withheld.case_count end as cases,
        withheld.is_withheld as is_suppressed,
        withheld.is_synthetic,
        false as is_remainder
    from withheld
    left join assessments on withheld.assessment_code = assessments.assessment_code
    left join referral_targets
        on withheld.referral_target_code = referral_targets.referral_target_code
),

remainders as (
    -- the withheld outcomes of a published group, as one count
    select
        month_start,
        region,
        channel_code,
        'withheld' as assessment,
        'Withheld (small counts)' as assessment_name,
        'withheld' as referred_to,
        'Withheld (small counts)' as referred_to_name,
        sum(case_count) filter (where is_withheld)::bigint as cases,
        false as is_suppressed,
        is_synthetic,
        true as is_remainder
    from withheld
    where not is_group_withheld
    group by month_start, region, channel_code, is_synthetic
    having count(*) filter (where is_withheld) > 0
),

unioned as (
    select * from by_outcome
    union all
    select * from remainders
),

final as (
    select
        unioned.month_start as period_start,
        unioned.region,
        unioned.channel_code,
        channels.channel_name,
        unioned.assessment,
        unioned.assessment_name,
        unioned.referred_to,
        unioned.referred_to_name,
        unioned.cases,
        unioned.is_suppressed,
        unioned.is_synthetic,
        unioned.is_remainder
    from unioned
    inner join channels on unioned.channel_code = channels.channel_code
)

select * from final
