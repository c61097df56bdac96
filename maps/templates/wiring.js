{#- The page's one call into maps/web/segmap.js. Only JSON made by json_for_script and folium's own variable
    names can be written here: the SCRIPTS environment in maps/templating.py refuses anything else. -#}
{% macro script(this, kwargs) %}
{% if this.layer_name %}
segmapPage.areas({{ this.map_name }}, {{ this.layer_name }}, {{ this.config }});
{% else %}
segmapPage.tiles({{ this.map_name }}, {{ this.config }});
{% endif %}
{% endmacro %}
