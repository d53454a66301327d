/* The behaviour model: the log-likelihood ratio on hand-computed tables,
 * co-occurrence counts on tiny histories, lookback expiry, incremental
 * updates against a full rebuild, bounded memory, and the engine's atomic
 * swap that replays events arriving during a rebuild. */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reco/reco.h"

#define DAY (24LL * 3600 * 1000)
#define T0  1795000000000LL

static td_reco_model_t *model_with(int days, int max_history, int max_pairs)
{
    td_reco_model_options_t o;
    td_reco_model_options_init(&o);
    o.cf_days[0] = days;
    o.n_cf_days = 1;
    if (max_history) {
        o.max_history = max_history;
    }
    if (max_pairs) {
        o.max_pairs_per_item = max_pairs;
    }
    td_err_t err = { 0 };
    td_reco_model_t *m = td_reco_model_new(&o, &err);
    assert_non_null(m);
    return m;
}

static void add(td_reco_model_t *m, const char *visitor, const char *item, td_reco_action_t a,
                int64_t ts)
{
    td_reco_event_t ev = { visitor, item, a, ts, 0 };
    assert_int_equal(td_reco_model_add(m, &ev), TD_OK);
}

static void counts(td_reco_model_t *m, int rel, const char *a, const char *b,
                   td_reco_pair_counts_t *pc)
{
    assert_true(td_reco_model_pair_counts(m, 30, rel, a, b, pc));
}

static void test_llr_hand_computed(void **state)
{
    (void)state;
    /* [[1,0],[0,1]]: N = 2, row and column entropies 2 ln 2 each, matrix
     * entropy 2 ln 2 -> 2 * (2 ln 2) = 4 ln 2. */
    assert_true(fabs(td_reco_llr(1, 0, 0, 1) - 4 * log(2)) < 1e-9);
    /* [[10,0],[0,10]] -> 40 ln 2. */
    assert_true(fabs(td_reco_llr(10, 0, 0, 10) - 40 * log(2)) < 1e-9);
    /* Independence gives 0. */
    assert_true(fabs(td_reco_llr(5, 5, 5, 5)) < 1e-9);
    assert_true(fabs(td_reco_llr(1, 9, 9, 81)) < 1e-9);
    /* Symmetric in rows and columns, never negative. */
    assert_true(fabs(td_reco_llr(3, 7, 2, 88) - td_reco_llr(3, 2, 7, 88)) < 1e-9);
    assert_true(td_reco_llr(0, 10, 10, 0) > 0);
    /* Dunning's formula directly: 2 * sum k log(k N / (row col)). */
    double k[4] = { 7, 3, 5, 85 }, n = 100;
    double r1 = 10, r2 = 90, c1 = 12, c2 = 88;
    double g = 2 * (k[0] * log(k[0] * n / (r1 * c1)) + k[1] * log(k[1] * n / (r1 * c2)) +
                    k[2] * log(k[2] * n / (r2 * c1)) + k[3] * log(k[3] * n / (r2 * c2)));
    assert_true(fabs(td_reco_llr(7, 3, 5, 85) - g) < 1e-9);
}

static void test_cooccurrence_counts(void **state)
{
    (void)state;
    td_reco_model_t *m = model_with(30, 0, 0);
    td_reco_pair_counts_t pc;
    add(m, "A", "x", TD_RECO_VIEW, T0);
    add(m, "A", "y", TD_RECO_VIEW, T0 + 1000);
    add(m, "A", "x", TD_RECO_VIEW, T0 + 2000); /* a re-view counts once */
    add(m, "B", "x", TD_RECO_VIEW, T0 + 3000);
    add(m, "B", "y", TD_RECO_VIEW, T0 + 4000);
    add(m, "B", "z", TD_RECO_BUY, T0 + 5000);
    add(m, "C", "z", TD_RECO_VIEW, T0 + 6000);

    counts(m, 0, "x", "y", &pc);
    assert_int_equal(pc.n_visitors, 3);
    assert_int_equal(pc.n_a, 2);
    assert_int_equal(pc.n_b, 2);
    assert_int_equal(pc.n_ab, 2);
    counts(m, 0, "y", "x", &pc);
    assert_int_equal(pc.n_ab, 2);
    /* A purchase is also a view. */
    counts(m, 0, "x", "z", &pc);
    assert_int_equal(pc.n_b, 2);
    assert_int_equal(pc.n_ab, 1);
    /* viewed x -> bought z: only B. */
    counts(m, 1, "x", "z", &pc);
    assert_int_equal(pc.n_a, 2);
    assert_int_equal(pc.n_b, 1);
    assert_int_equal(pc.n_ab, 1);
    counts(m, 1, "z", "x", &pc);
    assert_int_equal(pc.n_ab, 0);
    counts(m, 2, "z", "z", &pc); /* bought again later: nobody */
    assert_int_equal(pc.n_ab, 0);
    assert_false(td_reco_model_pair_counts(m, 30, 0, "x", "nope", &pc));
    td_reco_model_unref(m);
}

