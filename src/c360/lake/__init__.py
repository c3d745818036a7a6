"""The data lake: Hive-partitioned Parquet, ``raw/<source>/<table>/dt=YYYY-MM-DD/``.

Any fsspec filesystem works (a local folder by default). A partition is committed atomically:
it is written aside under ``_staging/``, its manifest is written last, and only then is it
renamed into place, so a reader sees the previous partition or the new one, never half of one.
"""

from c360.lake.store import Lake, PartitionManifest, SchemaDriftError

__all__ = ["Lake", "PartitionManifest", "SchemaDriftError"]
