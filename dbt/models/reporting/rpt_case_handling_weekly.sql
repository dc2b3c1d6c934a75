-- Handling times per week of receipt. A week with an intake below the threshold publishes no
-- statistic at all; a statistic whose own base is below the threshold is withheld as well (a
-- median of three cases describes three cases).
with

weekly as (
    select * from {{ ref('fct_case_handling_weekly') }}
),

final as (
    select
        week_start,
        {{ published_count('intake_count') }} as intake,
        case when triaged_count >= {{ min_published_count() }} and not {{ is_suppressed('intake_count') }}
            then median_hours_to_triage end as median_hours_to_triage,
        case when triaged_count >= {{ min_published_count() }} and not {{ is_suppressed('intake_count') }}
            then p90_hours_to_triage end as p90_hours_to_triage,
        case when referred_count >= {{ min_published_count() }} and not {{ is_suppressed('intake_count') }}
            then median_hours_to_referral end as median_hours_to_referral,
        case when referred_count >= {{ min_published_count() }} and not {{ is_suppressed('intake_count') }}
            then p90_hours_to_referral end as p90_hours_to_referral,
        case when actionable_count >= {{ min_published_count() }} and not {{ is_suppressed('intake_count') }}
            then share_referred_within_24h_pct end as share_referred_within_24h_pct,
        case when actionable_count >= {{ min_published_count() }} and not {{ is_suppressed('intake_count') }}
            then share_referred_within_72h_pct end as share_referred_within_72h_pct,
        {{ is_suppressed('intake_count') }} as is_suppressed,
        is_synthetic
    from weekly
)

select * from final
