{#- dbt-postgres reads column types from information_schema.columns.data_type, which says
    'ARRAY' for an array column: unit-test fixtures then cast to "ARRAY" (a syntax error) and
    on_schema_change would add a column of type "ARRAY". Same query, but an array column gets
    its element type from udt_name ('_text' -> 'text[]'). Root-project macros win dispatch. -#}
{% macro postgres__get_columns_in_relation(relation) -%}
  {% call statement('get_columns_in_relation', fetch_result=True) %}
      select
          column_name,
          case when data_type = 'ARRAY' then substr(udt_name, 2) || '[]' else data_type end
              as data_type,
          character_maximum_length,
          numeric_precision,
          numeric_scale

      from {{ relation.information_schema('columns') }}
      where table_name = '{{ relation.identifier }}'
        {% if relation.schema %}
        and table_schema = '{{ relation.schema }}'
        {% endif %}
      order by ordinal_position

  {% endcall %}
  {% set table = load_result('get_columns_in_relation').table %}
  {{ return(sql_convert_columns_in_relation(table)) }}
{% endmacro %}
