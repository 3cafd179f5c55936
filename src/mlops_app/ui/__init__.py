"""Shared Streamlit pieces. The only part of mlops_app that imports streamlit."""
