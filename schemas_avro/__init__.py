"""The Avro schemas of every record on the ledger's topics: the wire format's source of truth.

One file per record, named by its full name (`velocity.events.MissionRequested.avsc`),
so that Avro tools resolving named types by file name (fastavro's `load_schema`, the
Java SchemaParser over a directory) read them as they are.
"""

from pathlib import Path

SCHEMA_DIR = Path(__file__).parent
