/* Items with Similar Attributes: a tf-idf index over item text (name words
 * and word pairs, categories, brand, message, string custom attributes) and
 * cosine similarity between items, as Target describes its content
 * similarity. The index is an inverted list per token, updated as items are
 * put, so a new item is a neighbour (and has neighbours) at once, before any
 * behaviour exists. Attribute weights from the criteria scale the term
 * frequencies of that attribute's tokens at query time (0 ignores it).
 *
 * Bounds: 500 distinct tokens per item (as Target truncates its vectors),
 * and at most MAX_POSTINGS_SCANNED items read per token at query time, so a
 * category shared by a million items costs no more than a rare one. */
#include "reco/internal.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/banned.h"

#define MAX_TOKENS_PER_ITEM  500
#define MAX_POSTINGS_SCANNED 20000
#define MAX_TOKEN_LEN        64

typedef struct tok {
    uint32_t token;
    float tf;
} tok_t;

typedef struct posting {
    uint32_t item;
    float tf;
} posting_t;

typedef struct citem {
    bool live;
    tok_t *toks;
    int n;
} citem_t;

typedef struct ctoken {
    posting_t *p;
    uint32_t n, cap;
    uint32_t field; /* index into fields strtab */
} ctoken_t;

struct td_reco_content {
    pthread_rwlock_t lock;
    td_reco_strtab_t ids, tokens, fields;
    citem_t *items;
    uint32_t items_cap;
    ctoken_t *toks;
    uint32_t toks_cap;
    int64_t n_live;
};

td_reco_content_t *td_reco_content_new(void)
{
    td_reco_content_t *c = td_xcalloc(1, sizeof(*c));
    pthread_rwlock_init(&c->lock, NULL);
    td_reco__strtab_init(&c->ids);
    td_reco__strtab_init(&c->tokens);
    td_reco__strtab_init(&c->fields);
    return c;
}

