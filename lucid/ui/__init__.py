"""Plot builders (plotly, no Streamlit), the HTML report builder and small shared Streamlit widgets."""
