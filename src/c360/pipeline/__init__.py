"""The pipeline layer: the daily batch, the identity step, the stream worker and the demo.

Everything here composes the layers below it: domain logic (identity, batch, speed) run on the
adapters (engines, stores, logs, lake, sources) the configuration chooses.
"""
