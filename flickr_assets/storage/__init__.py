"""Where and how data is stored: layout, safe keyword names, atomic writes, Parquet schemas, the records and
manifest stores, and the data-quality rules of what they hold."""
