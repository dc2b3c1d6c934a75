with

channels as (
    select * from {{ ref('ref_channels') }}
),

final as (
    select
        channel_code,
        channel_name,
        channel_order,
        description as channel_description
    from channels
)

select * from final
