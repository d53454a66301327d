/* The follower: with several nodes on one PostgreSQL, each node's model
 * learns live only from the events that node ingests; this thread scans the
 * events table for the rest and feeds them to the model. It is not a
 * rebuild (that is the start-up replay in recs_service.c) and does nothing
 * on SQLite, where one process is the only writer.
 *
 * PostgreSQL hands out seqs when a row is inserted, not when it commits: a
 * transaction holding seq 10 can commit after one holding 11. So reading
 * "everything after the highest seq seen" would skip 10 for good. Instead
 * the seqs skipped over are kept as gaps (ranges, oldest first) and probed
 * on every poll until they appear or are older than GAP_GRACE_US; most
 * never appear (rolled back, or taken by a duplicate event_id). The events
 * this node stored itself are marked by the ingest transaction (a seq set)
 * and skipped, so no event is counted twice. */
#include "api/recs_follow.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/banned.h"

#define SCAN_BATCH 5000
#define PROBE_MIN  64        /* rows read by one probe of a small gap */
#define MAX_PROBES 32        /* probes per poll; the rest wait for the next poll */
#define MAX_RANGES 4096      /* gap ranges kept; past it the oldest are given up */
#define MINE_MAX   (1 << 20) /* own seqs awaiting the follower; past it they are counted twice */
/* A transaction still open this long after its seq was skipped over is not
 * waited for: ingest groups commit within seconds, even under load. */
#define GAP_GRACE_US (60LL * 1000 * 1000)

typedef struct gap {
    int64_t lo, hi;     /* missing seqs lo..hi */
    int64_t noticed_us; /* monotonic time the forward scan skipped them */
} gap_t;

struct td_recs_follow {
    td_store_t *store;
    td_recs_follow_apply_fn apply;
    td_recs_follow_tick_fn tick;
    void *ctx;
    /* the thread's own (and, before _start, the replay's) */
    int64_t high; /* highest seq seen */
    gap_t *gaps;  /* ascending by seq, hence by noticed_us */
    int n_gaps;
    int64_t cursor; /* where the probes of the next poll begin */
    int64_t *found; /* seqs found by this poll's probes */
    size_t n_found, cap_found;
    int64_t last_err_us;
    /* shared with the ingest writers */
    pthread_mutex_t mu;
    int64_t low;   /* seqs below it are given up: not marked as mine */
    int64_t *mine; /* open addressing, 0 = empty */
    size_t mine_cap, mine_n;
    bool mine_full_logged;
    /* the thread */
    int interval_ms;
    pthread_t thread;
    bool started;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    bool stop;
};

/* ------------------------------------------------------------------------
 * The set of own seqs: linear probing, deletion by backward shift (no
 * tombstones, so a set that is filled and emptied all day stays fast).
 */

static size_t home_of(int64_t seq, size_t cap)
{
    uint64_t h = (uint64_t)seq * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h ^ (h >> 31)) & (cap - 1);
}

static void mine_insert(td_recs_follow_t *f, int64_t seq)
{
    size_t i = home_of(seq, f->mine_cap);

    while (f->mine[i] != 0) {
        if (f->mine[i] == seq) {
            return;
        }
        i = (i + 1) & (f->mine_cap - 1);
    }
    f->mine[i] = seq;
    f->mine_n++;
}

static void mine_grow(td_recs_follow_t *f)
{
    int64_t *old = f->mine;
    size_t old_cap = f->mine_cap;

    f->mine_cap = old_cap ? old_cap * 2 : 1024;
    f->mine = td_xcalloc(f->mine_cap, sizeof(*f->mine));
    f->mine_n = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i] != 0) {
            mine_insert(f, old[i]);
        }
    }
    free(old);
}

static void mine_remove_at(td_recs_follow_t *f, size_t i)
{
    size_t mask = f->mine_cap - 1, j = i;

    for (;;) {
        j = (j + 1) & mask;
        if (f->mine[j] == 0) {
            break;
        }
        size_t k = home_of(f->mine[j], f->mine_cap);
        /* the entry at j may stay when its home lies cyclically in (i, j] */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            f->mine[i] = f->mine[j];
            i = j;
        }
    }
    f->mine[i] = 0;
    f->mine_n--;
}

