with

assessments as (
    select * from {{ ref('ref_assessments') }}
),

final as (
    select
        assessment_code,
        assessment_name,
        description as assessment_description
    from assessments
)

select * from final
