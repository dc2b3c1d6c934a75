-- Assessment and referral outcomes per month of receipt, region and channel.
-- The outcomes of a month, region and channel add up to the hotline cases that
-- rpt_cases_monthly publishes for them, so they are one group with a published total: the
-- outcomes withheld one by one are published as one remainder row ('withheld'), only where
-- they are at least two and hold enough cases (complementary suppression,
-- macros/publication.sql).
-- Zeros and row existence (rule 5): every hotline group of the declared grid
-- (int_case_groups_withheld) has rows. A published group has a row for every outcome (each
-- assessment, or pending, by each referral target, or pending), an outcome without a case
-- counting 0 and withheld like any small count; a group withheld as a whole is one row
-- (assessment and referred_to 'all', not a remainder).
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

grid_outcomes as (
    select assessment_code, referral_target_code
    from (
        select assessment_code from assessments
        union all
        select 'pending'
    ) as assessed
    cross join (
        select referral_target_code from referral_targets
        union all
        select 'pending'
    ) as referred
),

grouped as (
    -- every outcome of a published group, with its cases or 0
    select
        case_groups.month_start,
        case_groups.region,
        case_groups.channel_code,
        grid_outcomes.assessment_code,
        grid_outcomes.referral_target_code,
        case_groups.is_synthetic,
        coalesce(outcomes.case_count, 0)::bigint as case_count,
        concat_ws('|', case_groups.month_start, case_groups.region, case_groups.channel_code,
            case_groups.is_synthetic) as group_key
    from case_groups
    cross join grid_outcomes
    left join outcomes
        on case_groups.month_start = outcomes.month_start
        and case_groups.region = outcomes.region
        and case_groups.channel_code = outcomes.channel_code
        and grid_outcomes.assessment_code = outcomes.assessment_code
        and grid_outcomes.referral_target_code = outcomes.referral_target_code
        and case_groups.is_synthetic = outcomes.is_synthetic
    where not case_groups.is_withheld
),

cells as (
    select
        grouped.*,
        concat_ws('|', group_key, assessment_code, referral_target_code) as cell_key,
        case_count as cell_count,
        -- a row for every outcome: a withheld one may hold 0
        0 as cell_floor,
        {{ is_suppressed('case_count') }} as is_primary
    from grouped
),

-- one kind of group over a floor of 0: two passes reach the fixed point (the macro says why)
{{ complementary_suppression('cells', ['group_key'], passes=2) }},

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
    group by month_start, region, channel_code, is_synthetic
    having count(*) filter (where is_withheld) > 0
),

withheld_groups as (
    -- a group withheld as a whole: one row, whatever its outcomes
    select
        month_start,
        region,
        channel_code,
        'all' as assessment,
        -- (named as the remainder: a chart by name shows one 'withheld' series)
        'Withheld (small counts)' as assessment_name,
        'all' as referred_to,
        'Withheld (small counts)' as referred_to_name,
        null::bigint as cases,
        true as is_suppressed,
        is_synthetic,
        false as is_remainder
    from case_groups
    where is_withheld
),

unioned as (
    select * from by_outcome
    union all
    select * from remainders
    union all
    select * from withheld_groups
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
