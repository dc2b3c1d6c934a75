-- ICMEC's global review covers 196 countries; the reference list must flag exactly those
-- (the legislation shares are taken over them). Fails with the count it found.
select count(*) as countries_in_review
from {{ ref('ref_countries') }}
where in_icmec_review
having count(*) <> 196
