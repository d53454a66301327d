/* Declarations shared by the files of the reco module (not part of its
 * public contract): string interning, small hash maps, and the read paths
 * of the model and the content index that ranking uses. */
#ifndef TD_RECO_INTERNAL_H
#define TD_RECO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reco/reco.h"

#define TD_RECO_NONE   UINT32_MAX
#define TD_RECO_MAX_ID 512 /* bytes in an item or visitor id */
#define TD_RECO_REL_VV 0   /* viewed - viewed (symmetric) */
#define TD_RECO_REL_VB 1   /* viewed a -> bought b (directed) */
#define TD_RECO_REL_BB 2   /* bought - bought (symmetric) */
#define TD_RECO_N_REL  3

/* String interning: each distinct string gets a dense id (0, 1, ...).
 * Strings are copied into chunks that never move, so the pointer returned by
 * td_reco__strtab_str() stays valid until the table is released. Removal
 * frees the id for reuse (visitors come and go; items stay). */
typedef struct td_reco_strtab {
    char **strs; /* id -> string (NULL when free) */
    uint64_t *hashes;
    uint32_t n, cap; /* ids handed out (including free ones) */
    uint32_t *slots; /* open addressing: id + 1, 0 empty, UINT32_MAX deleted */
    uint32_t n_slots, n_used, n_dead;
    uint32_t *free_ids;
    uint32_t n_free, cap_free;
    char **chunks;
    int n_chunks, cap_chunks;
    size_t chunk_used, chunk_cap;
    size_t bytes;
} td_reco_strtab_t;

void td_reco__strtab_init(td_reco_strtab_t *t);
void td_reco__strtab_release(td_reco_strtab_t *t);
uint32_t td_reco__strtab_find(const td_reco_strtab_t *t, const char *s);
uint32_t td_reco__strtab_intern(td_reco_strtab_t *t, const char *s);
void td_reco__strtab_remove(td_reco_strtab_t *t, uint32_t id);
static inline const char *td_reco__strtab_str(const td_reco_strtab_t *t, uint32_t id)
{
    return id < t->n ? t->strs[id] : NULL;
}
uint64_t td_reco__hash(const char *s, size_t len);

/* uint32 -> uint32 map, open addressing with linear probing and
 * backward-shift deletion (no tombstones, so counts can go up and down
 * forever). Empty keys are TD_RECO_NONE. */
typedef struct td_reco_imap {
    uint32_t *keys;
    uint32_t *vals;
    uint32_t n, cap; /* cap is 0 or a power of two */
    uint32_t ones;   /* co-occurrence maps: entries whose count is 1 */
    uint32_t cursor; /* co-occurrence maps: where the last eviction scan stopped */
} td_reco_imap_t;

void td_reco__imap_release(td_reco_imap_t *m);
uint32_t *td_reco__imap_find(const td_reco_imap_t *m, uint32_t key);
/* Returns the value slot, inserting key with value 0 when absent. */
uint32_t *td_reco__imap_upsert(td_reco_imap_t *m, uint32_t key);
void td_reco__imap_delete(td_reco_imap_t *m, uint32_t key);

/* A scored candidate produced while ranking. */
typedef struct td_reco_cand {
    uint32_t item;  /* model item id, or TD_RECO_NONE when id is set */
    const char *id; /* borrowed: model / content / request / catalog string */
    double score;
    const char *via; /* the key (or list) that contributed most; borrowed */
    double via_score;
} td_reco_cand_t;

typedef struct td_reco_cands {
    td_reco_cand_t *v;
    int n, cap;
} td_reco_cands_t;

void td_reco__cands_push(td_reco_cands_t *c, const td_reco_cand_t *x);
void td_reco__cands_release(td_reco_cands_t *c);
/* Sorts by score descending, ties by id ascending (deterministic). */
void td_reco__cands_sort(td_reco_cands_t *c);

/* Model read paths. All take the model's read lock themselves. */

/* Window index serving `days` (the smallest kept window >= days, else the
 * largest); its length in days goes to *actual_days. */
int td_reco__model_window(td_reco_model_t *m, int days, int *actual_days);

/* Merged behavioural neighbours of several weighted keys under relation rel
 * in window w: for each key, its top_k partners by metric (only pairs that
 * co-occur more often than chance; LLR >= min_llr), the per-key scores
 * multiplied by the key's weight and summed over keys. Keys themselves are
 * not candidates of their own list. Unknown keys are skipped. Appends to
 * out (ids are model strings, valid while the caller holds a reference). */
typedef struct td_reco_key_w {
    const char *id;
    double weight;
} td_reco_key_w_t;
void td_reco__model_neighbours(td_reco_model_t *m, int w, int rel, td_reco_metric_t metric,
                               double min_llr, const td_reco_key_w_t *keys, int n_keys,
                               int64_t now_ms, td_reco_cands_t *out);

/* Calls fn for items in descending popularity (sessions viewed / bought in
 * the window serving `hours`) until it returns false. Items with zero
 * popularity are not visited. The sorted order is cached and reused for up
 * to a second of request time (now_ms) while events arrive. */
typedef bool (*td_reco_pop_fn)(void *ctx, const char *id, double score);
void td_reco__model_popular(td_reco_model_t *m, bool bought, int hours, int64_t now_ms,
                            td_reco_pop_fn fn, void *ctx);

/* Copies up to max of the visitor's most recent events (oldest first) into
 * out; strings are model strings. Returns the number copied. */
int td_reco__model_history(td_reco_model_t *m, const char *visitor, td_reco_hist_t *out, int max);

/* SIMILARITY neighbours of key (cosine of tf-idf vectors with the given
 * attribute weights; >= min_sim), best first, at most max. */
void td_reco__content_similar(td_reco_content_t *c, const char *key,
                              const td_reco_attr_weight_t *weights, int n_weights, double min_sim,
                              int max, td_reco_cands_t *out);

/* Filters (filter.c). */
typedef struct td_reco_filter_ctx {
    const td_reco_catalog_t *catalog;
    const td_reco_request_t *req;
    const td_reco_item_t *key_item; /* NULL when the criteria has none */
} td_reco_filter_ctx_t;

/* Inclusion rules (AND). Sets *no_results when a rule's dynamic value is
 * missing and the rule says to show nothing. */
bool td_reco__rules_match(const td_reco_rules_t *r, const td_reco_item_t *it,
                          const td_reco_filter_ctx_t *fc, bool *no_results);
/* Global exclusion rules (any matching rule excludes). */
bool td_reco__rules_exclude(const td_reco_rules_t *r, const td_reco_item_t *it,
                            const td_reco_filter_ctx_t *fc);
/* Case-sensitive attribute lookup on an item: fills up to max values. */
int td_reco__item_values(const td_reco_item_t *it, const char *attribute, const char **out, int max,
                         char *numbuf, size_t numbuf_len);

#endif
