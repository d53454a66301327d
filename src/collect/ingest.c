/* The group-commit writer. Request threads queue parsed batches; one thread
 * writes everything queued so far in a single transaction and completes each
 * submission only after COMMIT returned, so a 2xx reply always means the
 * events are on disk (redis's "persist before reply, in a group fashion").
 *
 * A storage error in one request fails that request alone: a group is first
 * written without savepoints (each is a round trip on PostgreSQL); when a
 * request fails, the group is undone and written again with a savepoint
 * around each request. */
#include "collect/collect.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "profile/profile.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/banned.h"

typedef struct job {
    td_event_batch_t *batch;
    int64_t received_ms;
    td_ingest_done_fn done;
    void *ctx;
    int rc;
    int64_t *seqs;
    int64_t *pids;
    bool *dup;
    char **docs; /* JSON documents, made on the submitting thread */
    int n;       /* slots in batch, docs, seqs, pids and dup */
    struct job *next;
} job_t;

typedef struct listener {
    td_ingest_listener_fn fn;
    void *ctx;
} listener_t;

typedef struct tx_hook {
    td_ingest_tx_hook_fn fn;
    void *ctx;
} tx_hook_t;

struct td_ingest {
    td_store_t *store;
    td_ingest_options_t opt;
    pthread_t threads[TD_INGEST_MAX_WRITERS];
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *head, *tail;
    bool stopping;
    listener_t listeners[8];
    int n_listeners;
    tx_hook_t tx_hooks[8];
    int n_tx_hooks;
};

static int write_job(td_ingest_t *ing, td_store_conn_t *c, job_t *j, bool isolate)
{
    td_event_batch_t *b = j->batch;
    int rc;

    if (isolate && (rc = td_store_savepoint(c)) != TD_OK) {
        return rc;
    }
    for (int i = 0; i < b->n; i++) {
        td_event_slot_t *s = &b->slots[i];
        if (s->err.code != TD_OK) {
            continue;
        }
        rc = td_profile_apply(c, &s->ev, j->docs[i], j->received_ms, ing->opt.viewed_max,
                              &j->pids[i], &j->seqs[i]);
        if (rc == TD_ECONFLICT) {
            j->dup[i] = true; /* the same event_id was stored before: a retry */
            rc = TD_OK;
        } else {
            for (int h = 0; rc == TD_OK && h < ing->n_tx_hooks; h++) {
                rc = ing->tx_hooks[h].fn(ing->tx_hooks[h].ctx, c, &s->ev, j->pids[i], j->seqs[i],
                                         j->received_ms);
            }
        }
        if (rc != TD_OK) {
            if (isolate) {
                td_store_savepoint_rollback(c);
            }
            return rc;
        }
    }
    return isolate ? td_store_savepoint_release(c) : TD_OK;
}

static void notify_listeners(td_ingest_t *ing, job_t *j)
{
    const td_event_t *evs[64];
    int64_t pids[64];
    int n = 0;

    for (int i = 0; i < j->batch->n; i++) {
        if (j->batch->slots[i].err.code != TD_OK || j->dup[i]) {
            continue;
        }
        evs[n] = &j->batch->slots[i].ev;
        pids[n++] = j->pids[i];
        if (n == (int)TD_ARRAY_LEN(evs)) {
            for (int l = 0; l < ing->n_listeners; l++) {
                ing->listeners[l].fn(ing->listeners[l].ctx, evs, pids, n);
            }
            n = 0;
        }
    }
    if (n > 0) {
        for (int l = 0; l < ing->n_listeners; l++) {
            ing->listeners[l].fn(ing->listeners[l].ctx, evs, pids, n);
        }
    }
}

/* Runs on the submitting thread: serialising the documents there keeps the
 * single writer thread for the database work alone. */
static void prepare_job(job_t *j)
{
    size_t n = (size_t)(j->batch->n ? j->batch->n : 1);

    j->seqs = td_xcalloc(n, sizeof(int64_t));
    j->pids = td_xcalloc(n, sizeof(int64_t));
    j->dup = td_xcalloc(n, sizeof(bool));
    j->docs = td_xcalloc(n, sizeof(char *));
    j->n = j->batch->n;
    for (int i = 0; i < j->n; i++) {
        if (j->batch->slots[i].err.code == TD_OK) {
            j->docs[i] = td_event_to_json(&j->batch->slots[i].ev, j->received_ms);
        }
    }
    j->rc = TD_OK;
}