static void test_bought_again_in_later_session(void **state)
{
    (void)state;
    td_reco_model_t *m = model_with(30, 0, 0);
    td_reco_pair_counts_t pc;
    add(m, "A", "milk", TD_RECO_BUY, T0);
    add(m, "A", "milk", TD_RECO_BUY, T0 + 60000); /* same session: no repeat */
    counts(m, 2, "milk", "milk", &pc);
    assert_int_equal(pc.n_ab, 0);
    add(m, "A", "milk", TD_RECO_BUY, T0 + DAY); /* a later session */
    counts(m, 2, "milk", "milk", &pc);
    assert_int_equal(pc.n_a, 1);
    assert_int_equal(pc.n_ab, 1);
    /* The first purchase leaving the window ends the repeat. */
    td_reco_model_advance(m, T0 + 30 * DAY + 120000);
    counts(m, 2, "milk", "milk", &pc);
    assert_int_equal(pc.n_ab, 0);
    assert_int_equal(pc.n_a, 1);
    td_reco_model_unref(m);
}

static void test_lookback_expiry(void **state)
{
    (void)state;
    td_reco_model_t *m = model_with(7, 0, 0);
    td_reco_pair_counts_t pc;
    add(m, "A", "x", TD_RECO_VIEW, T0);
    add(m, "A", "y", TD_RECO_VIEW, T0 + 1000);
    add(m, "B", "x", TD_RECO_VIEW, T0 + 3 * DAY);
    add(m, "B", "y", TD_RECO_VIEW, T0 + 3 * DAY);
    assert_true(td_reco_model_pair_counts(m, 7, 0, "x", "y", &pc));
    assert_int_equal(pc.n_ab, 2);
    /* A's views leave the 7-day window; B's stay. */
    td_reco_model_advance(m, T0 + 7 * DAY + 5000);
    assert_true(td_reco_model_pair_counts(m, 7, 0, "x", "y", &pc));
    assert_int_equal(pc.n_ab, 1);
    assert_int_equal(pc.n_visitors, 1);
    assert_int_equal(pc.n_a, 1);
    /* A re-view refreshes membership: B views x again on day 9, so after
     * day 10 only y has left. */
    add(m, "B", "x", TD_RECO_VIEW, T0 + 9 * DAY);
    td_reco_model_advance(m, T0 + 10 * DAY + 1);
    assert_true(td_reco_model_pair_counts(m, 7, 0, "x", "y", &pc));
    assert_int_equal(pc.n_a, 1);
    assert_int_equal(pc.n_b, 0);
    assert_int_equal(pc.n_ab, 0);
    /* An event older than the window never enters it. */
    add(m, "C", "y", TD_RECO_VIEW, T0);
    assert_true(td_reco_model_pair_counts(m, 7, 0, "x", "y", &pc));
    assert_int_equal(pc.n_b, 0);
    /* Popularity expires too (6 hours). */
    add(m, "D", "p", TD_RECO_VIEW, T0 + 11 * DAY);
    assert_true(td_reco_model_popularity(m, "p", false, 6) == 1);
    td_reco_model_advance(m, T0 + 11 * DAY + 7 * 3600 * 1000LL);
    assert_true(td_reco_model_popularity(m, "p", false, 6) == 0);
    assert_true(td_reco_model_popularity(m, "p", false, 24) == 1);
    td_reco_model_unref(m);
}

/* A deterministic pseudo-random event stream over 40 days. */
static void gen_events(int i, char *visitor, char *item, td_reco_action_t *a, int64_t *ts)
{
    unsigned x = (unsigned)i * 2654435761u;
    snprintf(visitor, 16, "v%u", (x >> 8) % 23);
    snprintf(item, 16, "i%u", (x >> 16) % 17);
    *a = (x % 7 == 0) ? TD_RECO_BUY : (x % 5 == 0 ? TD_RECO_CART : TD_RECO_VIEW);
    *ts = T0 + (int64_t)i * (40 * DAY / 600);
}

