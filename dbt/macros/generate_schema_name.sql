{#- Layers are schemas with fixed names (raw, staging, marts, reporting) whose grants are set
    in infra/sql: use the configured schema as it is, not prefixed with the target schema. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name | trim if custom_schema_name else target.schema }}
{%- endmacro %}
