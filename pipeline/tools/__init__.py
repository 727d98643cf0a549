"""Operator tools around the worker: ``demo``, ``replay`` and ``generate``.

Each is a job a person runs from the command line against a broker: the whole demo on
the embedded broker, re-publishing dead letters once their cause is fixed, and
synthetic workloads. May import ``core``, ``shell``, ``synth``, ``settings`` and
``errors``; nothing in ``core`` or ``shell`` imports this package.
"""
