with

age_bands as (
    select * from {{ ref('ref_age_bands') }}
),

final as (
    select
        age_band_code,
        age_band_name,
        band_order,
        min_age,
        max_age,
        age_band_code <> 'unknown' as is_known
    from age_bands
)

select * from final
