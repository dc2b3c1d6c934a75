with

stages as (
    select * from {{ ref('ref_grooming_stages') }}
),

final as (
    select
        stage_code as grooming_stage_code,
        stage_name as grooming_stage_name,
        stage_order,
        description as grooming_stage_description,
        stage_code <> 'unknown' as is_known
    from stages
)

select * from final
