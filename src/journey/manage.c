/* Admin operations on journeys (put, publish, pause, resume, stop, delete),
 * reports, and the JSON of instances and outbox rows. Each change is one
 * store transaction, then the in-memory snapshot the ingest hook reads is
 * rebuilt. */
#include "journey/engine_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/banned.h"

static json_t *time_json(int64_t ms)
{
    char ts[32];

    if (ms == 0) {
        return json_null();
    }
    td_time_format_iso(ms, ts, sizeof(ts));
    return json_string(ts);
}

static json_t *parse_or(const char *text, json_t *fallback)
{
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;

    if (v) {
        json_decref(fallback);
        return v;
    }
    return fallback;
}

json_t *td_journey__instance_json(const td_store_jinstance_t *row)
{
    static const char *const phases[] = { "running", "waiting", "calling" };
    const char *state = row->ended_ms                        ? "ended"
                        : row->held                          ? "paused"
                        : row->phase >= 0 && row->phase <= 2 ? phases[row->phase]
                                                             : "running";
    json_t *o = json_object();

    json_object_set_new(o, "id", json_integer(row->id));
    json_object_set_new(o, "journey", json_string(row->journey_id));
    json_object_set_new(o, "version", json_integer(row->version));
    json_object_set_new(o, "profile_id", json_integer(row->profile_id));
    json_object_set_new(o, "entry_key", json_string(row->entry_key));
    json_object_set_new(o, "state", json_string(state));
    json_object_set_new(o, "step", json_string(row->step));
    json_object_set_new(o, "entered", time_json(row->entered_ms));
    json_object_set_new(o, "entered_ms", json_integer(row->entered_ms));
    json_object_set_new(o, "step_since", time_json(row->step_since_ms));
    json_object_set_new(o, "next_run", time_json(row->ended_ms ? 0 : row->next_run_ms));
    json_object_set_new(o, "timeout_at", time_json(row->timeout_at_ms));
    json_object_set_new(o, "ended", time_json(row->ended_ms));
    json_object_set_new(o, "outcome", row->outcome ? json_string(row->outcome) : json_null());
    json_object_set_new(o, "reason", row->reason ? json_string(row->reason) : json_null());
    json_object_set_new(o, "steps_run", json_integer(row->n_steps));
    if (row->phase == TD_JOURNEY_CALLING && !row->ended_ms) {
        json_object_set_new(o, "call_attempts", json_integer(row->attempts));
    }
    json_object_set_new(o, "entry_event", parse_or(row->entry_event, json_object()));
    json_t *data = parse_or(row->data, json_object());
    json_t *actions = json_object_get(data, "actions");
    json_object_set(o, "actions", actions ? actions : json_object());
    json_decref(data);
    if (row->history) {
        json_object_set_new(o, "history", parse_or(row->history, json_array()));
    }
    return o;
}

static json_t *journey_json(const td_store_journey_t *j)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:o, s:o}", "id", j->id, "status", j->status,
                     "live_version", (json_int_t)j->live_version, "latest_version",
                     (json_int_t)j->latest_version, "created", time_json(j->created_ms), "updated",
                     time_json(j->updated_ms));
}

typedef struct auth_check {
    td_journey_engine_t *eng;
    td_journey_errors_t *errs;
} auth_check_t;

static void check_auth(void *ctx, const char *name, const char *path)
{
    auth_check_t *a = ctx;

    if (!td_journey__http_has_auth(a->eng->http, name)) {
        td_journey_errors_add(a->errs, path, 0,
                              "credential \"%s\" is not configured (server setting action_auth = "
                              "%s=bearer:TOKEN)",
                              name, name);
    }
}

static int parse_checked(td_journey_engine_t *eng, const char *id, const char *doc, size_t len,
                         td_journey_def_t **def, td_journey_errors_t *errs)
{
    int rc = td_journey_def_parse(doc, len, id, &eng->defaults, def, errs);
    auth_check_t a = { eng, errs };

    if (rc != TD_OK) {
        return rc;
    }
    td_journey_def_each_auth(*def, check_auth, &a);
    if (errs->n > 0) {
        td_journey_def_free(*def);
        *def = NULL;
        return TD_EINVAL;
    }
    return TD_OK;
}

int td_journey_validate(td_journey_engine_t *eng, const char *id, const char *doc, size_t len,
                        td_journey_errors_t *errs)
{
    td_journey_def_t *def = NULL;
    int rc = parse_checked(eng, id, doc, len, &def, errs);

    td_journey_def_free(def);
    return rc;
}

