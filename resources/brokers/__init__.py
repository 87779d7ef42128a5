"""Brokers: the interface the executor trades through (base), a ccxt broker for any ccxt venue,
and a paper broker."""