static void release_job(job_t *j)
{
    for (int i = 0; i < j->n; i++) {
        free(j->docs[i]);
    }
    free(j->docs);
    free(j->seqs);
    free(j->pids);
    free(j->dup);
}

/* One attempt at writing jobs [first, end) in one transaction. Returns the
 * group's outcome; TD_EBUSY (a deadlock or lock timeout between writers)
 * means nothing was kept and the group can be tried again. Without isolate,
 * a failed job undoes the whole group, which returns RETRY_ISOLATED. */
#define RETRY_ISOLATED 1
static int try_group(td_ingest_t *ing, td_store_conn_t *c, job_t *first, job_t *end, int *n_events,
                     bool isolate)
{
    bool busy = false, failed = false;
    int rc = td_store_begin(c);

    *n_events = 0;
    for (job_t *j = first; j != end; j = j->next) {
        j->rc = rc;
        if (rc == TD_OK && !failed) {
            memset(j->dup, 0, sizeof(bool) * (size_t)(j->n ? j->n : 1));
            j->rc = write_job(ing, c, j, isolate);
            busy |= j->rc == TD_EBUSY;
            /* the transaction is unusable after a failure without a savepoint */
            failed = !isolate && j->rc != TD_OK;
            *n_events += td_event_batch_n_ok(j->batch);
        }
    }
    if (rc == TD_OK && busy) {
        td_store_rollback(c);
        return TD_EBUSY;
    }
    if (rc == TD_OK && failed) {
        td_store_rollback(c);
        /* a job alone keeps its own failure: nothing else to save */
        return first->next == end ? TD_OK : RETRY_ISOLATED;
    }
    if (rc == TD_OK && (rc = td_store_commit(c)) != TD_OK) {
        td_store_rollback(c);
    }
    return rc;
}

/* Writes jobs [first, end) in one transaction; sets each job's rc. */
static void write_group(td_ingest_t *ing, td_store_conn_t *c, job_t *first, job_t *end)
{
    int64_t t0 = td_mono_us();
    int n_events = 0;
    int rc = TD_EBUSY;
    bool isolate = false;

    /* A deadlock with another writer (several nodes, or writer threads, on
     * PostgreSQL) undoes the whole group: wait a random moment, so the two
     * do not meet again, and try again. */
    for (int attempt = 0; attempt < 3 && (rc == TD_EBUSY || rc == RETRY_ISOLATED); attempt++) {
        if (rc == RETRY_ISOLATED) {
            isolate = true; /* not a lost attempt: a job failed, try each apart */
            attempt--;
        } else if (attempt > 0) {
            usleep((useconds_t)(1000 * attempt * (1 + rand() % 8)));
        }
        rc = try_group(ing, c, first, end, &n_events, isolate);
    }
    /* Still meeting: the smaller the transaction, the fewer rows two
     * writers can hold in opposite orders, so each request goes alone. */
    if (rc == TD_EBUSY && first->next != end) {
        rc = TD_OK;
        for (job_t *j = first; j != end; j = j->next) {
            int one = TD_EBUSY, n = 0;
            for (int attempt = 0; attempt < 4 && one == TD_EBUSY; attempt++) {
                if (attempt > 0) {
                    usleep((useconds_t)(1000 * attempt * (1 + rand() % 8)));
                }
                job_t *next = j->next;
                one = try_group(ing, c, j, next, &n, false);
            }
            if (one != TD_OK) {
                j->rc = one;
            }
            n_events += n;
        }
    }
    for (job_t *j = first; j != end; j = j->next) {
        if (rc != TD_OK) {
            j->rc = rc; /* the commit failed: nothing of the group is stored */
        }
        if (j->rc == TD_OK) {
            notify_listeners(ing, j);
        }
    }
    if (rc != TD_OK) {
        td_log(TD_LOG_ERROR, "collect", "group_commit failed rc=%s events=%d", td_strerror(rc),
               n_events);
    }
    td_metrics_observe("tandem_ingest_commit_seconds", "", (double)(td_mono_us() - t0) / 1e6);
}

static void finish_job(job_t *j)
{
    j->done(j->ctx, j->rc, j->seqs, j->dup);
    release_job(j); /* touches nothing of the batch, which done may have freed */
    free(j);
}