/* Runs fn inside one admin transaction. */
#define TX_BEGIN(eng, c, rc)                             \
    pthread_mutex_lock(&(eng)->admin_mu);                \
    td_store_conn_t *c = td_store_acquire((eng)->store); \
    int rc = td_store_begin(c);

static int tx_end(td_journey_engine_t *eng, td_store_conn_t *c, int rc)
{
    if (rc == TD_OK) {
        rc = td_store_commit(c);
    }
    if (rc != TD_OK) {
        td_store_rollback(c);
    }
    td_store_release(eng->store, c);
    pthread_mutex_unlock(&eng->admin_mu);
    return rc;
}

int td_journey_put(td_journey_engine_t *eng, const char *id, const char *doc, size_t len,
                   json_t **out, td_journey_errors_t *errs, td_err_t *err)
{
    td_journey_def_t *def = NULL;
    td_store_journey_t j = { 0 };
    char *latest = NULL;
    int64_t version = 0;
    bool changed = false;
    int rc;

    *out = NULL;
    if ((rc = parse_checked(eng, id, doc, len, &def, errs)) != TD_OK) {
        return td_err_set(err, rc, errs->n ? errs->items[0].path : "",
                          "the definition has %d error%s%s", errs->n, errs->n == 1 ? "" : "s",
                          errs->truncated ? " (and more)" : "");
    }
    TX_BEGIN(eng, c, trc);
    rc = trc;
    if (rc == TD_OK && (rc = td_store_journey_get(c, id, &j)) == TD_ENOTFOUND) {
        if ((rc = td_store_journey_create(c, id, td_clock_now_ms(eng->clock))) == TD_OK) {
            rc = td_store_journey_get(c, id, &j);
        }
    }
    if (rc == TD_OK && j.latest_version > 0) {
        rc = td_store_journey_version_get(c, id, 0, &latest, NULL, NULL);
    }
    if (rc == TD_OK) {
        changed = latest == NULL || strcmp(latest, td_journey_def_text(def)) != 0;
        version = changed ? j.latest_version + 1 : j.latest_version;
        if (changed) {
            rc = td_store_journey_version_add(c, id, version, td_journey_def_text(def),
                                              td_clock_now_ms(eng->clock));
        }
    }
    rc = tx_end(eng, c, rc);
    if (rc == TD_OK) {
        td_journey__def_cache_put(eng, id, version, def);
        *out = json_pack("{s:s, s:I, s:b, s:s, s:I}", "id", id, "version", (json_int_t)version,
                         "changed", changed, "status", j.status ? j.status : "draft",
                         "live_version", (json_int_t)j.live_version);
        td_log(TD_LOG_INFO, "journey", "put id=%s version=%" PRId64 " changed=%d", id, version,
               changed);
    } else {
        td_err_set(err, rc, "", "cannot store the journey (%s)", td_strerror(rc));
    }
    free(latest);
    td_store_journey_release(&j);
    td_journey_def_free(def);
    return rc;
}

int td_journey_get(td_journey_engine_t *eng, const char *id, int64_t version, json_t **out,
                   td_err_t *err)
{
    td_store_conn_t *c = td_store_acquire(eng->store);
    td_store_journey_t j = { 0 };
    char *doc = NULL;
    int64_t created = 0, published = 0;
    int rc = td_store_journey_get(c, id, &j);

    *out = NULL;
    if (rc == TD_OK && j.latest_version == 0) {
        rc = TD_ENOTFOUND;
    }
    if (rc == TD_OK) {
        rc = td_store_journey_version_get(c, id, version, &doc, &created, &published);
    }
    td_store_release(eng->store, c);
    if (rc == TD_ENOTFOUND) {
        td_store_journey_release(&j);
        return td_err_set(err, rc, version ? "version" : "id", "no journey \"%s\"%s", id,
                          version ? " in that version" : "");
    }
    if (rc != TD_OK) {
        td_store_journey_release(&j);
        return td_err_set(err, rc, "", "cannot read the journey (%s)", td_strerror(rc));
    }
    *out = journey_json(&j);
    json_object_set_new(*out, "version", json_integer(version ? version : j.latest_version));
    json_object_set_new(*out, "version_created", time_json(created));
    json_object_set_new(*out, "version_published", time_json(published));
    json_object_set_new(*out, "definition", parse_or(doc, json_object()));
    free(doc);
    td_store_journey_release(&j);
    return TD_OK;
}

