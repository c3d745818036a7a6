"""Contracts: the one place data shapes and the interfaces between layers are defined.

Serving tables, the orders DB, the lake's raw zone and identity's stage tables; the Segment and
Zendesk event contracts; the event log's records; the compute swap point's protocols; the batch
cutoff and how time is represented. Everything above imports from here; this package imports
nothing of c360's but the configuration and the errors.
"""