static void *writer_main(void *arg)
{
    td_ingest_t *ing = arg;
    td_store_conn_t *c = td_store_acquire(ing->store);

    pthread_mutex_lock(&ing->mu);
    for (;;) {
        while (ing->head == NULL && !ing->stopping) {
            pthread_cond_wait(&ing->cv, &ing->mu);
        }
        if (ing->head == NULL) {
            break;
        }
        /* take as many jobs as fit in one group */
        job_t *first = ing->head, *end = first;
        int n = 0;
        while (end && (n == 0 || n + end->batch->n <= ing->opt.commit_max_events)) {
            n += end->batch->n;
            end = end->next;
        }
        ing->head = end;
        if (end == NULL) {
            ing->tail = NULL;
        }
        pthread_mutex_unlock(&ing->mu);

        write_group(ing, c, first, end);
        while (first != end) {
            job_t *next = first->next;
            finish_job(first);
            first = next;
        }
        pthread_mutex_lock(&ing->mu);
    }
    pthread_mutex_unlock(&ing->mu);
    td_store_release(ing->store, c);
    return NULL;
}

int td_ingest_open(td_store_t *store, const td_ingest_options_t *opt, td_ingest_t **out)
{
    td_ingest_t *ing = td_xcalloc(1, sizeof(*ing));

    ing->store = store;
    ing->opt = *opt;
    pthread_mutex_init(&ing->mu, NULL);
    pthread_cond_init(&ing->cv, NULL);
    td_metrics_describe("tandem_ingest_commit_seconds", "histogram",
                        "time to write and commit one group of event batches");
    int n = opt->writers < 1                       ? 1
            : opt->writers > TD_INGEST_MAX_WRITERS ? TD_INGEST_MAX_WRITERS
                                                   : opt->writers;
    for (ing->n_threads = 0; ing->n_threads < n; ing->n_threads++) {
        if (pthread_create(&ing->threads[ing->n_threads], NULL, writer_main, ing) != 0) {
            td_log(TD_LOG_ERROR, "collect", "pthread_create() failed for an ingest writer");
            td_ingest_close(ing);
            return TD_EIO;
        }
    }
    *out = ing;
    return TD_OK;
}

void td_ingest_close(td_ingest_t *ing)
{
    if (ing == NULL) {
        return;
    }
    pthread_mutex_lock(&ing->mu);
    ing->stopping = true;
    pthread_cond_broadcast(&ing->cv);
    pthread_mutex_unlock(&ing->mu);
    for (int i = 0; i < ing->n_threads; i++) {
        pthread_join(ing->threads[i], NULL);
    }
    pthread_mutex_destroy(&ing->mu);
    pthread_cond_destroy(&ing->cv);
    free(ing);
}

void td_ingest_add_listener(td_ingest_t *ing, td_ingest_listener_fn fn, void *ctx)
{
    if (ing->n_listeners == (int)TD_ARRAY_LEN(ing->listeners)) {
        TD_BUG("too many ingest listeners");
    }
    ing->listeners[ing->n_listeners++] = (listener_t){ fn, ctx };
}

void td_ingest_add_tx_hook(td_ingest_t *ing, td_ingest_tx_hook_fn fn, void *ctx)
{
    if (ing->n_tx_hooks == (int)TD_ARRAY_LEN(ing->tx_hooks)) {
        TD_BUG("too many ingest hooks");
    }
    ing->tx_hooks[ing->n_tx_hooks++] = (tx_hook_t){ fn, ctx };
}

void td_ingest_submit(td_ingest_t *ing, td_event_batch_t *batch, int64_t received_ms,
                      td_ingest_done_fn done, void *ctx)
{
    job_t *j = td_xcalloc(1, sizeof(*j));

    j->batch = batch;
    j->received_ms = received_ms;
    j->done = done;
    j->ctx = ctx;
    prepare_job(j);
    pthread_mutex_lock(&ing->mu);
    if (ing->tail) {
        ing->tail->next = j;
    } else {
        ing->head = j;
    }
    ing->tail = j;
    pthread_cond_signal(&ing->cv);
    pthread_mutex_unlock(&ing->mu);
}

int td_ingest_write_sync(td_ingest_t *ing, td_event_batch_t *batch, int64_t received_ms,
                         int64_t *seqs, bool *dup)
{
    job_t j = { .batch = batch, .received_ms = received_ms };
    td_store_conn_t *c = td_store_acquire(ing->store);

    prepare_job(&j);
    write_group(ing, c, &j, NULL);
    td_store_release(ing->store, c);
    if (seqs) {
        memcpy(seqs, j.seqs, sizeof(int64_t) * (size_t)batch->n);
    }
    if (dup) {
        memcpy(dup, j.dup, sizeof(bool) * (size_t)batch->n);
    }
    release_job(&j);
    return j.rc;
}