int td_journey_list(td_journey_engine_t *eng, json_t **out, td_err_t *err)
{
    td_store_conn_t *c = td_store_acquire(eng->store);
    td_store_journey_t *rows = NULL;
    int n = 0, rc = td_store_journey_list(c, &rows, &n);

    *out = NULL;
    if (rc != TD_OK) {
        td_store_release(eng->store, c);
        return td_err_set(err, rc, "", "cannot list journeys (%s)", td_strerror(rc));
    }
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = journey_json(&rows[i]);
        td_journey_def_t *def;
        td_store_jcount_t *counts = NULL;
        int nc = 0;
        if (rows[i].latest_version > 0 &&
            td_journey__def_get(eng, c, rows[i].id, rows[i].latest_version, &def) == TD_OK) {
            json_object_set_new(o, "name", json_string(def->name));
            json_object_set_new(o, "entry_event", json_string(def->entry_event));
            td_journey_def_free(def);
        }
        int64_t running = 0;
        if (td_store_journey_running_counts(c, rows[i].id, &counts, &nc) == TD_OK) {
            for (int k = 0; k < nc; k++) {
                running += counts[k].n;
            }
            td_store_jcounts_free(counts, nc);
        }
        json_object_set_new(o, "running", json_integer(running));
        json_array_append_new(list, o);
    }
    td_store_journeys_free(rows, n);
    td_store_release(eng->store, c);
    *out = json_pack("{s:o}", "journeys", list);
    return TD_OK;
}

int td_journey_delete(td_journey_engine_t *eng, const char *id, td_err_t *err)
{
    td_store_journey_t j = { 0 };

    TX_BEGIN(eng, c, rc);
    if (rc == TD_OK && (rc = td_store_journey_get(c, id, &j)) == TD_OK) {
        if (strcmp(j.status, "live") == 0 || strcmp(j.status, "paused") == 0) {
            rc = TD_ECONFLICT;
        } else {
            rc = td_store_journey_delete(c, id);
        }
    }
    rc = tx_end(eng, c, rc);
    td_store_journey_release(&j);
    if (rc == TD_ECONFLICT) {
        return td_err_set(err, rc, "status", "journey \"%s\" is %s: stop it before deleting it", id,
                          "running");
    }
    if (rc == TD_ENOTFOUND) {
        return td_err_set(err, rc, "id", "no journey \"%s\"", id);
    }
    if (rc != TD_OK) {
        return td_err_set(err, rc, "", "cannot delete the journey (%s)", td_strerror(rc));
    }
    td_journey__def_cache_drop(eng, id);
    if ((rc = td_journey__snap_rebuild(eng)) != TD_OK) {
        return td_err_set(err, rc, "", "deleted, but reloading journeys failed (%s)",
                          td_strerror(rc));
    }
    td_log(TD_LOG_INFO, "journey", "delete id=%s", id);
    return TD_OK;
}

