-- An import's commit point: the dataset row describing the new bars is written with publish_pending true
-- while those bars still wait in the store's staging table; once the store has made them the table, the
-- flag is cleared. A row left true (a crash in between) tells the next import to finish the publication
-- first (trading_assets/ingest.py), so store and catalog describe the same bars.
ALTER TABLE datasets ADD COLUMN publish_pending BOOLEAN NOT NULL DEFAULT false;
