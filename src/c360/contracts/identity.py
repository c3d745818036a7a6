"""The identity step's tables: what each stage reads and writes (Arrow schemas).

The step runs in stages, each a function over Arrow tables, so every stage can be tested
alone and any engine can feed it; each also has a form over the tables of an in-process SQL
session (``*_in(local, …)``, tables named as below), which is what the pipeline runs, so
that the rows stay in the session (spilling past ``compute.memory_limit``) rather than on the
driver:

1. ``records``   — one row per source record that carries identity attributes, normalised
   (``RECORDS``), and every identifier value each record carries (``IDENTIFIERS``).
2. ``graph``     — deterministic links from shared identifiers, after the guards drop blocked
   and high-cardinality values (``LINKS``, kind ``deterministic``).
3. ``probabilistic`` — Splink (Fellegi-Sunter) links between records with no shared key
   (``LINKS``, kind ``probabilistic``, with match weight and per-field contributions).
4. ``clustering`` — connected components over the links; oversized or self-contradicting
   clusters are split along their weakest links and flagged (``CLUSTERS``, ``FLAGS``).
5. ``stable_ids`` — person ids that survive daily runs: merges keep the oldest id and redirect
   the others, splits issue new ids deterministically (``ASSIGNMENT``, ``PERSON_HISTORY``,
   ``REDIRECTS``); ``identity_map`` follows from ``IDENTIFIERS`` + ``ASSIGNMENT``.

A record's key is ``<source>/<record_type>:<record_id>`` — the simulator's ground truth names
records the same way (``records.parquet``: source, record_type, record_id), which is what
``c360 identity eval`` scores against.
"""

from __future__ import annotations

import pyarrow as pa

from c360.errors import DataError

UTC_TIME = pa.timestamp("us", tz="UTC")

# Record types and their keys: mysql/customer:<customer_id>, mysql/order:<order_id>,
# zendesk/user:<user_id>, mailchimp/member:<md5 id>, clickstream/cookie:<anonymous_id>.
RECORDS = pa.schema(
    [
        ("record_key", pa.string()),
        ("source", pa.string()),
        ("record_type", pa.string()),
        ("record_id", pa.string()),
        # The account the record itself names (a customer row, an order's customer_id, a
        # Zendesk user's external_id, the customer a cookie identified as); null if none.
        ("customer_id", pa.int64()),
        # Lookup form (lower/trim): what identity_map and the feature joins use.
        ("email", pa.string()),
        # Matching form: Gmail dots and +tags folded; blocked values are null here.
        ("email_key", pa.string()),
        ("phone", pa.string()),  # E.164 (phonenumbers), null when unparseable
        ("first_name", pa.string()),  # Unicode-folded, lower case, no punctuation
        ("last_name", pa.string()),
        ("address", pa.string()),  # street line, folded, whitespace collapsed
        ("postcode", pa.string()),
        ("city", pa.string()),  # folded like the address
        ("birth_date", pa.date32()),
        ("birth_md", pa.string()),  # "MM-DD": Mailchimp's BIRTHDAY has no year
        ("first_seen", UTC_TIME),  # earliest time the record was seen (oldest-id rule)
    ]
)

# Every identifier value a record carries, in lookup form (identity_map's id_value).
# id_type: customer_id, email, anonymous_id, zendesk_user_id, mailchimp_id, phone.
IDENTIFIERS = pa.schema(
    [("record_key", pa.string()), ("id_type", pa.string()), ("id_value", pa.string())]
)

# An undirected link, left_key < right_key. evidence names the shared identifier type
# (deterministic) or "splink"; match_weight / match_probability / contributions (JSON
# {field: weight}) are null for deterministic links.
LINKS = pa.schema(
    [
        ("left_key", pa.string()),
        ("right_key", pa.string()),
        ("kind", pa.string()),  # deterministic | probabilistic
        ("evidence", pa.string()),
        ("match_weight", pa.float64()),
        ("match_probability", pa.float64()),
        ("contributions", pa.string()),
    ]
)

# cluster_key: the smallest record_key of the cluster (deterministic, engine-independent).
CLUSTERS = pa.schema([("record_key", pa.string()), ("cluster_key", pa.string())])

# Clusters the guards split or would not trust, for review.
FLAGS = pa.schema([("cluster_key", pa.string()), ("reason", pa.string()), ("size", pa.int64())])

ASSIGNMENT = pa.schema([("record_key", pa.string()), ("person_id", pa.string())])

PERSON_HISTORY = pa.schema(
    [
        ("dt", pa.date32()),
        ("event", pa.string()),  # merge | split
        ("person_id", pa.string()),  # the surviving (merge) or new (split) id
        ("other_person_id", pa.string()),  # the absorbed (merge) or original (split) id
        ("reason", pa.string()),
    ]
)

REDIRECTS = pa.schema(
    [("retired_id", pa.string()), ("person_id", pa.string()), ("since", pa.date32())]
)

# What identity_map holds: one person per identifier value (lookup form).
IDENTITY_MAP = pa.schema(
    [("id_type", pa.string()), ("id_value", pa.string()), ("person_id", pa.string())]
)


# Where the step writes its tables in the lake: ``features/identity/<table>/dt=D``.
ZONE = "features"
SOURCE = "identity"

# Evidence values the graph's guards refused (stage 2).
IGNORED = pa.schema(
    [
        ("id_type", pa.string()),  # customer_id | email | record (a record naming many accounts)
        ("id_value", pa.string()),
        ("reason", pa.string()),  # blocked value | too many customer accounts
        ("customers", pa.int64()),  # distinct customer accounts seen with the value
    ]
)

# Probabilistic links the guards refused, with the (final) clusters they would have joined.
REFUSED = pa.schema(
    [
        ("left_key", pa.string()),
        ("right_key", pa.string()),
        ("match_weight", pa.float64()),
        ("reason", pa.string()),
        ("left_cluster", pa.string()),
        ("right_cluster", pa.string()),
    ]
)

# Why clustering flagged a cluster (stage 4's flags, as stage 5 reads them).
CLUSTER_REASONS = pa.schema([("cluster_key", pa.string()), ("reason", pa.string())])

# The registry of live ids: when each was issued and the earliest first_seen of its records
# (the "oldest" rule), kept from day to day.
PERSON_IDS = pa.schema(
    [("person_id", pa.string()), ("created_on", pa.date32()), ("first_seen", UTC_TIME)]
)

# Identifier values left out of identity_map because their records lie in several persons.
AMBIGUOUS = pa.schema(
    [("id_type", pa.string()), ("id_value", pa.string()), ("persons", pa.int64())]
)


def require(table: pa.Table, schema: pa.Schema, name: str, columns: tuple[str, ...]) -> pa.Table:
    """``columns`` of a stage's input ``table``, cast to ``schema``; a DataError names the gap."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DataError(f"identity {name} table lacks column(s) {missing}; expected {schema.names}")
    try:
        return table.select(list(columns)).cast(pa.schema([schema.field(c) for c in columns]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"identity {name} table does not match its schema: {exc}") from exc
