/* The storage ceiling for bench/ingest: a plain C loop inserting event rows
 * like Tandem's (same table, same indexes, same durability settings) into
 * SQLite, in transactions of BATCH rows. Prints rows per second.
 * Usage: sqlite_insert DB ROWS BATCH */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    char doc[512];

    if (argc != 4) {
        fprintf(stderr, "usage: sqlite_insert DB ROWS BATCH\n");
        return 2;
    }
    long rows = strtol(argv[2], NULL, 10), batch = strtol(argv[3], NULL, 10);
    if (sqlite3_open(argv[1], &db) != SQLITE_OK) {
        return 1;
    }
    sqlite3_exec(db,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                 "CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT, type TEXT NOT NULL,"
                 " profile_id INTEGER NOT NULL, ts_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL,"
                 " doc TEXT NOT NULL);"
                 "CREATE UNIQUE INDEX events_event_id ON events (event_id) WHERE event_id IS NOT NULL;"
                 "CREATE INDEX events_profile ON events (profile_id, ts_ms);",
                 NULL, NULL, NULL);
    sqlite3_prepare_v2(db,
                       "INSERT INTO events (event_id, type, profile_id, ts_ms, received_ms, doc) "
                       "VALUES (NULL, 'product_view', ?1, ?2, ?2, ?3)",
                       -1, &st, NULL);
    double t0 = now_s();
    for (long i = 0; i < rows; i++) {
        if (i % batch == 0) {
            sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        }
        int n = snprintf(doc, sizeof(doc),
                         "{\"type\":\"product_view\",\"ecid\":\"bench-%ld\",\"ts\":"
                         "\"2026-11-29T05:00:00.000Z\",\"received\":\"2026-11-29T05:00:00.000Z\","
                         "\"source\":\"native\",\"items\":[{\"id\":\"SKU-%ld\",\"name\":\"Item "
                         "%ld\",\"price\":19.9,\"quantity\":1,\"category\":\"Bench\"}]}",
                         i % 10000, i % 500, i % 500);
        sqlite3_bind_int64(st, 1, i % 10000);
        sqlite3_bind_int64(st, 2, 1795900000000LL + i);
        sqlite3_bind_text(st, 3, doc, n, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            fprintf(stderr, "insert failed: %s\n", sqlite3_errmsg(db));
            return 1;
        }
        sqlite3_reset(st);
        if (i % batch == batch - 1 || i == rows - 1) {
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        }
    }
    double dt = now_s() - t0;
    printf("%.0f\n", (double)rows / dt);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return 0;
}
