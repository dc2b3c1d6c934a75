-- How fast the hotline handled each week's intake (week of receipt, ISO weeks from Monday,
-- UTC). Hours are from receipt. Percentiles are continuous (percentile_cont), over the cases
-- that reached the step; the within-24h/72h shares are over the cases assessed actionable
-- (the ones that call for a referral), so a case still waiting counts as not referred in time.
with

cases as (
    select * from {{ ref('fct_hotline_cases') }}
),

weekly as (
    select
        received_week_start as week_start,
        count(*) as intake_count,
        count(*) filter (where is_triaged) as triaged_count,
        percentile_cont(0.5) within group (order by hours_to_triage)
            as median_hours_to_triage,
        percentile_cont(0.9) within group (order by hours_to_triage)
            as p90_hours_to_triage,
        count(*) filter (where is_referred) as referred_count,
        percentile_cont(0.5) within group (order by hours_to_referral)
            filter (where is_referred) as median_hours_to_referral,
        percentile_cont(0.9) within group (order by hours_to_referral)
            filter (where is_referred) as p90_hours_to_referral,
        count(*) filter (where assessment_code = 'actionable') as actionable_count,
        count(*) filter (where assessment_code = 'actionable' and is_referred_within_24h)
            as referred_within_24h_count,
        count(*) filter (where assessment_code = 'actionable' and is_referred_within_72h)
            as referred_within_72h_count,
        count(*) filter (where is_open) as still_open_count,
        bool_or(is_synthetic) as is_synthetic
    from cases
    group by received_week_start
),

final as (
    select
        week_start,
        (week_start + 6) as week_end,
        intake_count,
        triaged_count,
        round(median_hours_to_triage::numeric, 1) as median_hours_to_triage,
        round(p90_hours_to_triage::numeric, 1) as p90_hours_to_triage,
        referred_count,
        round(median_hours_to_referral::numeric, 1) as median_hours_to_referral,
        round(p90_hours_to_referral::numeric, 1) as p90_hours_to_referral,
        actionable_count,
        referred_within_24h_count,
        referred_within_72h_count,
        round(100.0 * referred_within_24h_count / nullif(actionable_count, 0), 1)
            as share_referred_within_24h_pct,
        round(100.0 * referred_within_72h_count / nullif(actionable_count, 0), 1)
            as share_referred_within_72h_pct,
        still_open_count,
        is_synthetic
    from weekly
)

select * from final
