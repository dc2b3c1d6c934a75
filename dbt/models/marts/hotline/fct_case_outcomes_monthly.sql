-- What became of the cases received each month: assessment x referral target, by region and
-- channel. 'pending' stands for a case not yet assessed, or not yet decided on referral.
with

cases as (
    select * from {{ ref('fct_hotline_cases') }}
),

countries as (
    select * from {{ ref('dim_countries') }}
),

outcomes as (
    select
        cases.received_month_start as month_start,
        countries.region,
        cases.channel_code,
        coalesce(cases.assessment_code, 'pending') as assessment_code,
        coalesce(cases.referral_target_code, 'pending') as referral_target_code,
        cases.is_synthetic,
        count(*) as case_count
    from cases
    inner join countries on cases.country_code = countries.country_code
    group by 1, 2, 3, 4, 5, 6
),

final as (
    select
        month_start || '|' || region || '|' || channel_code || '|' || assessment_code || '|'
        || referral_target_code || '|' || is_synthetic as case_outcome_id,
        *
    from outcomes
)

select * from final
