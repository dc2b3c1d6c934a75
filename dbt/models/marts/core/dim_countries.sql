with

countries as (
    select * from {{ ref('ref_countries') }}
),

final as (
    select
        country_code,
        iso3,
        country_name,
        region,
        subregion,
        in_icmec_review as is_in_icmec_review,
        country_code <> 'ZZ' as is_known
    from countries
)

select * from final
