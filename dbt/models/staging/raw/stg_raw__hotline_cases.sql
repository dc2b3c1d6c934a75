-- One row per case: its version in the latest batch that loaded rows (ordered by when the batch
-- finished). An extract carries the whole lifecycle known at the time, so the latest version
-- replaces the earlier ones rather than adding to them. fct_hotline_cases applies the same
-- rule (macro latest_batch_wins) to the changed cases only in incremental runs.
with

versions as (
    select * from {{ ref('stg_raw__hotline_case_versions') }}
),

batches as (
    select * from {{ ref('stg_ops__batches') }}
),

latest as (
    {{ latest_batch_wins('versions', 'batches', 'versions.case_key') }}
),

final as (
    select
        case_key,
        source_organisation,
        is_synthetic,
        received_at,
        reporter_type_code,
        channel_code,
        exploitation_type_codes,
        grooming_stage_code,
        age_band_code,
        country_code,
        triaged_at,
        assessment_code,
        referral_target_code,
        referred_at,
        closed_at,
        batch_id,
        batch_finished_at
    from latest
)

select * from final