int td_journey_control(td_journey_engine_t *eng, const char *id, const char *verb, int64_t version,
                       json_t **out, td_err_t *err)
{
    td_store_journey_t j = { 0 };
    int64_t stopped = 0, now = td_clock_now_ms(eng->clock);
    td_journey_errors_t *errs = td_xcalloc(1, sizeof(*errs));
    const char *status = NULL;

    *out = NULL;
    TX_BEGIN(eng, c, rc);
    if (rc == TD_OK) {
        rc = td_store_journey_get(c, id, &j);
    }
    if (rc == TD_OK && strcmp(verb, "publish") == 0) {
        td_journey_def_t *def = NULL;
        version = version ? version : j.latest_version;
        if (version <= 0 || version > j.latest_version) {
            rc = td_err_set(err, TD_ENOTFOUND, "version", "journey \"%s\" has no version %" PRId64,
                            id, version);
        } else if ((rc = td_journey__def_get(eng, c, id, version, &def)) == TD_OK) {
            auth_check_t a = { eng, errs };
            td_journey_def_each_auth(def, check_auth, &a);
            td_journey_def_free(def);
            if (errs->n > 0) {
                rc = td_err_set(err, TD_EINVAL, errs->items[0].path, "%s", errs->items[0].message);
            }
        }
        status = "live";
        if (rc == TD_OK) {
            rc = td_store_journey_set_status(c, id, status, version, now);
        }
        if (rc == TD_OK && strcmp(j.status, "paused") == 0) {
            rc = td_store_journey_hold(c, id, false);
        }
    } else if (rc == TD_OK && strcmp(verb, "pause") == 0) {
        status = "paused";
        if (strcmp(j.status, "live") != 0) {
            rc = td_err_set(err, TD_ECONFLICT, "status",
                            "only a live journey can be paused (\"%s\" is %s)", id, j.status);
        } else if ((rc = td_store_journey_set_status(c, id, status, 0, now)) == TD_OK) {
            rc = td_store_journey_hold(c, id, true);
        }
    } else if (rc == TD_OK && strcmp(verb, "resume") == 0) {
        status = "live";
        if (strcmp(j.status, "paused") != 0) {
            rc = td_err_set(err, TD_ECONFLICT, "status",
                            "only a paused journey can be resumed (\"%s\" is %s)", id, j.status);
        } else if ((rc = td_store_journey_set_status(c, id, status, 0, now)) == TD_OK) {
            rc = td_store_journey_hold(c, id, false);
        }
    } else if (rc == TD_OK && strcmp(verb, "stop") == 0) {
        status = "stopped";
        if (strcmp(j.status, "live") != 0 && strcmp(j.status, "paused") != 0) {
            rc = td_err_set(err, TD_ECONFLICT, "status", "journey \"%s\" is %s, not running", id,
                            j.status);
        } else if ((rc = td_store_journey_set_status(c, id, status, 0, now)) == TD_OK) {
            char ts[32], entry[128];
            td_time_format_iso(now, ts, sizeof(ts));
            snprintf(entry, sizeof(entry),
                     ",{\"step\":\"\",\"ts\":\"%s\",\"outcome\":\"stopped\",\"reason\":"
                     "\"journey stopped\"}",
                     ts);
            rc = td_store_journey_stop(c, id, now, entry, &stopped);
        }
    } else if (rc == TD_OK) {
        rc = td_err_set(err, TD_EINVAL, "verb",
                        "unknown action \"%s\" (publish, pause, resume, stop)", verb);
    }
    bool err_set = err && err->code != TD_OK;
    rc = tx_end(eng, c, rc);
    free(errs);
    if (rc == TD_ENOTFOUND && !err_set) {
        td_store_journey_release(&j);
        return td_err_set(err, rc, "id", "no journey \"%s\"", id);
    }
    if (rc != TD_OK) {
        if (!err_set) {
            td_err_set(err, rc, "", "cannot %s the journey (%s)", verb, td_strerror(rc));
        }
        td_store_journey_release(&j);
        return rc;
    }
    if ((rc = td_journey__snap_rebuild(eng)) != TD_OK) {
        td_store_journey_release(&j);
        return td_err_set(err, rc, "", "changed, but reloading journeys failed (%s)",
                          td_strerror(rc));
    }
    td_journey_engine_wake(eng);
    td_log(TD_LOG_INFO, "journey", "%s id=%s version=%" PRId64, verb, id,
           strcmp(verb, "publish") == 0 ? version : j.live_version);
    *out = json_pack("{s:s, s:s, s:I}", "id", id, "status", status, "live_version",
                     (json_int_t)(strcmp(verb, "publish") == 0 ? version : j.live_version));
    if (strcmp(verb, "stop") == 0) {
        json_object_set_new(*out, "stopped_instances", json_integer(stopped));
    }
    td_store_journey_release(&j);
    return TD_OK;
}

/* ---- reports ---------------------------------------------------------- */

static json_t *step_entry(json_t *steps, const char *step, const char *type)
{
    size_t i;
    json_t *s;

    json_array_foreach(steps, i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "step")), step) == 0) {
            return s;
        }
    }
    s = json_pack("{s:s, s:s, s:I, s:I, s:I, s:{}, s:I, s:{}}", "step", step, "type", type,
                  "entered", (json_int_t)0, "waiting", (json_int_t)0, "passed", (json_int_t)0,
                  "exited", "errors", (json_int_t)0, "skipped");
    json_array_append_new(steps, s);
    return s;
}

static void add_int(json_t *o, const char *key, int64_t n)
{
    json_object_set_new(o, key, json_integer(json_integer_value(json_object_get(o, key)) + n));
}

static void add_map(json_t *o, const char *key, const char *sub, int64_t n)
{
    json_t *m = json_object_get(o, key);

    if (m == NULL) {
        json_object_set_new(o, key, m = json_object());
    }
    add_int(m, sub && *sub ? sub : "-", n);
}

