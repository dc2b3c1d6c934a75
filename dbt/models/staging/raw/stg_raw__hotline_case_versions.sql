-- Every version of every case as landed: one row per case per extract, renamed to house
-- conventions. stg_raw__hotline_cases picks the current version of each case.
with

source as (
    select * from {{ source('raw', 'hotline_cases') }}
),

renamed as (
    select
        batch_id,
        source_row_number,
        case_key,
        source_organisation,
        is_synthetic,
        received_at,
        reporter_type as reporter_type_code,
        channel as channel_code,
        exploitation_types as exploitation_type_codes,
        grooming_stage as grooming_stage_code,
        victim_age_band as age_band_code,
        country_code,
        triaged_at,
        assessment as assessment_code,
        referred_to as referral_target_code,
        referred_at,
        closed_at
    from source
)

select * from renamed
