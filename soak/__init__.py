"""Reliability and security evidence: soak, crash, poison, broker-loss and canary runs.

Each run is a function that takes settings for a broker and sizes, drives real
``python -m pipeline worker`` processes and returns a report of figures. ``make soak`` and
``make canary`` run them at full size (``python -m soak ...``); the integration tests in
``tests/integration/test_reliability*.py`` and ``test_security*.py`` run small versions.
"""
