-- The legislation review may be illustrative per country, but its totals must be ICMEC's own:
-- for every edition that is loaded, the overall counts equal the published ones in
-- ref_legislation_editions (63 of 196 for the 1st edition, 77 of 196 for the 2nd).
with

coverage as (
    select * from {{ ref('fct_legislation_coverage') }}
),

editions as (
    select * from {{ ref('ref_legislation_editions') }}
),

final as (
    select
        coverage.edition,
        coverage.countries_reviewed,
        editions.published_countries_reviewed,
        coverage.countries_with_law,
        editions.published_countries_with_law
    from coverage
    inner join editions on coverage.edition = editions.edition
    where coverage.is_overall
        and (coverage.countries_reviewed is distinct from editions.published_countries_reviewed
            or coverage.countries_with_law is distinct from editions.published_countries_with_law)
)

select * from final
