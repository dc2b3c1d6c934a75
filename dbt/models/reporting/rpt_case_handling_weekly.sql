-- Handling times per week of receipt. A week with an intake below the threshold publishes no
-- statistic at all; a statistic whose own base is below the threshold is withheld as well (a
-- median of three cases describes three cases), and a share is withheld where the cases it
-- counts, or the cases it leaves out, are below the threshold (published_share), and the 72 h
-- share where the cases referred between 24 and 72 hours are (published_outer_share).
-- The weeks add up to the hotline total of rpt_headline_figures: a withheld week takes the
-- next smallest with it (complementary suppression, macros/publication.sql).
with

weekly as (
    select * from {{ ref('fct_case_handling_weekly') }}
),

cells as (
    select
        weekly.*,
        week_start::text as cell_key,
        intake_count as cell_count,
        1 as cell_floor,
        {{ is_suppressed('intake_count') }} as is_primary,
        'hotline total' as total_group
    from weekly
),

{{ complementary_suppression('cells', ['total_group']) }},

withheld as (
    select * from cells__withheld
),

final as (
    select
        week_start,
        case when not is_withheld then intake_count end as intake,
        case when triaged_count >= {{ min_published_count() }} and not is_withheld
            then median_hours_to_triage end as median_hours_to_triage,
        case when triaged_count >= {{ min_published_count() }} and not is_withheld
            then p90_hours_to_triage end as p90_hours_to_triage,
        case when referred_count >= {{ min_published_count() }} and not is_withheld
            then median_hours_to_referral end as median_hours_to_referral,
        case when referred_count >= {{ min_published_count() }} and not is_withheld
            then p90_hours_to_referral end as p90_hours_to_referral,
        case when not is_withheld
            then {{ published_share('referred_within_24h_count', 'actionable_count') }}
        end as share_referred_within_24h_pct,
        case when not is_withheld
            then {{ published_outer_share('referred_within_72h_count', 'referred_within_24h_count',
                                          'actionable_count') }}
        end as share_referred_within_72h_pct,
        is_withheld as is_suppressed,
        is_synthetic
    from withheld
)

select * from final
