-- Cases per month x channel x grooming stage x exploitation type x reporter type x country,
-- from our hotline and partner hotlines (source_kind), with the change on the month before and
-- on the same month a year before.
-- COUNTING: a hotline case with several forms of exploitation counts once under EACH form, so
-- the rows of a month add up to case-form pairs, not to cases (use fct_cases_monthly or
-- fct_hotline_cases to count cases). Partner counts are as delivered.
-- Changes are set-based: the same table joined to itself on the month before / a year before.
-- A combination absent in a month had no cases then, so the earlier count is 0 - provided the
-- source covered that month (any rows of that source_kind that month); otherwise it is NULL.
with

hotline_case_types as (
    select * from {{ ref('fct_case_exploitation_types') }}
),

hotline_cases as (
    select * from {{ ref('fct_hotline_cases') }}
),

partner_aggregates as (
    select * from {{ ref('stg_raw__partner_aggregates') }}
),

months as (
    select * from {{ ref('dim_months') }}
),

hotline_monthly as (
    select
        hotline_cases.received_month_start as month_start,
        'hotline' as source_kind,
        hotline_cases.is_synthetic,
        hotline_cases.country_code,
        hotline_cases.channel_code,
        hotline_cases.grooming_stage_code,
        hotline_case_types.exploitation_type_code,
        hotline_cases.reporter_type_code,
        count(*) as case_count
    from hotline_case_types
    inner join hotline_cases on hotline_case_types.case_key = hotline_cases.case_key
    group by 1, 2, 3, 4, 5, 6, 7, 8
),

partner_monthly as (
    select
        month_start,
        'partner' as source_kind,
        is_synthetic,
        country_code,
        channel_code,
        grooming_stage_code,
        exploitation_type_code,
        reporter_type_code,
        sum(case_count)::bigint as case_count
    from partner_aggregates
    group by 1, 2, 3, 4, 5, 6, 7, 8
),

counts as (
    select * from hotline_monthly
    union all
    select * from partner_monthly
),

coverage as (
    -- the months each source covered: a hotline runs continuously from its first to its last
    -- month; a partner covers the months it delivered
    select
        hotline.source_kind,
        hotline.is_synthetic,
        months.month_start
    from (
        select source_kind, is_synthetic, min(month_start) as first_month, max(month_start) as last_month
        from counts
        where source_kind = 'hotline'
        group by 1, 2
    ) as hotline
    inner join months
        on months.month_start between hotline.first_month and hotline.last_month
    union
    select distinct source_kind, is_synthetic, month_start
    from counts
    where source_kind = 'partner'
),

with_months as (
    select
        counts.*,
        months.year,
        months.previous_month_start,
        months.same_month_last_year_start
    from counts
    inner join months on counts.month_start = months.month_start
),

compared as (
    select
        current_month.*,
        case when previous_covered.month_start is not null
            then coalesce(previous_month.case_count, 0) end as previous_month_case_count,
        case when last_year_covered.month_start is not null
            then coalesce(last_year.case_count, 0) end as same_month_last_year_case_count
    from with_months as current_month
    left join counts as previous_month
        on previous_month.month_start = current_month.previous_month_start
        and previous_month.source_kind = current_month.source_kind
        and previous_month.is_synthetic = current_month.is_synthetic
        and previous_month.country_code = current_month.country_code
        and previous_month.channel_code = current_month.channel_code
        and previous_month.grooming_stage_code = current_month.grooming_stage_code
        and previous_month.exploitation_type_code = current_month.exploitation_type_code
        and previous_month.reporter_type_code = current_month.reporter_type_code
    left join counts as last_year
        on last_year.month_start = current_month.same_month_last_year_start
        and last_year.source_kind = current_month.source_kind
        and last_year.is_synthetic = current_month.is_synthetic
        and last_year.country_code = current_month.country_code
        and last_year.channel_code = current_month.channel_code
        and last_year.grooming_stage_code = current_month.grooming_stage_code
        and last_year.exploitation_type_code = current_month.exploitation_type_code
        and last_year.reporter_type_code = current_month.reporter_type_code
    left join coverage as previous_covered
        on previous_covered.month_start = current_month.previous_month_start
        and previous_covered.source_kind = current_month.source_kind
        and previous_covered.is_synthetic = current_month.is_synthetic
    left join coverage as last_year_covered
        on last_year_covered.month_start = current_month.same_month_last_year_start
        and last_year_covered.source_kind = current_month.source_kind
        and last_year_covered.is_synthetic = current_month.is_synthetic
),

final as (
    select
        month_start,
        year,
        source_kind,
        is_synthetic,
        country_code,
        channel_code,
        grooming_stage_code,
        exploitation_type_code,
        reporter_type_code,
        case_count,
        previous_month_case_count,
        case_count - previous_month_case_count as month_over_month_change_count,
        case when previous_month_case_count > 0
            then round(100.0 * (case_count - previous_month_case_count)
                / previous_month_case_count, 1) end as month_over_month_change_pct,
        same_month_last_year_case_count,
        case_count - same_month_last_year_case_count as year_over_year_change_count,
        case when same_month_last_year_case_count > 0
            then round(100.0 * (case_count - same_month_last_year_case_count)
                / same_month_last_year_case_count, 1) end as year_over_year_change_pct
    from compared
)

select * from final
