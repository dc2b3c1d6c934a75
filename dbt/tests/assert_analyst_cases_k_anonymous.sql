-- Every combination of what marts.fct_hotline_cases_coarse says is shared by at least
-- var('min_analyst_group') cases: rows returned here are combinations shared by fewer.
select
    detail, source_organisation, is_synthetic, received_period_start, region, channel_code,
    age_band_code, grooming_stage_code, assessment_code,
    count(*) as cases
from {{ ref('fct_hotline_cases_coarse') }}
group by 1, 2, 3, 4, 5, 6, 7, 8, 9
having count(*) < {{ var('min_analyst_group') }}
