-- Per country and edition of ICMEC's review: whether the country had dedicated online-grooming
-- legislation. Only the countries in the review's scope (ref_countries.in_icmec_review).
with

reviews as (
    select * from {{ ref('stg_raw__legislation_review') }}
),

countries as (
    select * from {{ ref('dim_countries') }}
),

editions as (
    select * from {{ ref('ref_legislation_editions') }}
),

final as (
    select
        reviews.country_code || '|' || reviews.edition as country_edition_id,
        reviews.country_code,
        countries.iso3,
        countries.country_name,
        countries.region,
        countries.subregion,
        reviews.edition,
        editions.edition_label,
        editions.published_year,
        reviews.has_dedicated_law,
        reviews.publisher,
        reviews.source_name,
        reviews.is_synthetic,
        reviews.batch_id
    from reviews
    inner join countries on reviews.country_code = countries.country_code
    inner join editions on reviews.edition = editions.edition
    where countries.is_in_icmec_review
)

select * from final