static void test_incremental_equals_rebuild(void **state)
{
    (void)state;
    td_reco_model_t *inc = model_with(30, 0, 0);
    td_reco_model_t *full = model_with(30, 0, 0);
    char v[16], it[16];
    td_reco_action_t a;
    int64_t ts, end = 0;
    for (int i = 0; i < 600; i++) {
        gen_events(i, v, it, &a, &ts);
        add(inc, v, it, a, ts);
        end = ts;
    }
    /* The rebuild loads only what is inside the lookback at the end. */
    for (int i = 0; i < 600; i++) {
        gen_events(i, v, it, &a, &ts);
        if (ts >= end - 30 * DAY) {
            add(full, v, it, a, ts);
        }
    }
    for (int rel = 0; rel < 3; rel++) {
        for (int x = 0; x < 17; x++) {
            for (int y = 0; y < 17; y++) {
                char ix[16], iy[16];
                snprintf(ix, sizeof(ix), "i%d", x);
                snprintf(iy, sizeof(iy), "i%d", y);
                td_reco_pair_counts_t p1, p2;
                bool k1 = td_reco_model_pair_counts(inc, 30, rel, ix, iy, &p1);
                bool k2 = td_reco_model_pair_counts(full, 30, rel, ix, iy, &p2);
                if (!k1 || !k2) {
                    continue;
                }
                if (memcmp(&p1, &p2, sizeof(p1)) != 0) {
                    fail_msg("rel %d %s-%s: %lld/%lld/%lld/%lld vs %lld/%lld/%lld/%lld", rel, ix,
                             iy, (long long)p1.n_visitors, (long long)p1.n_a, (long long)p1.n_b,
                             (long long)p1.n_ab, (long long)p2.n_visitors, (long long)p2.n_a,
                             (long long)p2.n_b, (long long)p2.n_ab);
                }
            }
        }
    }
    td_reco_model_unref(inc);
    td_reco_model_unref(full);
}

static void test_memory_bounds(void **state)
{
    (void)state;
    /* 3 items of history per visitor, 2 partners per item. */
    td_reco_model_t *m = model_with(30, 3, 2);
    td_reco_pair_counts_t pc;
    add(m, "A", "a", TD_RECO_VIEW, T0);
    add(m, "A", "b", TD_RECO_VIEW, T0 + 1);
    add(m, "A", "c", TD_RECO_VIEW, T0 + 2);
    add(m, "A", "d", TD_RECO_VIEW, T0 + 3); /* drops a from A's history */
    counts(m, 0, "a", "b", &pc);
    assert_int_equal(pc.n_ab, 0);
    assert_int_equal(pc.n_a, 0);
    counts(m, 0, "d", "c", &pc);
    assert_int_equal(pc.n_ab, 1);
    /* b has partners c and d (2, full): a new partner replaces one seen once. */
    add(m, "B", "b", TD_RECO_VIEW, T0 + 10);
    add(m, "B", "e", TD_RECO_VIEW, T0 + 11);
    td_reco_model_stats_t st;
    td_reco_model_stats(m, &st);
    assert_true(st.pair_evicted > 0);
    assert_int_equal(st.visitors, 2);
    assert_true(st.bytes > 0);
    td_reco_model_unref(m);
}

