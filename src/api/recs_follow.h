/* Private to recs_service.c and recs_follow.c: the follower that feeds the
 * recommendation model the events other nodes store in a shared database. */
#ifndef TD_API_RECS_FOLLOW_H
#define TD_API_RECS_FOLLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

typedef struct td_recs_follow td_recs_follow_t;

/* Feeds one stored event to the model (called on the follower's thread);
 * false when the model does not learn from events of its kind. */
typedef bool (*td_recs_follow_apply_fn)(void *ctx, const td_store_scan_row_t *row);

/* Called after every poll with the poll's connection (on the follower's
 * thread): other shared state to pick up, e.g. documents. */
typedef void (*td_recs_follow_tick_fn)(void *ctx, td_store_conn_t *conn);

/* A follower that has seen nothing yet; start it with _start once the
 * replay at start-up went through td_recs__follow_saw. */
td_recs_follow_t *td_recs__follow_new(td_store_t *store, td_recs_follow_apply_fn apply, void *ctx);
/* The start-up replay read the event with this seq (rows in seq order):
 * seqs it skipped over may still be in flight and are watched for. Not
 * thread-safe; before _start only. */
void td_recs__follow_saw(td_recs_follow_t *f, int64_t seq);
/* This node stores the event seq and feeds it to the model itself: the
 * follower will skip it. Mark only events apply would learn from. Called inside the storing
 * transaction (so before the row is visible to anyone). Thread-safe. */
void td_recs__follow_mine(td_recs_follow_t *f, int64_t seq);
/* Sets what runs after every poll. Before _start only. */
void td_recs__follow_on_poll(td_recs_follow_t *f, td_recs_follow_tick_fn tick);
/* Starts the thread that scans for new events every interval_ms. */
int td_recs__follow_start(td_recs_follow_t *f, int interval_ms) TD_MUST_CHECK;
/* Stops the thread (if started) and frees everything. NULL is fine. */
void td_recs__follow_free(td_recs_follow_t *f);

#endif
