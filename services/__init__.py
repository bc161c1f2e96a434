"""Lucid's service layer: everything a page or the CLI needs, with no Streamlit anywhere below here."""
