-- Online enticement 2019 -> 2020 in our data, by channel and by grooming stage. Both breakdowns
-- add up to the same total, so when exactly one cell of a breakdown and year is withheld, the
-- next smallest is withheld too.
with

changes as (
    select * from {{ ref('fct_enticement_change_2019_2020') }}
),

flagged as (
    select
        changes.*,
        {{ is_suppressed('changes.cases_2019') }} as is_2019_primary,
        {{ is_suppressed('changes.cases_2020') }} as is_2020_primary
    from changes
),

withheld as (
    select
        flagged.*,
        flagged.is_2019_primary
        or {{ is_secondarily_suppressed('flagged.cases_2019', 'flagged.is_2019_primary',
            'flagged.breakdown, flagged.is_synthetic', 'flagged.code') }} as is_2019_withheld,
        flagged.is_2020_primary
        or {{ is_secondarily_suppressed('flagged.cases_2020', 'flagged.is_2020_primary',
            'flagged.breakdown, flagged.is_synthetic', 'flagged.code') }} as is_2020_withheld
    from flagged
),

final as (
    select
        breakdown,
        code,
        name,
        sort_order,
        case when not is_2019_withheld then cases_2019 end as cases_2019,
        case when not is_2020_withheld then cases_2020 end as cases_2020,
        {{ published_pct_change('cases_2020', 'cases_2019') }} as pct_change,
        is_2019_withheld or is_2020_withheld as is_suppressed,
        is_synthetic
    from withheld
)

select * from final
