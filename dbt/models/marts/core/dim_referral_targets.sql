with

referral_targets as (
    select * from {{ ref('ref_referral_targets') }}
),

final as (
    select
        referral_target_code,
        referral_target_name,
        description as referral_target_description,
        referral_target_code <> 'none' as is_referral
    from referral_targets
)

select * from final
