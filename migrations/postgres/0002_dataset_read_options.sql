-- How each dataset's file was read (time zone, column mapping, datetime format), as JSON text, so the
-- file can be re-read exactly as it was imported (bars_match_source, re-imports, lineage).
ALTER TABLE datasets ADD COLUMN read_options TEXT NOT NULL DEFAULT '{}';
