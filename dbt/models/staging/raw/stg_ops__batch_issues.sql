with

source as (
    select * from {{ source('ops', 'batch_issues') }}
),

renamed as (
    select
        issue_id,
        batch_id,
        rule as rule_name,
        column_name,
        row_count,
        example_rows as example_row_numbers,
        severity,
        message
    from source
)

select * from renamed
