{#- Whether an incremental model's table, as built by an earlier version of the model, already
    has `column`. A column the model has since added and reads back from {{ this }} (a watermark)
    is read only where it exists; until then the model falls back to the rule the table was
    built with, and the run adds the column (on_schema_change: append_new_columns). Unit tests
    override this macro. -#}
{% macro incremental_has_column(column) -%}
    {%- if not is_incremental() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set names = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
    {{ return(column in names) }}
{%- endmacro %}
