"""Where data lives: layout, safe keyword names, atomic writes and Parquet schemas."""
