"""The imperative shell: Kafka topics, the embedded broker, tables and the worker.

Everything that talks to Kafka lives here; the decisions live in :mod:`pipeline.core`.
"""
