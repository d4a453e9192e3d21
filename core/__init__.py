"""CNN Trading Lab core: data, features, models, training, backtesting. Free of Streamlit."""
__version__ = "0.1.0"
