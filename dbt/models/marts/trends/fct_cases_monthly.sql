-- Cases per month from both sources, each case counted ONCE (no exploitation-type breakdown):
-- our hotline's cases, and partner hotlines' aggregates summed over exploitation types as
-- delivered. That is a count of cases only if a partner counts each case under one type; one
-- that counts a case under several types is counted once per type here (see the yml).
-- Grain: month x country x channel x grooming stage x reporter type x source_kind x is_synthetic.
with

hotline_cases as (
    select * from {{ ref('fct_hotline_cases') }}
),

partner_aggregates as (
    select * from {{ ref('stg_raw__partner_aggregates') }}
),

hotline_monthly as (
    select
        received_month_start as month_start,
        country_code,
        channel_code,
        grooming_stage_code,
        reporter_type_code,
        'hotline' as source_kind,
        is_synthetic,
        count(*) as case_count
    from hotline_cases
    group by 1, 2, 3, 4, 5, 6, 7
),

partner_monthly as (
    select
        month_start,
        country_code,
        channel_code,
        grooming_stage_code,
        reporter_type_code,
        'partner' as source_kind,
        is_synthetic,
        sum(case_count)::bigint as case_count
    from partner_aggregates
    group by 1, 2, 3, 4, 5, 6, 7
),

unioned as (
    select * from hotline_monthly
    union all
    select * from partner_monthly
)

select * from unioned
