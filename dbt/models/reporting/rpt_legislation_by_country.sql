-- Per country and edition: dedicated online-grooming legislation or not. Public legal
-- information: nothing to suppress.
with

by_country as (
    select * from {{ ref('fct_legislation_by_country') }}
),

final as (
    select
        country_code,
        iso3,
        country_name,
        region,
        edition,
        edition_label,
        has_dedicated_law,
        has_dedicated_law::integer as has_law,
        is_synthetic,
        source_name
    from by_country
)

select * from final
