-- Open cases by age bucket, weekly and at the data's as-of date; small counts withheld.
with

backlog as (
    select * from {{ ref('fct_case_backlog') }}
),

final as (
    select
        as_of_date,
        is_latest,
        age_bucket,
        bucket_order,
        {{ published_count('open_case_count') }} as open_cases,
        {{ is_suppressed('open_case_count') }} as is_suppressed,
        is_synthetic
    from backlog
)

select * from final
