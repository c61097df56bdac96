"""Folium views and static map rendering for segmap datasets."""
