-- pgbench script: the database's own ceiling for bench/ingest --pg: 100 event
-- rows like Tandem's (same table shape and indexes) per transaction.
\set p random(1, 10000)
BEGIN;
INSERT INTO bench_events (event_id, type, profile_id, ts_ms, received_ms, doc)
SELECT NULL, 'product_view', :p + g, 1795900000000 + g, 1795900000000 + g,
       '{"type":"product_view","ecid":"bench-' || (:p + g) || '","ts":"2026-11-29T05:00:00.000Z","received":"2026-11-29T05:00:00.000Z","source":"native","items":[{"id":"SKU-' || g || '","name":"Item ' || g || '","price":19.9,"quantity":1,"category":"Bench"}]}'
FROM generate_series(1, 100) AS g;
COMMIT;
