"""The language model backends (base.py: what every one of them does) and the choice among them
(select.py)."""
