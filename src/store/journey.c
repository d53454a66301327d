/* The journey and outbox operations of the store front: each dispatches to
 * the backend's journey table (td_store_ops_t.domains[TD_STORE_DOMAIN_JOURNEY]);
 * a backend without one answers TD_EIO (logged). Also the release helpers
 * of the journey row types. */
#include "store/internal.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/banned.h"

static const td_store_journey_ops_t *ops(const td_store_conn_t *c)
{
    const td_store_journey_ops_t *o = td_store__domain(c, TD_STORE_DOMAIN_JOURNEY);

    if (o == NULL) {
        td_log(TD_LOG_ERROR, "store", "journeys not supported by backend=%s", c->st->ops->name);
    }
    return c->impl ? o : NULL;
}

bool td_store_journeys_supported(const td_store_t *st)
{
    return st->ops->domains[TD_STORE_DOMAIN_JOURNEY] != NULL;
}

#define CALL(c, op, ...) (ops(c) ? ops(c)->op((c)->impl, __VA_ARGS__) : TD_EIO)

int td_store_journey_get(td_store_conn_t *c, const char *id, td_store_journey_t *out)
{
    return CALL(c, get, id, out);
}

int td_store_journey_list(td_store_conn_t *c, td_store_journey_t **rows, int *n)
{
    return CALL(c, list, rows, n);
}

int td_store_journey_create(td_store_conn_t *c, const char *id, int64_t now_ms)
{
    return CALL(c, create, id, now_ms);
}

int td_store_journey_version_add(td_store_conn_t *c, const char *id, int64_t version,
                                 const char *doc, int64_t now_ms)
{
    return CALL(c, version_add, id, version, doc, now_ms);
}

int td_store_journey_version_get(td_store_conn_t *c, const char *id, int64_t version, char **doc,
                                 int64_t *created_ms, int64_t *published_ms)
{
    return CALL(c, version_get, id, version, doc, created_ms, published_ms);
}

int td_store_journey_set_status(td_store_conn_t *c, const char *id, const char *status,
                                int64_t live_version, int64_t now_ms)
{
    return CALL(c, set_status, id, status, live_version, now_ms);
}

int td_store_journey_delete(td_store_conn_t *c, const char *id)
{
    return CALL(c, remove, id);
}

int td_store_journey_hold(td_store_conn_t *c, const char *id, bool hold)
{
    return CALL(c, hold, id, hold);
}

int td_store_journey_stop(td_store_conn_t *c, const char *id, int64_t now_ms, const char *history,
                          int64_t *n)
{
    return CALL(c, stop, id, now_ms, history, n);
}

int td_store_journey_key_get(td_store_conn_t *c, const char *journey_id, const char *key,
                             int64_t *last_entered_ms, int64_t *running_id)
{
    return CALL(c, key_get, journey_id, key, last_entered_ms, running_id);
}

int td_store_journey_key_put(td_store_conn_t *c, const char *journey_id, const char *key,
                             int64_t entered_ms, int64_t running_id)
{
    return CALL(c, key_put, journey_id, key, entered_ms, running_id);
}

int td_store_journey_key_release(td_store_conn_t *c, const char *journey_id, const char *key,
                                 int64_t instance_id)
{
    return CALL(c, key_release, journey_id, key, instance_id);
}

int td_store_journey_count_add(td_store_conn_t *c, const char *journey_id, int64_t version,
                               const char *step, const char *kind, const char *reason, int64_t n)
{
    return CALL(c, count_add, journey_id, version, step, kind, reason, n);
}

int td_store_journey_counts(td_store_conn_t *c, const char *journey_id, td_store_jcount_t **rows,
                            int *n)
{
    return CALL(c, counts, journey_id, rows, n);
}

int td_store_journey_running_counts(td_store_conn_t *c, const char *journey_id,
                                    td_store_jcount_t **rows, int *n)
{
    return CALL(c, running_counts, journey_id, rows, n);
}

int td_store_journey_next_due(td_store_conn_t *c, int64_t wall_ms, int64_t *ms)
{
    return CALL(c, next_due, wall_ms, ms);
}

int td_store_jinstance_insert(td_store_conn_t *c, const td_store_jinstance_t *in,
                              const char *history, int64_t *id)
{
    return CALL(c, inst_insert, in, history, id);
}

int td_store_jinstance_update(td_store_conn_t *c, const td_store_jinstance_t *in, bool data_changed,
                              const char *history_append)
{
    return CALL(c, inst_update, in, data_changed, history_append);
}

int td_store_jinstance_get(td_store_conn_t *c, int64_t id, td_store_jinstance_t *out)
{
    return CALL(c, inst_get, id, out);
}

