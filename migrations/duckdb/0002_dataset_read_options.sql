-- How each dataset's file was read (time zone, column mapping, datetime format), as JSON text, so the
-- file can be re-read exactly as it was imported (bars_match_source, re-imports, lineage).
-- DuckDB cannot add a column with a NOT NULL constraint; the default fills existing rows.
ALTER TABLE datasets ADD COLUMN read_options TEXT DEFAULT '{}';