void td_reco_content_free(td_reco_content_t *c)
{
    if (c == NULL) {
        return;
    }
    for (uint32_t i = 0; i < c->items_cap; i++) {
        free(c->items[i].toks);
    }
    for (uint32_t i = 0; i < c->toks_cap; i++) {
        free(c->toks[i].p);
    }
    free(c->items);
    free(c->toks);
    td_reco__strtab_release(&c->ids);
    td_reco__strtab_release(&c->tokens);
    td_reco__strtab_release(&c->fields);
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

/* ---- tokens ---- */

static const char *const stop_words[] = {
    "a",   "an", "and", "are", "as",  "at",  "be",   "by",  "for", "from", "in",   "is",
    "it",  "of", "on",  "or",  "the", "to",  "with", "was", "de",  "la",   "le",   "les",
    "des", "et", "der", "die", "das", "und", "en",   "y",   "el",  "new",  "this", "that",
};

static bool is_stop(const char *w)
{
    for (size_t i = 0; i < TD_ARRAY_LEN(stop_words); i++) {
        if (strcmp(w, stop_words[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* A light English stemmer: plural forms fold onto the singular, which is
 * what matters most for product names ("boots" ~ "boot"). */
static void stem(char *w)
{
    size_t n = strlen(w);
    if (n > 4 && strcmp(w + n - 3, "ies") == 0) {
        w[n - 3] = 'y';
        w[n - 2] = '\0';
    } else if (n > 4 && (strcmp(w + n - 4, "sses") == 0 || strcmp(w + n - 4, "shes") == 0 ||
                         strcmp(w + n - 4, "ches") == 0 || strcmp(w + n - 3, "xes") == 0)) {
        w[n - 2] = '\0';
    } else if (n > 3 && w[n - 1] == 's' && w[n - 2] != 's' && w[n - 2] != 'u' && w[n - 2] != 'i') {
        w[n - 1] = '\0';
    }
}

typedef struct tokbuf {
    char (*w)[MAX_TOKEN_LEN + 8];
    float *tf;
    uint32_t *field;
    int n, cap;
} tokbuf_t;

static void tb_add(tokbuf_t *tb, const char *prefix, const char *w, uint32_t field)
{
    char t[MAX_TOKEN_LEN + 8];
    int len = snprintf(t, sizeof(t), "%s%s", prefix, w);
    if (len <= 0 || (size_t)len >= sizeof(t)) {
        return; /* overlong tokens carry no useful similarity */
    }
    for (int i = 0; i < tb->n; i++) {
        if (strcmp(tb->w[i], t) == 0) {
            tb->tf[i] += 1;
            return;
        }
    }
    if (tb->n >= MAX_TOKENS_PER_ITEM) {
        return;
    }
    if (tb->n == tb->cap) {
        tb->cap = tb->cap ? tb->cap * 2 : 32;
        tb->w = td_xrealloc(tb->w, sizeof(*tb->w) * (size_t)tb->cap);
        tb->tf = td_xrealloc(tb->tf, sizeof(float) * (size_t)tb->cap);
        tb->field = td_xrealloc(tb->field, sizeof(uint32_t) * (size_t)tb->cap);
    }
    memcpy(tb->w[tb->n], t, (size_t)len + 1);
    tb->tf[tb->n] = 1;
    tb->field[tb->n] = field;
    tb->n++;
}

/* Splits s into lower-case words (bytes >= 0x80 count as letters, so UTF-8
 * words stay whole), drops stop words, stems, and adds them with prefix;
 * with pairs, adjacent words are added as one more token too. */
static void add_words(tokbuf_t *tb, const char *prefix, const char *s, uint32_t field, bool pairs)
{
    char prev[MAX_TOKEN_LEN] = "";
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        while (*p && !(isalnum(*p) || *p >= 0x80)) {
            p++;
        }
        char w[MAX_TOKEN_LEN];
        size_t n = 0;
        while (*p && (isalnum(*p) || *p >= 0x80)) {
            if (n + 1 < sizeof(w)) {
                w[n++] = (char)tolower(*p);
            }
            p++;
        }
        w[n] = '\0';
        if (n < 2 || is_stop(w)) {
            continue;
        }
        stem(w);
        tb_add(tb, prefix, w, field);
        if (pairs && prev[0]) {
            char pair[2 * MAX_TOKEN_LEN + 2];
            snprintf(pair, sizeof(pair), "%s %s", prev, w);
            tb_add(tb, prefix, pair, field);
        }
        snprintf(prev, sizeof(prev), "%s", w);
    }
}

static void add_whole(tokbuf_t *tb, const char *prefix, const char *s, uint32_t field)
{
    char w[MAX_TOKEN_LEN];
    size_t n = 0;
    for (const char *p = s; *p && n + 1 < sizeof(w); p++) {
        w[n++] = (char)tolower((unsigned char)*p);
    }
    w[n] = '\0';
    if (n > 0) {
        tb_add(tb, prefix, w, field);
    }
}

static uint32_t field_id(td_reco_content_t *c, const char *name)
{
    return td_reco__strtab_intern(&c->fields, name);
}

static void tokenize(td_reco_content_t *c, const td_reco_item_t *it, tokbuf_t *tb)
{
    if (it->name) {
        add_words(tb, "n:", it->name, field_id(c, "name"), true);
    }
    uint32_t fc = field_id(c, "categoryId");
    for (int i = 0; i < it->n_categories; i++) {
        if (it->categories[i] == NULL) {
            continue;
        }
        add_whole(tb, "c=", it->categories[i], fc);
        add_words(tb, "c:", it->categories[i], fc, false);
    }
    if (it->brand) {
        add_whole(tb, "b=", it->brand, field_id(c, "brand"));
    }
    if (it->message) {
        add_words(tb, "m:", it->message, field_id(c, "message"), false);
    }
    for (int i = 0; i < it->n_attrs; i++) {
        const td_reco_attr_t *a = &it->attrs[i];
        if (a->name == NULL) {
            continue;
        }
        uint32_t f = field_id(c, a->name);
        char prefix[80];
        snprintf(prefix, sizeof(prefix), "a.%.60s=", a->name);
        for (int k = 0; k < a->n_values; k++) {
            const char *v = a->values[k];
            if (v == NULL || v[0] == '\0') {
                continue;
            }
            /* Numbers are not text: a price-like attribute must not make
             * items "similar" by sharing a value. */
            char *end;
            (void)strtod(v, &end);
            if (*end == '\0') {
                continue;
            }
            add_whole(tb, prefix, v, f);
        }
    }
}

/* ---- index updates ---- */

static void unindex(td_reco_content_t *c, uint32_t id)
{
    citem_t *ci = &c->items[id];
    for (int k = 0; k < ci->n; k++) {
        ctoken_t *t = &c->toks[ci->toks[k].token];
        for (uint32_t i = 0; i < t->n; i++) {
            if (t->p[i].item == id) {
                t->p[i] = t->p[--t->n];
                break;
            }
        }
    }
    free(ci->toks);
    ci->toks = NULL;
    ci->n = 0;
    if (ci->live) {
        ci->live = false;
        c->n_live--;
    }
}

void td_reco_content_put(td_reco_content_t *c, const td_reco_item_t *item)
{
    if (item == NULL || item->id == NULL || item->id[0] == '\0' ||
        strlen(item->id) >= TD_RECO_MAX_ID) {
        return;
    }
    tokbuf_t tb = { 0 };
    pthread_rwlock_wrlock(&c->lock);
    tokenize(c, item, &tb);
    uint32_t id = td_reco__strtab_intern(&c->ids, item->id);
    if (id >= c->items_cap) {
        uint32_t cap = c->items_cap ? c->items_cap : 256;
        while (cap <= id) {
            cap *= 2;
        }
        c->items = td_xrealloc(c->items, sizeof(citem_t) * cap);
        memset(c->items + c->items_cap, 0, sizeof(citem_t) * (cap - c->items_cap));
        c->items_cap = cap;
    }
    unindex(c, id);
    citem_t *ci = &c->items[id];
    ci->live = true;
    c->n_live++;
    ci->toks = td_xmalloc(sizeof(tok_t) * (size_t)(tb.n ? tb.n : 1));
    for (int k = 0; k < tb.n; k++) {
        uint32_t t = td_reco__strtab_intern(&c->tokens, tb.w[k]);
        if (t >= c->toks_cap) {
            uint32_t cap = c->toks_cap ? c->toks_cap : 1024;
            while (cap <= t) {
                cap *= 2;
            }
            c->toks = td_xrealloc(c->toks, sizeof(ctoken_t) * cap);
            memset(c->toks + c->toks_cap, 0, sizeof(ctoken_t) * (cap - c->toks_cap));
            c->toks_cap = cap;
        }
        ctoken_t *ct = &c->toks[t];
        ct->field = tb.field[k];
        if (ct->n == ct->cap) {
            ct->cap = ct->cap ? ct->cap * 2 : 4;
            ct->p = td_xrealloc(ct->p, sizeof(posting_t) * ct->cap);
        }
        ct->p[ct->n].item = id;
        ct->p[ct->n].tf = tb.tf[k];
        ct->n++;
        ci->toks[k].token = t;
        ci->toks[k].tf = tb.tf[k];
    }
    ci->n = tb.n;
    pthread_rwlock_unlock(&c->lock);
    free(tb.w);
    free(tb.tf);
    free(tb.field);
}

void td_reco_content_remove(td_reco_content_t *c, const char *id)
{
    pthread_rwlock_wrlock(&c->lock);
    uint32_t i = td_reco__strtab_find(&c->ids, id);
    if (i != TD_RECO_NONE && i < c->items_cap) {
        unindex(c, i);
    }
    pthread_rwlock_unlock(&c->lock);
}

int64_t td_reco_content_count(td_reco_content_t *c)
{
    pthread_rwlock_rdlock(&c->lock);
    int64_t n = c->n_live;
    pthread_rwlock_unlock(&c->lock);
    return n;
}

/* ---- query ---- */

static double field_weight(const td_reco_content_t *c, uint32_t field,
                           const td_reco_attr_weight_t *w, int n_w)
{
    const char *name = td_reco__strtab_str(&c->fields, field);
    for (int i = 0; i < n_w; i++) {
        if (name && strcmp(w[i].attribute, name) == 0) {
            return w[i].weight;
        }
    }
    return 1.0;
}

static double idf(const td_reco_content_t *c, uint32_t token)
{
    /* Spark's smoothed idf, as Target's content similarity uses it. */
    return log(((double)c->n_live + 1.0) / ((double)c->toks[token].n + 1.0));
}

void td_reco__content_similar(td_reco_content_t *c, const char *key,
                              const td_reco_attr_weight_t *weights, int n_weights, double min_sim,
                              int max, td_reco_cands_t *out)
{
    pthread_rwlock_rdlock(&c->lock);
    uint32_t kid = td_reco__strtab_find(&c->ids, key);
    if (kid == TD_RECO_NONE || kid >= c->items_cap || !c->items[kid].live) {
        pthread_rwlock_unlock(&c->lock);
        return;
    }
    /* Per-field weights resolved once per field. */
    uint32_t nf = c->fields.n;
    double *fw = td_xmalloc(sizeof(double) * (nf ? nf : 1));
    for (uint32_t f = 0; f < nf; f++) {
        fw[f] = field_weight(c, f, weights, n_weights);
    }
    const citem_t *ki = &c->items[kid];
    double knorm = 0;
    td_reco_imap_t slot = { 0 };
    double *dot = NULL;
    uint32_t *cand = NULL;
    uint32_t n_cand = 0, cap_cand = 0;
    for (int k = 0; k < ki->n; k++) {
        uint32_t t = ki->toks[k].token;
        const ctoken_t *ct = &c->toks[t];
        double wk = ki->toks[k].tf * idf(c, t) * fw[ct->field];
        if (wk <= 0) {
            continue;
        }
        knorm += wk * wk;
        uint32_t lim = ct->n < MAX_POSTINGS_SCANNED ? ct->n : MAX_POSTINGS_SCANNED;
        for (uint32_t i = 0; i < lim; i++) {
            uint32_t j = ct->p[i].item;
            if (j == kid) {
                continue;
            }
            uint32_t *ix = td_reco__imap_find(&slot, j);
            uint32_t x;
            if (ix == NULL) {
                if (n_cand == cap_cand) {
                    cap_cand = cap_cand ? cap_cand * 2 : 64;
                    dot = td_xrealloc(dot, sizeof(double) * cap_cand);
                    cand = td_xrealloc(cand, sizeof(uint32_t) * cap_cand);
                }
                x = n_cand++;
                *td_reco__imap_upsert(&slot, j) = x;
                cand[x] = j;
                dot[x] = 0;
            } else {
                x = *ix;
            }
            dot[x] += wk * ct->p[i].tf * idf(c, t) * fw[ct->field];
        }
    }
    knorm = sqrt(knorm);
    td_reco_cands_t local = { 0 };
    for (uint32_t x = 0; x < n_cand && knorm > 0; x++) {
        if (dot[x] <= 0) {
            continue;
        }
        const citem_t *ci = &c->items[cand[x]];
        double jn = 0;
        for (int k = 0; k < ci->n; k++) {
            uint32_t t = ci->toks[k].token;
            double wj = ci->toks[k].tf * idf(c, t) * fw[c->toks[t].field];
            jn += wj * wj;
        }
        if (jn <= 0) {
            continue;
        }
        double cosv = dot[x] / (knorm * sqrt(jn));
        if (cosv > 1.0) {
            cosv = 1.0;
        }
        if (cosv < min_sim || cosv <= 0) {
            continue;
        }
        td_reco_cand_t cd = { .item = TD_RECO_NONE,
                              .id = td_reco__strtab_str(&c->ids, cand[x]),
                              .score = cosv,
                              .via = td_reco__strtab_str(&c->ids, kid),
                              .via_score = cosv };
        td_reco__cands_push(&local, &cd);
    }
    td_reco__cands_sort(&local);
    for (int i = 0; i < local.n && i < max; i++) {
        td_reco__cands_push(out, &local.v[i]);
    }
    td_reco__cands_release(&local);
    free(dot);
    free(cand);
    free(fw);
    td_reco__imap_release(&slot);
    pthread_rwlock_unlock(&c->lock);
}