int td_store_jinstance_due(td_store_conn_t *c, int64_t now_ms, int64_t wall_ms, int limit,
                           td_store_jinstance_t **rows, int *n)
{
    return CALL(c, inst_due, now_ms, wall_ms, limit, rows, n);
}

int td_store_jinstance_running(td_store_conn_t *c, int64_t profile_id, td_store_jinstance_t **rows,
                               int *n)
{
    return CALL(c, inst_running, profile_id, rows, n);
}

int td_store_jinstance_list(td_store_conn_t *c, const char *journey_id, int64_t profile_id,
                            int state, int64_t before_id, int limit, td_store_jinstance_t **rows,
                            int *n)
{
    return CALL(c, inst_list, journey_id, profile_id, state, before_id, limit, rows, n);
}

int td_store_profile_attrs_get(td_store_conn_t *c, int64_t profile_id, td_store_attr_t **rows,
                               int *n)
{
    return CALL(c, attrs_get, profile_id, rows, n);
}

int td_store_profile_attr_set(td_store_conn_t *c, int64_t profile_id, const char *name,
                              const char *value, int64_t now_ms)
{
    return CALL(c, attr_set, profile_id, name, value, now_ms);
}

int td_store_events_recent(td_store_conn_t *c, int64_t profile_id, int limit,
                           td_store_event_row_t **rows, int *n)
{
    return CALL(c, events_recent, profile_id, limit, rows, n);
}

int td_store_outbox_add(td_store_conn_t *c, const td_store_outbox_t *m, int64_t *id)
{
    return CALL(c, outbox_add, m, id);
}

int td_store_outbox_claim(td_store_conn_t *c, const char *node, int64_t now_ms, int64_t wall_ms,
                          int64_t lease_until_ms, int limit, td_store_outbox_t **rows, int *n)
{
    return CALL(c, outbox_claim, node, now_ms, wall_ms, lease_until_ms, limit, rows, n);
}

int td_store_outbox_mark(td_store_conn_t *c, int64_t id, const char *node, const char *status,
                         int64_t next_attempt_ms, const char *error, int64_t now_ms)
{
    return CALL(c, outbox_mark, id, node, status, next_attempt_ms, error, now_ms);
}

int td_store_outbox_get(td_store_conn_t *c, int64_t id, td_store_outbox_t *out)
{
    return CALL(c, outbox_get, id, out);
}

int td_store_outbox_list(td_store_conn_t *c, int64_t instance_id, const char *status, int limit,
                         td_store_outbox_t **rows, int *n)
{
    return CALL(c, outbox_list, instance_id, status, limit, rows, n);
}

void td_store_journey_release(td_store_journey_t *j)
{
    if (j) {
        free(j->id);
        free(j->status);
        memset(j, 0, sizeof(*j));
    }
}

void td_store_jinstance_release(td_store_jinstance_t *i)
{
    if (i) {
        free(i->journey_id);
        free(i->entry_key);
        free(i->step);
        free(i->outcome);
        free(i->reason);
        free(i->entry_event);
        free(i->data);
        free(i->history);
        free(i->claimed_by);
        memset(i, 0, sizeof(*i));
    }
}

void td_store_outbox_release(td_store_outbox_t *m)
{
    if (m) {
        free(m->message_id);
        free(m->channel);
        free(m->journey_id);
        free(m->step);
        free(m->recipient);
        free(m->template_id);
        free(m->data);
        free(m->status);
        free(m->claimed_by);
        free(m->last_error);
        memset(m, 0, sizeof(*m));
    }
}

void td_store_journeys_free(td_store_journey_t *rows, int n)
{
    for (int i = 0; i < n; i++) {
        td_store_journey_release(&rows[i]);
    }
    free(rows);
}

void td_store_jinstances_free(td_store_jinstance_t *rows, int n)
{
    for (int i = 0; i < n; i++) {
        td_store_jinstance_release(&rows[i]);
    }
    free(rows);
}

void td_store_jcounts_free(td_store_jcount_t *rows, int n)
{
    for (int i = 0; i < n; i++) {
        free(rows[i].step);
        free(rows[i].kind);
        free(rows[i].reason);
    }
    free(rows);
}

void td_store_attrs_free(td_store_attr_t *rows, int n)
{
    for (int i = 0; i < n; i++) {
        free(rows[i].name);
        free(rows[i].value);
    }
    free(rows);
}

void td_store_event_rows_free(td_store_event_row_t *rows, int n)
{
    for (int i = 0; i < n; i++) {
        free(rows[i].type);
        free(rows[i].doc);
    }
    free(rows);
}

void td_store_outboxes_free(td_store_outbox_t *rows, int n)
{
    for (int i = 0; i < n; i++) {
        td_store_outbox_release(&rows[i]);
    }
    free(rows);
}