static void test_bad_events_and_options(void **state)
{
    (void)state;
    td_reco_model_t *m = model_with(30, 0, 0);
    td_reco_event_t ev = { "", "x", TD_RECO_VIEW, T0, 0 };
    assert_int_equal(td_reco_model_add(m, &ev), TD_EINVAL);
    ev.visitor = "v";
    ev.item = NULL;
    assert_int_equal(td_reco_model_add(m, &ev), TD_EINVAL);
    char big[600];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ev.item = big;
    assert_int_equal(td_reco_model_add(m, &ev), TD_EINVAL);
    ev.item = "x";
    ev.action = (td_reco_action_t)9;
    assert_int_equal(td_reco_model_add(m, &ev), TD_EINVAL);
    td_reco_model_unref(m);

    td_reco_model_options_t o;
    td_err_t err = { 0 };
    td_reco_model_options_init(&o);
    o.cf_days[0] = 62;
    assert_null(td_reco_model_new(&o, &err));
    assert_string_equal(err.path, "cf_days");
    td_reco_model_options_init(&o);
    o.n_cf_days = 2;
    o.cf_days[1] = 30;
    assert_null(td_reco_model_new(&o, &err));
    td_reco_model_options_init(&o);
    o.max_history = 0;
    assert_null(td_reco_model_new(&o, &err));
    assert_string_equal(err.path, "max_history");
    /* Several windows: the smallest covering one serves a criteria. */
    td_reco_model_options_init(&o);
    o.n_cf_days = 3;
    o.cf_days[0] = 30;
    o.cf_days[1] = 2;
    o.cf_days[2] = 7;
    m = td_reco_model_new(&o, &err);
    assert_non_null(m);
    add(m, "A", "x", TD_RECO_VIEW, T0);
    add(m, "A", "y", TD_RECO_VIEW, T0 + 1);
    td_reco_model_advance(m, T0 + 3 * DAY);
    td_reco_pair_counts_t pc;
    assert_true(td_reco_model_pair_counts(m, 2, 0, "x", "y", &pc));
    assert_int_equal(pc.n_ab, 0);
    assert_true(td_reco_model_pair_counts(m, 5, 0, "x", "y", &pc)); /* served by 7 */
    assert_int_equal(pc.n_ab, 1);
    td_reco_model_unref(m);
}

static void test_engine_rebuild_swap(void **state)
{
    (void)state;
    td_reco_engine_t *e = td_reco_engine_new(model_with(30, 0, 0));
    td_reco_event_t ev = { "A", "x", TD_RECO_VIEW, T0, 1 };
    assert_int_equal(td_reco_engine_add(e, &ev), TD_OK);
    ev = (td_reco_event_t){ "A", "y", TD_RECO_VIEW, T0 + 1, 2 };
    assert_int_equal(td_reco_engine_add(e, &ev), TD_OK);

    td_reco_model_t *fresh = NULL;
    assert_int_equal(td_reco_engine_rebuild_begin(e, &fresh), TD_OK);
    td_reco_model_t *other = NULL;
    assert_int_equal(td_reco_engine_rebuild_begin(e, &other), TD_EBUSY);
    /* The rebuild reads the store up to seq 2, while seq 3 and 4 arrive. */
    td_reco_event_t stored[2] = { { "A", "x", TD_RECO_VIEW, T0, 1 },
                                  { "A", "y", TD_RECO_VIEW, T0 + 1, 2 } };
    ev = (td_reco_event_t){ "B", "x", TD_RECO_VIEW, T0 + 2, 3 };
    assert_int_equal(td_reco_engine_add(e, &ev), TD_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(td_reco_model_add(fresh, &stored[i]), TD_OK);
    }
    /* seq 3 also made it into the store read: it must not count twice. */
    assert_int_equal(td_reco_model_add(fresh, &ev), TD_OK);
    ev = (td_reco_event_t){ "B", "y", TD_RECO_VIEW, T0 + 3, 4 };
    assert_int_equal(td_reco_engine_add(e, &ev), TD_OK);

    td_reco_model_t *before = td_reco_engine_acquire(e);
    td_reco_engine_rebuild_commit(e, fresh);
    td_reco_model_t *after = td_reco_engine_acquire(e);
    assert_ptr_not_equal(before, after);
    td_reco_pair_counts_t p1, p2;
    assert_true(td_reco_model_pair_counts(before, 30, 0, "x", "y", &p1));
    assert_true(td_reco_model_pair_counts(after, 30, 0, "x", "y", &p2));
    assert_int_equal(p1.n_ab, 2);
    assert_int_equal(p2.n_ab, 2);
    assert_int_equal(p2.n_a, 2);
    assert_int_equal(td_reco_model_max_seq(after), 4);
    td_reco_model_unref(before); /* the old model lives until here */
    td_reco_model_unref(after);

    assert_int_equal(td_reco_engine_rebuild_begin(e, &fresh), TD_OK);
    td_reco_engine_rebuild_abort(e, fresh);
    td_reco_engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llr_hand_computed),
        cmocka_unit_test(test_cooccurrence_counts),
        cmocka_unit_test(test_bought_again_in_later_session),
        cmocka_unit_test(test_lookback_expiry),
        cmocka_unit_test(test_incremental_equals_rebuild),
        cmocka_unit_test(test_memory_bounds),
        cmocka_unit_test(test_bad_events_and_options),
        cmocka_unit_test(test_engine_rebuild_swap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
