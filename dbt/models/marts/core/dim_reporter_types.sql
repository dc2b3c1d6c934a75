with

reporter_types as (
    select * from {{ ref('ref_reporter_types') }}
),

final as (
    select
        reporter_type_code,
        reporter_type_name,
        description as reporter_type_description
    from reporter_types
)

select * from final
