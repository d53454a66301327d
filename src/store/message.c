/* The message operations of the store front (templates, suppressions, the
 * send log): each dispatches to the backend's message table
 * (td_store_ops_t.domains[TD_STORE_DOMAIN_MESSAGE]); a backend without one
 * answers TD_EIO (logged). Also the release helpers of the row types. */
#include "store/internal.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/banned.h"

static const td_store_message_ops_t *ops(const td_store_conn_t *c)
{
    const td_store_message_ops_t *o = td_store__domain(c, TD_STORE_DOMAIN_MESSAGE);

    if (o == NULL) {
        td_log(TD_LOG_ERROR, "store", "messages not supported by backend=%s", c->st->ops->name);
    }
    return c->impl ? o : NULL;
}

bool td_store_messages_supported(const td_store_t *st)
{
    return st->ops->domains[TD_STORE_DOMAIN_MESSAGE] != NULL;
}

#define CALL(c, op, ...) (ops(c) ? ops(c)->op((c)->impl, __VA_ARGS__) : TD_EIO)

int td_store_template_put(td_store_conn_t *c, const td_store_template_t *t, bool only_if_absent,
                          int64_t *version)
{
    return CALL(c, template_put, t, only_if_absent, version);
}

int td_store_template_get(td_store_conn_t *c, const char *id, td_store_template_t *out)
{
    memset(out, 0, sizeof(*out));
    return CALL(c, template_get, id, out);
}

int td_store_template_delete(td_store_conn_t *c, const char *id)
{
    return CALL(c, template_delete, id);
}

int td_store_template_list(td_store_conn_t *c, td_store_template_t **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    return CALL(c, template_list, rows, n);
}

int td_store_suppression_add(td_store_conn_t *c, const td_store_suppression_t *s)
{
    return CALL(c, suppression_add, s);
}

int td_store_suppression_delete(td_store_conn_t *c, const char *key)
{
    return CALL(c, suppression_delete, key);
}

int td_store_suppression_find(td_store_conn_t *c, const char *addr, td_store_suppression_t *out)
{
    memset(out, 0, sizeof(*out));
    return CALL(c, suppression_find, addr, out);
}

int td_store_suppression_list(td_store_conn_t *c, const char *after, int limit,
                              td_store_suppression_t **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    return CALL(c, suppression_list, after ? after : "", limit, rows, n);
}

int td_store_send_begin(td_store_conn_t *c, const char *message_id, const char *journey_id,
                        int64_t wall_ms, bool *was_in_flight)
{
    *was_in_flight = false;
    return CALL(c, send_begin, message_id, journey_id, wall_ms, was_in_flight);
}

int td_store_send_end(td_store_conn_t *c, const char *message_id, const char *outcome,
                      const char *reason, int64_t wall_ms)
{
    return CALL(c, send_end, message_id, outcome, reason, wall_ms);
}

int td_store_send_counts(td_store_conn_t *c, const char *journey_id, td_store_send_count_t **rows,
                         int *n)
{
    *rows = NULL;
    *n = 0;
    return CALL(c, send_counts, journey_id, rows, n);
}

int td_store_cap_usage(td_store_conn_t *c, int64_t profile_id, int64_t exclude_id, int64_t since_ms,
                       int64_t now_ms, int64_t *n, int64_t *oldest_ms)
{
    *n = 0;
    *oldest_ms = 0;
    return CALL(c, cap_usage, profile_id, exclude_id, since_ms, now_ms, n, oldest_ms);
}

int td_store_engagement_add(td_store_conn_t *c, const char *message_id, const char *journey_id,
                            const char *kind, int64_t ts_ms)
{
    return CALL(c, engagement_add, message_id, journey_id, kind, ts_ms);
}

int td_store_attribution_add(td_store_conn_t *c, const td_store_attribution_t *a)
{
    return CALL(c, attribution_add, a);
}

int td_store_journey_msg_outcomes(td_store_conn_t *c, const char *journey_id,
                                  td_store_msg_outcomes_t *out)
{
    memset(out, 0, sizeof(*out));
    return CALL(c, journey_outcomes, journey_id, out);
}

void td_store_template_release(td_store_template_t *t)
{
    if (t == NULL) {
        return;
    }
    free(t->id);
    free(t->subject);
    free(t->html);
    free(t->text);
    free(t->from_name);
    free(t->reply_to);
    free(t->source);
    memset(t, 0, sizeof(*t));
}

void td_store_templates_free(td_store_template_t *rows, int n)
{
    for (int i = 0; i < n; i++) {
        td_store_template_release(&rows[i]);
    }
    free(rows);
}

void td_store_suppression_release(td_store_suppression_t *s)
{
    if (s == NULL) {
        return;
    }
    free(s->key);
    free(s->reason);
    free(s->source);
    memset(s, 0, sizeof(*s));
}

void td_store_suppressions_free(td_store_suppression_t *rows, int n)
{
    for (int i = 0; i < n; i++) {
        td_store_suppression_release(&rows[i]);
    }
    free(rows);
}

void td_store_send_counts_free(td_store_send_count_t *rows, int n)
{
    for (int i = 0; i < n; i++) {
        free(rows[i].outcome);
        free(rows[i].reason);
    }
    free(rows);
}