/* Called with mu held. */
static bool mine_take(td_recs_follow_t *f, int64_t seq)
{
    if (f->mine_n == 0) {
        return false;
    }
    for (size_t i = home_of(seq, f->mine_cap); f->mine[i] != 0; i = (i + 1) & (f->mine_cap - 1)) {
        if (f->mine[i] == seq) {
            mine_remove_at(f, i);
            return true;
        }
    }
    return false;
}

void td_recs__follow_mine(td_recs_follow_t *f, int64_t seq)
{
    if (f == NULL || seq <= 0) {
        return;
    }
    pthread_mutex_lock(&f->mu);
    if (seq < f->low) {
        /* given up by the follower already: it will never skip it */
    } else if (f->mine_n >= MINE_MAX) {
        if (!f->mine_full_logged) {
            f->mine_full_logged = true;
            td_log(TD_LOG_WARN, "reco", "follow: behind by %d own events; counting some twice",
                   MINE_MAX);
        }
    } else {
        if (2 * (f->mine_n + 1) > f->mine_cap) {
            mine_grow(f);
        }
        mine_insert(f, seq);
    }
    pthread_mutex_unlock(&f->mu);
}

/* Publishes the new low-water mark and forgets own seqs below it (their
 * transactions rolled back, or outlived the grace). */
static void publish_low(td_recs_follow_t *f)
{
    int64_t low = f->n_gaps > 0 ? f->gaps[0].lo : f->high + 1;

    pthread_mutex_lock(&f->mu);
    if (low > f->low) {
        f->low = low;
        for (size_t i = 0; f->mine_n > 0 && i < f->mine_cap;) {
            if (f->mine[i] != 0 && f->mine[i] < low) {
                mine_remove_at(f, i); /* may shift another entry into i */
            } else {
                i++;
            }
        }
    }
    pthread_mutex_unlock(&f->mu);
}

/* ------------------------------------------------------------------------
 * Gaps
 */

static void drop_gaps(td_recs_follow_t *f, int k)
{
    int64_t seqs = 0;

    for (int i = 0; i < k; i++) {
        seqs += f->gaps[i].hi - f->gaps[i].lo + 1;
    }
    memmove(f->gaps, f->gaps + k, sizeof(*f->gaps) * (size_t)(f->n_gaps - k));
    f->n_gaps -= k;
    td_metrics_add("tandem_reco_follow_gaps_given_up_total", "", seqs);
}

/* Rows arrive in seq order: whatever lies between the highest seq seen and
 * this one was skipped over. */
static void saw(td_recs_follow_t *f, int64_t seq, int64_t now_us)
{
    if (seq <= f->high) {
        return;
    }
    if (seq > f->high + 1) {
        if (f->n_gaps == MAX_RANGES) {
            drop_gaps(f, MAX_RANGES / 4); /* one memmove for many drops */
        }
        f->gaps[f->n_gaps++] = (gap_t){ f->high + 1, seq - 1, now_us };
    }
    f->high = seq;
}

void td_recs__follow_saw(td_recs_follow_t *f, int64_t seq)
{
    if (f != NULL) {
        saw(f, seq, td_mono_us());
    }
}

static bool in_gap(const td_recs_follow_t *f, int64_t seq, int *from)
{
    while (*from < f->n_gaps && f->gaps[*from].hi < seq) {
        (*from)++;
    }
    return *from < f->n_gaps && f->gaps[*from].lo <= seq;
}

/* Takes the found seqs (ascending) out of the gap ranges. */
static void subtract_found(td_recs_follow_t *f)
{
    gap_t *out;
    int n = 0;
    size_t k = 0;

    if (f->n_found == 0) {
        return;
    }
    out = td_xcalloc((size_t)f->n_gaps + f->n_found + 1, sizeof(*out));
    for (int i = 0; i < f->n_gaps; i++) {
        gap_t g = f->gaps[i];
        while (k < f->n_found && f->found[k] < g.lo) {
            k++;
        }
        while (k < f->n_found && f->found[k] <= g.hi) {
            if (f->found[k] > g.lo) {
                out[n++] = (gap_t){ g.lo, f->found[k] - 1, g.noticed_us };
            }
            g.lo = f->found[k] + 1;
            k++;
        }
        if (g.lo <= g.hi) {
            out[n++] = g;
        }
    }
    /* splits can only outgrow the cap by the number of finds: keep the newest */
    if (n > MAX_RANGES) {
        int64_t seqs = 0;
        for (int i = 0; i < n - MAX_RANGES; i++) {
            seqs += out[i].hi - out[i].lo + 1;
        }
        memmove(out, out + (n - MAX_RANGES), sizeof(*out) * MAX_RANGES);
        n = MAX_RANGES;
        td_metrics_add("tandem_reco_follow_gaps_given_up_total", "", seqs);
    }
    memcpy(f->gaps, out, sizeof(*out) * (size_t)n);
    f->n_gaps = n;
    f->n_found = 0;
    free(out);
}