int td_journey_report(td_journey_engine_t *eng, const char *id, json_t **out, td_err_t *err)
{
    td_store_conn_t *c = td_store_acquire(eng->store);
    td_store_journey_t j = { 0 };
    td_store_jcount_t *counts = NULL, *running = NULL;
    int nc = 0, nr = 0;
    td_journey_def_t *def = NULL;
    int rc = td_store_journey_get(c, id, &j);

    *out = NULL;
    if (rc == TD_OK) {
        rc = td_store_journey_counts(c, id, &counts, &nc);
    }
    if (rc == TD_OK) {
        rc = td_store_journey_running_counts(c, id, &running, &nr);
    }
    if (rc == TD_OK && (j.live_version || j.latest_version)) {
        if (td_journey__def_get(eng, c, id, j.live_version ? j.live_version : j.latest_version,
                                &def) != TD_OK) {
            def = NULL;
        }
    }
    td_store_release(eng->store, c);
    if (rc != TD_OK) {
        td_store_jcounts_free(counts, nc);
        td_store_jcounts_free(running, nr);
        if (rc == TD_ENOTFOUND) {
            return td_err_set(err, rc, "id", "no journey \"%s\"", id);
        }
        td_store_journey_release(&j);
        return td_err_set(err, rc, "", "cannot read the report (%s)", td_strerror(rc));
    }
    json_t *steps = json_array(),
           *entries = json_pack("{s:I, s:{}}", "entered", (json_int_t)0, "refused");
    json_t *ended = json_object(), *versions = json_object();
    int64_t total_running = 0;
    for (int i = 0; def && i < def->n_steps; i++) {
        step_entry(steps, def->steps[i].id, td_jstep_type_name(def->steps[i].type));
    }
    for (int i = 0; i < nc; i++) {
        const td_store_jcount_t *k = &counts[i];
        char v[24];
        snprintf(v, sizeof(v), "%" PRId64, k->version);
        if (*k->step == '\0') {
            if (strcmp(k->kind, "entered") == 0) {
                add_int(entries, "entered", k->n);
                add_map(versions, v, "entered", k->n);
            } else if (strcmp(k->kind, "refused") == 0) {
                add_map(entries, "refused", k->reason, k->n);
            } else if (strcmp(k->kind, "ended") == 0) {
                add_int(ended, k->reason, k->n);
                add_map(versions, v, k->reason, k->n);
            }
            continue;
        }
        json_t *s = step_entry(steps, k->step, "?");
        if (strcmp(k->kind, "entered") == 0 || strcmp(k->kind, "passed") == 0) {
            add_int(s, k->kind, k->n);
        } else if (strcmp(k->kind, "branch") == 0) {
            add_int(s, "passed", k->n);
            add_map(s, "branches", k->reason, k->n);
        } else if (strcmp(k->kind, "exited") == 0) {
            add_map(s, "exited", k->reason, k->n);
        } else if (strcmp(k->kind, "error") == 0) {
            add_int(s, "errors", k->n);
        } else if (strcmp(k->kind, "skipped") == 0) {
            add_map(s, "skipped", k->reason, k->n);
        } else if (strcmp(k->kind, "completed") == 0) {
            add_map(s, "completed", k->reason, k->n);
        } else if (strcmp(k->kind, "queued") == 0) {
            add_int(s, "queued", k->n);
        } else if (strcmp(k->kind, "called") == 0) {
            add_map(s, "calls", k->reason, k->n);
        }
    }
    for (int i = 0; i < nr; i++) {
        add_int(step_entry(steps, running[i].step, "?"), "waiting", running[i].n);
        total_running += running[i].n;
    }
    *out =
        json_pack("{s:s, s:s, s:I, s:I, s:o, s:I, s:o, s:o, s:o}", "id", id, "status", j.status,
                  "live_version", (json_int_t)j.live_version, "latest_version",
                  (json_int_t)j.latest_version, "entries", entries, "running",
                  (json_int_t)total_running, "ended", ended, "steps", steps, "versions", versions);
    td_journey_def_free(def);
    td_store_jcounts_free(counts, nc);
    td_store_jcounts_free(running, nr);
    td_store_journey_release(&j);
    return TD_OK;
}

/* ---- instances and the outbox ----------------------------------------- */

