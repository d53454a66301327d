/* A small metrics registry: an open-addressing table of series under one
 * mutex. Series are never removed, so label values must come from small
 * sets (routes, statuses, event types are capped by the callers). */
#include "util/metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "util/banned.h"

#define MAX_SERIES 4096
#define N_BUCKETS  12

static const double bucket_bounds[N_BUCKETS] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                 0.01,   0.025,   0.05,   0.1,   0.5,    2.5 };

typedef struct series {
    char *name;
    char *labels;
    int is_histogram;
    int64_t count;
    double sum;
    int64_t buckets[N_BUCKETS];
} series_t;

typedef struct desc {
    char *name, *type, *help;
} desc_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static series_t *table[MAX_SERIES];
static int n_series;
static desc_t descs[128];
static int n_descs;

static uint64_t hash2(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *a; a++) {
        h = (h ^ (unsigned char)*a) * 1099511628211ULL;
    }
    h = (h ^ '{') * 1099511628211ULL;
    for (; *b; b++) {
        h = (h ^ (unsigned char)*b) * 1099511628211ULL;
    }
    return h;
}

/* Caller holds mu. Returns NULL when the table is full (the series is then
 * dropped rather than growing without bound). */
static series_t *find(const char *name, const char *labels, int is_histogram)
{
    uint64_t h = hash2(name, labels);

    for (int i = 0; i < MAX_SERIES; i++) {
        series_t **slot = &table[(h + (uint64_t)i) % MAX_SERIES];
        if (*slot == NULL) {
            if (n_series >= MAX_SERIES * 3 / 4) {
                return NULL;
            }
            *slot = td_xcalloc(1, sizeof(series_t));
            (*slot)->name = td_xstrdup(name);
            (*slot)->labels = td_xstrdup(labels);
            (*slot)->is_histogram = is_histogram;
            n_series++;
            return *slot;
        }
        if (strcmp((*slot)->name, name) == 0 && strcmp((*slot)->labels, labels) == 0) {
            return *slot;
        }
    }
    return NULL;
}

void td_metrics_describe(const char *name, const char *type, const char *help)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n_descs; i++) {
        if (strcmp(descs[i].name, name) == 0) {
            pthread_mutex_unlock(&mu);
            return;
        }
    }
    if (n_descs < (int)TD_ARRAY_LEN(descs)) {
        descs[n_descs++] = (desc_t){ td_xstrdup(name), td_xstrdup(type), td_xstrdup(help) };
    }
    pthread_mutex_unlock(&mu);
}

void td_metrics_add(const char *name, const char *labels, int64_t by)
{
    pthread_mutex_lock(&mu);
    series_t *s = find(name, labels, 0);
    if (s) {
        s->count += by;
    }
    pthread_mutex_unlock(&mu);
}

int64_t td_metrics_get(const char *name, const char *labels)
{
    int64_t v;

    pthread_mutex_lock(&mu);
    series_t *s = find(name, labels, 0);
    v = s ? s->count : 0;
    pthread_mutex_unlock(&mu);
    return v;
}

void td_metrics_observe(const char *name, const char *labels, double seconds)
{
    pthread_mutex_lock(&mu);
    series_t *s = find(name, labels, 1);
    if (s) {
        s->count++;
        s->sum += seconds;
        for (int i = 0; i < N_BUCKETS; i++) {
            if (seconds <= bucket_bounds[i]) {
                s->buckets[i]++;
            }
        }
    }
    pthread_mutex_unlock(&mu);
}

static int cmp_series(const void *a, const void *b)
{
    const series_t *x = *(series_t *const *)a, *y = *(series_t *const *)b;
    int c = strcmp(x->name, y->name);

    return c ? c : strcmp(x->labels, y->labels);
}

static void render_labels(td_buf_t *out, const char *labels, const char *extra)
{
    if (!*labels && !extra) {
        return;
    }
    td_buf_addf(out, "{%s%s%s}", labels, *labels && extra ? "," : "", extra ? extra : "");
}

void td_metrics_render(td_buf_t *out)
{
    series_t *sorted[MAX_SERIES];
    int n = 0;
    const char *last = "";

    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_SERIES; i++) {
        if (table[i]) {
            sorted[n++] = table[i];
        }
    }
    qsort(sorted, (size_t)n, sizeof(series_t *), cmp_series);
    for (int i = 0; i < n; i++) {
        series_t *s = sorted[i];
        if (strcmp(s->name, last) != 0) {
            for (int d = 0; d < n_descs; d++) {
                if (strcmp(descs[d].name, s->name) == 0) {
                    td_buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", s->name, descs[d].help,
                                s->name, descs[d].type);
                }
            }
            last = s->name;
        }
        if (!s->is_histogram) {
            td_buf_adds(out, s->name);
            render_labels(out, s->labels, NULL);
            td_buf_addf(out, " %lld\n", (long long)s->count);
            continue;
        }
        for (int b = 0; b < N_BUCKETS; b++) {
            char le[32];
            snprintf(le, sizeof(le), "le=\"%g\"", bucket_bounds[b]);
            td_buf_addf(out, "%s_bucket", s->name);
            render_labels(out, s->labels, le);
            td_buf_addf(out, " %lld\n", (long long)s->buckets[b]);
        }
        td_buf_addf(out, "%s_bucket", s->name);
        render_labels(out, s->labels, "le=\"+Inf\"");
        td_buf_addf(out, " %lld\n%s_sum", (long long)s->count, s->name);
        render_labels(out, s->labels, NULL);
        td_buf_addf(out, " %.6f\n%s_count", s->sum, s->name);
        render_labels(out, s->labels, NULL);
        td_buf_addf(out, " %lld\n", (long long)s->count);
    }
    pthread_mutex_unlock(&mu);
}
