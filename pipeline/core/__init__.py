"""The pure core: decode, normalize, consent, warrants, keys, policy, engine.

Nothing in this package imports faust or aiokafka; it takes bytes and plain
values and returns plain values, so it can be tested and benchmarked alone.
"""
