-- Handling times per week of receipt. A week with an intake below the threshold publishes no
-- statistic at all; a statistic whose own base is below the threshold is withheld as well (a
-- median of three cases describes three cases), and a share is withheld where the cases it
-- counts, or the cases it leaves out, are below the threshold (published_share), and the 72 h
-- share where the cases referred between 24 and 72 hours are (published_outer_share).
-- The weeks add up to the hotline total of rpt_headline_figures: a withheld week takes the
-- next smallest with it (complementary suppression, macros/publication.sql). Every week from the
-- first to the last has a row: a week without cases is withheld like a small one (rule 5).
with

weekly_counts as (
    select * from {{ ref('fct_case_handling_weekly') }}
),

grid_weeks as (
    select generate_series(min(week_start), max(week_start), interval '1 week')::date
        as week_start
    from weekly_counts
),

dataset as (
    select bool_or(is_synthetic) as is_synthetic from weekly_counts
),

grid as (
    {{ declared_grid(['grid_weeks']) }}
),

weekly as (
    select
        grid.week_start,
        coalesce(weekly_counts.intake_count, 0) as intake_count,
        coalesce(weekly_counts.triaged_count, 0) as triaged_count,
        weekly_counts.median_hours_to_triage,
        weekly_counts.p90_hours_to_triage,
        coalesce(weekly_counts.referred_count, 0) as referred_count,
        weekly_counts.median_hours_to_referral,
        weekly_counts.p90_hours_to_referral,
        coalesce(weekly_counts.actionable_count, 0) as actionable_count,
        coalesce(weekly_counts.referred_within_24h_count, 0) as referred_within_24h_count,
        coalesce(weekly_counts.referred_within_72h_count, 0) as referred_within_72h_count,
        coalesce(weekly_counts.is_synthetic, dataset.is_synthetic) as is_synthetic
    from grid
    cross join dataset
    left join weekly_counts on grid.week_start = weekly_counts.week_start
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
