"""Live signals: feeds (Bybit through ccxt, or a replay of stored candles), the run's model applied to the
latest candles exactly as in training, and the append-only signal log. See feed.py, signals.py, log.py."""