/* ------------------------------------------------------------------------
 * One poll
 */

static bool stopping(td_recs_follow_t *f)
{
    return __atomic_load_n(&f->stop, __ATOMIC_ACQUIRE);
}

static bool store_failed(td_recs_follow_t *f, int rc)
{
    if (rc == TD_OK) {
        return false;
    }
    if (td_mono_us() - f->last_err_us > 60LL * 1000 * 1000) {
        f->last_err_us = td_mono_us();
        td_log(TD_LOG_WARN, "reco", "follow: cannot read events: %s", td_strerror(rc));
    }
    return true;
}

static int64_t feed(td_recs_follow_t *f, const td_store_scan_row_t *row)
{
    pthread_mutex_lock(&f->mu);
    bool own = mine_take(f, row->seq);
    pthread_mutex_unlock(&f->mu);
    if (own) {
        return 0;
    }
    return f->apply(f->ctx, row) ? 1 : 0;
}

/* Everything after the highest seq seen. */
static int forward(td_recs_follow_t *f, td_store_conn_t *c, int64_t *applied)
{
    int rc;

    do {
        td_store_scan_row_t *rows = NULL;
        int n = 0;
        if ((rc = td_store_events_scan(c, f->high, SCAN_BATCH, &rows, &n)) != TD_OK) {
            return rc;
        }
        int64_t now_us = td_mono_us();
        for (int i = 0; i < n; i++) {
            if (rows[i].seq <= f->high) {
                continue;
            }
            saw(f, rows[i].seq, now_us);
            *applied += feed(f, &rows[i]);
        }
        td_store_scan_rows_free(rows, n);
        if (n < SCAN_BATCH) {
            break;
        }
    } while (!stopping(f));
    return TD_OK;
}

static void add_found(td_recs_follow_t *f, int64_t seq)
{
    if (f->n_found == f->cap_found) {
        f->cap_found = f->cap_found ? f->cap_found * 2 : 256;
        f->found = td_xrealloc(f->found, f->cap_found * sizeof(*f->found));
    }
    f->found[f->n_found++] = seq;
}

/* Reads from each gap onwards; the scan has no upper bound, so a probe
 * asks for about as many rows as the gap is long. Probes go up the seqs
 * and resume next poll where this one stopped. */
static int probe(td_recs_follow_t *f, td_store_conn_t *c, int64_t *applied)
{
    size_t found_before = f->n_found;
    int i = 0, probes = 0, rc = TD_OK;
    int64_t pos;

    while (i < f->n_gaps && f->gaps[i].hi < f->cursor) {
        i++;
    }
    if (i == f->n_gaps) {
        i = 0;
    }
    pos = i < f->n_gaps ? (f->gaps[i].lo > f->cursor ? f->gaps[i].lo : f->cursor) : 0;
    while (i < f->n_gaps && probes < MAX_PROBES && !stopping(f)) {
        int64_t want = f->gaps[i].hi - pos + 1 + PROBE_MIN;
        int limit = want > SCAN_BATCH ? SCAN_BATCH : (int)want;
        td_store_scan_row_t *rows = NULL;
        int n = 0, g = i;

        if ((rc = td_store_events_scan(c, pos - 1, limit, &rows, &n)) != TD_OK) {
            break;
        }
        probes++;
        int64_t covered = n < limit ? f->high : rows[n - 1].seq;
        for (int k = 0; k < n && rows[k].seq <= f->high; k++) {
            if (in_gap(f, rows[k].seq, &g)) {
                add_found(f, rows[k].seq);
                *applied += feed(f, &rows[k]);
            }
        }
        td_store_scan_rows_free(rows, n);
        pos = covered + 1;
        while (i < f->n_gaps && f->gaps[i].hi < pos) {
            i++;
        }
        if (i < f->n_gaps && f->gaps[i].lo > pos) {
            pos = f->gaps[i].lo;
        }
    }
    f->cursor = i < f->n_gaps ? pos : 0;
    if (f->n_found > found_before) {
        td_metrics_add("tandem_reco_follow_late_total", "", (int64_t)(f->n_found - found_before));
    }
    subtract_found(f);
    return rc;
}

