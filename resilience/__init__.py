"""Resilience: fault injection and hostile input (``python -m resilience``, ``make resilience``)."""
