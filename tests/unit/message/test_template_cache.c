/* The compiled-template cache: a hit compiles nothing, a new version (or
 * new text under an old version number) replaces the entry, the least
 * recently used entry is evicted past capacity, a ref outlives its entry,
 * and several threads share one cache. */
#include "test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "message/message.h"

/* Renders ref against {"name": name} into a fresh string you free. */
static char *render(const td_template_ref_t *ref, const char *name)
{
    td_buf_t out = TD_BUF_INIT;
    json_t *ctx = json_pack("{s:s}", "name", name);

    assert_int_equal(td_template_render(td_template_ref_get(ref), ctx, &out, NULL), TD_OK);
    json_decref(ctx);
    td_buf_addc(&out, '\0');
    return td_buf_detach(&out);
}

static td_template_ref_t *get(td_template_cache_t *c, const char *id, const char *part,
                              int64_t version, const char *src)
{
    td_template_ref_t *ref = NULL;
    td_err_t err = { 0 };

    assert_int_equal(td_template_cache_get(c, id, part, version, src, strlen(src), &ref, &err),
                     TD_OK);
    assert_non_null(ref);
    return ref;
}

static void expect_stats(td_template_cache_t *c, int64_t hits, int64_t misses, int entries)
{
    td_template_cache_stats_t st;

    td_template_cache_stats(c, &st);
    assert_int_equal(st.hits, hits);
    assert_int_equal(st.misses, misses);
    assert_int_equal(st.entries, entries);
}

static void expect_render(const td_template_ref_t *ref, const char *name, const char *want)
{
    char *s = render(ref, name);
    assert_string_equal(s, want);
    free(s);
}

static void test_hit(void **state)
{
    td_template_cache_t *c = td_template_cache_new(8);
    (void)state;

    td_template_ref_t *a = get(c, "cart", "subject", 1, "Hi {{name}}");
    td_template_ref_t *b = get(c, "cart", "subject", 1, "Hi {{name}}");
    assert_ptr_equal(td_template_ref_get(a), td_template_ref_get(b));
    expect_stats(c, 1, 1, 1);
    expect_render(b, "Ann", "Hi Ann");
    /* another part of the same template is its own entry */
    td_template_ref_t *h = get(c, "cart", "html", 1, "<p>{{name}}</p>");
    assert_ptr_not_equal(td_template_ref_get(a), td_template_ref_get(h));
    expect_stats(c, 1, 2, 2);
    td_template_cache_release(c, a);
    td_template_cache_release(c, b);
    td_template_cache_release(c, h);
    td_template_cache_free(c);
}

static void test_new_version_replaces(void **state)
{
    td_template_cache_t *c = td_template_cache_new(8);
    (void)state;

    td_template_ref_t *v1 = get(c, "cart", "subject", 1, "Hi {{name}}");
    td_template_ref_t *v2 = get(c, "cart", "subject", 2, "Hello {{name}}");
    expect_stats(c, 0, 2, 1);
    expect_render(v2, "Bo", "Hello Bo");
    /* v1 was dropped from the table but the holder may still render it */
    expect_render(v1, "Bo", "Hi Bo");
    td_template_cache_release(c, v1);
    td_template_ref_t *again = get(c, "cart", "subject", 2, "Hello {{name}}");
    expect_stats(c, 1, 2, 1);
    /* a row read before the update asks for v1: the latest request wins */
    td_template_ref_t *old = get(c, "cart", "subject", 1, "Hi {{name}}");
    expect_render(old, "Cy", "Hi Cy");
    td_template_ref_t *v2b = get(c, "cart", "subject", 2, "Hello {{name}}");
    expect_stats(c, 1, 4, 1);
    /* deleted and put again: version 1 again, other text, not the old copy */
    td_template_ref_t *re = get(c, "cart", "subject", 1, "Welcome back {{name}}");
    expect_render(re, "Di", "Welcome back Di");
    td_template_cache_release(c, get(c, "cart", "subject", 1, "Welcome back {{name}}"));
    expect_stats(c, 2, 5, 1);
    td_template_cache_release(c, old);
    td_template_cache_release(c, v2);
    td_template_cache_release(c, again);
    td_template_cache_release(c, v2b);
    td_template_cache_release(c, re);
    td_template_cache_free(c);
}

static void test_eviction(void **state)
{
    td_template_cache_t *c = td_template_cache_new(2);
    (void)state;

    td_template_cache_release(c, get(c, "a", "html", 1, "A{{name}}"));
    td_template_cache_release(c, get(c, "b", "html", 1, "B{{name}}"));
    /* a used last, so b is the least recently used */
    td_template_cache_release(c, get(c, "a", "html", 1, "A{{name}}"));
    expect_stats(c, 1, 2, 2);
    td_template_ref_t *cref = get(c, "c", "html", 1, "C{{name}}");
    expect_stats(c, 1, 3, 2);
    td_template_cache_release(c, get(c, "a", "html", 1, "A{{name}}"));
    expect_stats(c, 2, 3, 2);
    td_template_ref_t *b = get(c, "b", "html", 1, "B{{name}}"); /* evicted: compiled again */
    expect_stats(c, 2, 4, 2);
    expect_render(b, "x", "Bx");
    /* c was evicted by b while held: still usable */
    expect_render(cref, "y", "Cy");
    td_template_cache_release(c, b);
    td_template_cache_release(c, cref);
    td_template_cache_free(c);
}

static void test_compile_error(void **state)
{
    td_template_cache_t *c = td_template_cache_new(4);
    td_template_ref_t *ref = (td_template_ref_t *)1;
    td_err_t err = { 0 };
    const char *bad = "{{#if x}}open";
    (void)state;

    assert_int_equal(td_template_cache_get(c, "bad", "html", 1, bad, strlen(bad), &ref, &err),
                     TD_EINVAL);
    assert_null(ref);
    assert_true(err.line >= 1);
    expect_stats(c, 0, 1, 0);
    td_template_cache_free(c);
}

/* ---- threads ---- */

typedef struct worker {
    td_template_cache_t *cache;
    int seed;
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    char id[16], src[64], want[64];

    for (int i = 0; i < 2000; i++) {
        int t = (w->seed * 7 + i) % 6, v = 1 + (i / 500);
        snprintf(id, sizeof(id), "t%d", t);
        snprintf(src, sizeof(src), "%s v%d {{name}}", id, v);
        snprintf(want, sizeof(want), "%s v%d z", id, v);
        td_template_ref_t *ref = NULL;
        td_err_t err = { 0 };
        if (td_template_cache_get(w->cache, id, "html", v, src, strlen(src), &ref, &err) != TD_OK) {
            return (void *)1;
        }
        char *s = render(ref, "z");
        bool ok = strcmp(s, want) == 0;
        free(s);
        td_template_cache_release(w->cache, ref);
        if (!ok) {
            return (void *)1;
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    td_template_cache_t *c = td_template_cache_new(4); /* fewer than the 6 ids: evictions */
    pthread_t th[4];
    worker_t w[4];
    (void)state;

    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){ .cache = c, .seed = i };
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *res = (void *)1;
        pthread_join(th[i], &res);
        assert_null(res);
    }
    td_template_cache_stats_t st;
    td_template_cache_stats(c, &st);
    assert_int_equal(st.hits + st.misses, 4 * 2000);
    assert_true(st.entries <= 4);
    td_template_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit),      cmocka_unit_test(test_new_version_replaces),
        cmocka_unit_test(test_eviction), cmocka_unit_test(test_compile_error),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