static void expire(td_recs_follow_t *f)
{
    int64_t cutoff = td_mono_us() - GAP_GRACE_US;
    int k = 0;

    while (k < f->n_gaps && f->gaps[k].noticed_us < cutoff) {
        k++;
    }
    if (k > 0) {
        drop_gaps(f, k);
    }
}

static void poll_once(td_recs_follow_t *f)
{
    td_store_conn_t *c = td_store_acquire(f->store);
    int64_t applied = 0;

    if (!store_failed(f, forward(f, c, &applied)) && f->n_gaps > 0 && !stopping(f)) {
        (void)store_failed(f, probe(f, c, &applied));
    }
    if (f->tick && !stopping(f)) {
        f->tick(f->ctx, c);
    }
    td_store_release(f->store, c);
    expire(f);
    publish_low(f);
    if (applied > 0) {
        td_metrics_add("tandem_reco_follow_events_total", "", applied);
    }
}

static void *follow_main(void *arg)
{
    td_recs_follow_t *f = arg;

    pthread_mutex_lock(&f->stop_mu);
    while (!f->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += f->interval_ms / 1000;
        ts.tv_nsec += (long)(f->interval_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&f->stop_cv, &f->stop_mu, &ts);
        if (f->stop) {
            break;
        }
        pthread_mutex_unlock(&f->stop_mu);
        poll_once(f);
        pthread_mutex_lock(&f->stop_mu);
    }
    pthread_mutex_unlock(&f->stop_mu);
    return NULL;
}

/* ------------------------------------------------------------------------
 * Life cycle
 */

td_recs_follow_t *td_recs__follow_new(td_store_t *store, td_recs_follow_apply_fn apply, void *ctx)
{
    td_recs_follow_t *f = td_xcalloc(1, sizeof(*f));
    pthread_condattr_t ca;

    f->store = store;
    f->apply = apply;
    f->ctx = ctx;
    f->gaps = td_xcalloc(MAX_RANGES, sizeof(*f->gaps));
    f->last_err_us = -GAP_GRACE_US * 2;
    pthread_mutex_init(&f->mu, NULL);
    pthread_mutex_init(&f->stop_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->stop_cv, &ca);
    pthread_condattr_destroy(&ca);
    mine_grow(f);
    return f;
}

void td_recs__follow_on_poll(td_recs_follow_t *f, td_recs_follow_tick_fn tick)
{
    f->tick = tick;
}

int td_recs__follow_start(td_recs_follow_t *f, int interval_ms)
{
    td_metrics_describe("tandem_reco_follow_events_total", "counter",
                        "events stored by other nodes that this node's model learnt");
    td_metrics_describe("tandem_reco_follow_late_total", "counter",
                        "events that committed after an event with a higher seq was read");
    td_metrics_describe("tandem_reco_follow_gaps_given_up_total", "counter",
                        "skipped-over event seqs no longer waited for (rolled back, duplicates, "
                        "or still uncommitted after a minute)");
    f->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    publish_low(f);
    if (pthread_create(&f->thread, NULL, follow_main, f) != 0) {
        return TD_EIO;
    }
    f->started = true;
    td_log(TD_LOG_INFO, "reco", "following other nodes' events every_ms=%d after_seq=%lld gaps=%d",
           f->interval_ms, (long long)f->high, f->n_gaps);
    return TD_OK;
}

void td_recs__follow_free(td_recs_follow_t *f)
{
    if (f == NULL) {
        return;
    }
    if (f->started) {
        pthread_mutex_lock(&f->stop_mu);
        __atomic_store_n(&f->stop, true, __ATOMIC_RELEASE);
        pthread_cond_signal(&f->stop_cv);
        pthread_mutex_unlock(&f->stop_mu);
        pthread_join(f->thread, NULL);
    }
    pthread_mutex_destroy(&f->mu);
    pthread_mutex_destroy(&f->stop_mu);
    pthread_cond_destroy(&f->stop_cv);
    free(f->gaps);
    free(f->found);
    free(f->mine);
    free(f);
}