int td_journey_instance_get(td_journey_engine_t *eng, const char *id, int64_t instance,
                            json_t **out, td_err_t *err)
{
    td_store_conn_t *c = td_store_acquire(eng->store);
    td_store_jinstance_t row;
    int rc = td_store_jinstance_get(c, instance, &row);

    td_store_release(eng->store, c);
    *out = NULL;
    if (rc == TD_OK && strcmp(row.journey_id, id) != 0) {
        td_store_jinstance_release(&row);
        rc = TD_ENOTFOUND;
    }
    if (rc == TD_ENOTFOUND) {
        return td_err_set(err, rc, "instance", "journey \"%s\" has no instance %" PRId64, id,
                          instance);
    }
    if (rc != TD_OK) {
        return td_err_set(err, rc, "", "cannot read the instance (%s)", td_strerror(rc));
    }
    *out = td_journey__instance_json(&row);
    td_store_jinstance_release(&row);
    return TD_OK;
}

static int list_json(td_journey_engine_t *eng, const char *journey_id, int64_t profile_id,
                     int state, int64_t before, int limit, json_t **out, td_err_t *err)
{
    td_store_conn_t *c = td_store_acquire(eng->store);
    td_store_jinstance_t *rows = NULL;
    int n = 0;
    int rc = td_store_jinstance_list(c, journey_id, profile_id, state, before, limit, &rows, &n);

    td_store_release(eng->store, c);
    if (rc != TD_OK) {
        return td_err_set(err, rc, "", "cannot list instances (%s)", td_strerror(rc));
    }
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(list, td_journey__instance_json(&rows[i]));
    }
    *out = json_pack("{s:o}", "instances", list);
    if (n == limit && n > 0) {
        json_object_set_new(*out, "next_before", json_integer(rows[n - 1].id));
    }
    td_store_jinstances_free(rows, n);
    return TD_OK;
}

int td_journey_instances_list(td_journey_engine_t *eng, const char *id, const char *state,
                              int64_t before_id, int limit, json_t **out, td_err_t *err)
{
    int st = 0;

    *out = NULL;
    if (state && strcmp(state, "running") == 0) {
        st = 1;
    } else if (state && strcmp(state, "ended") == 0) {
        st = 2;
    } else if (state && *state) {
        return td_err_set(err, TD_EINVAL, "state", "state must be running or ended");
    }
    return list_json(eng, id, 0, st, before_id, limit > 0 && limit <= 1000 ? limit : 100, out, err);
}

int td_journey_profile_instances(td_journey_engine_t *eng, int64_t profile_id, json_t **out,
                                 td_err_t *err)
{
    *out = NULL;
    return list_json(eng, NULL, profile_id, 0, 0, 1000, out, err);
}

int td_journey_outbox_list(td_journey_engine_t *eng, int64_t instance, const char *status,
                           int limit, json_t **out, td_err_t *err)
{
    td_store_conn_t *c = td_store_acquire(eng->store);
    td_store_outbox_t *rows = NULL;
    int n = 0;
    int rc = td_store_outbox_list(c, instance, status && *status ? status : NULL,
                                  limit > 0 && limit <= 1000 ? limit : 100, &rows, &n);

    td_store_release(eng->store, c);
    *out = NULL;
    if (rc != TD_OK) {
        return td_err_set(err, rc, "", "cannot list the outbox (%s)", td_strerror(rc));
    }
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        const td_store_outbox_t *m = &rows[i];
        json_t *o = json_pack(
            "{s:I, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:s, s:s, s:s, s:i, s:o}", "id",
            (json_int_t)m->id, "message_id", m->message_id, "channel", m->channel, "journey",
            m->journey_id, "journey_version", (json_int_t)m->journey_version, "instance",
            (json_int_t)m->instance_id, "step", m->step, "profile_id", (json_int_t)m->profile_id,
            "recipient", m->recipient, "template", m->template_id, "status", m->status, "attempts",
            m->attempts, "created", time_json(m->created_ms));
        json_object_set_new(o, "data", parse_or(m->data, json_object()));
        if (m->last_error) {
            json_object_set_new(o, "last_error", json_string(m->last_error));
        }
        if (m->sent_ms) {
            json_object_set_new(o, "sent", time_json(m->sent_ms));
        }
        json_array_append_new(list, o);
    }
    td_store_outboxes_free(rows, n);
    *out = json_pack("{s:o}", "messages", list);
    return TD_OK;
}
