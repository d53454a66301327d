/* Time zones: fixed offsets, POSIX TZ rules, TZif data (real zone files of
 * the system, cut short, and garbage), the cache (names refused, a zoneinfo
 * directory of our own, threads), and wall time back to UTC across DST. */
#include "test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/tz.h"

#define NOW      1795860000000LL /* 2026-11-28T10:00:00Z */
#define MAR29    1774742400000LL /* 2026-03-29T00:00:00Z: Paris goes to summer time at 01:00Z */
#define OCT25    1792886400000LL /* 2026-10-25T00:00:00Z: and back at 01:00Z */
#define JUL1     1782864000000LL /* 2026-07-01T00:00:00Z */
#define JAN15    1768435200000LL /* 2026-01-15T00:00:00Z */
#define HOUR     3600000LL
#define MINUTE   60000LL
#define ZONEINFO "/usr/share/zoneinfo"

/* The file's bytes, or NULL (and a skip) when the system has no zoneinfo. */
static unsigned char *read_zone(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", ZONEINFO, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    unsigned char *buf = malloc(1 << 16);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

static void test_fixed_offsets(void **state)
{
    int off = -1;

    (void)state;
    assert_int_equal(td_tz_cache_offset(NULL, "UTC", NOW, &off), TD_OK);
    assert_int_equal(off, 0);
    assert_int_equal(td_tz_cache_offset(NULL, "+05:30", NOW, &off), TD_OK);
    assert_int_equal(off, 19800);
    assert_int_equal(td_tz_cache_offset(NULL, "-08", NOW, &off), TD_OK);
    assert_int_equal(off, -28800);
    assert_int_equal(td_tz_cache_offset(NULL, "UTC-0330", NOW, &off), TD_OK);
    assert_int_equal(off, -12600);
    /* names need a cache; these are never even looked for */
    assert_int_equal(td_tz_cache_offset(NULL, "Europe/Paris", NOW, &off), TD_ENOTFOUND);
    assert_int_not_equal(td_tz_cache_offset(NULL, "../../etc/passwd", NOW, &off), TD_OK);
    const char *bad[] = { "+15", "+02:60", "+", "UTC+", "+02:00x", "" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(td_tz_fixed_offset(bad[i], &off));
    }
    /* the strict form of the settings */
    assert_int_equal(td_tz_offset_parse("UTC-05:30", &off), TD_OK);
    assert_int_equal(off, -330);
    assert_int_equal(td_tz_offset_parse("+2", &off), TD_EINVAL);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(td_tz_name_valid("Europe/Paris"));
    assert_true(td_tz_name_valid("America/Argentina/Buenos_Aires"));
    assert_true(td_tz_name_valid("Etc/GMT+5"));
    const char *bad[] = { "",
                          "/etc/passwd",
                          "../../etc/passwd",
                          "Europe/../../etc/passwd",
                          "Europe/Paris\n",
                          "Europe Paris",
                          "Europe/Paris;rm",
                          "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(td_tz_name_valid(bad[i]));
    }
}

static void test_posix_rules(void **state)
{
    int off = 0;

    (void)state;
    const char *paris = "CET-1CEST,M3.5.0,M10.5.0/3";
    assert_int_equal(td_tz_posix_offset(paris, JAN15 / 1000, &off), TD_OK);
    assert_int_equal(off, 3600);
    assert_int_equal(td_tz_posix_offset(paris, JUL1 / 1000, &off), TD_OK);
    assert_int_equal(off, 7200);
    /* the change itself, to the second */
    assert_int_equal(td_tz_posix_offset(paris, MAR29 / 1000 + 3599, &off), TD_OK);
    assert_int_equal(off, 3600);
    assert_int_equal(td_tz_posix_offset(paris, MAR29 / 1000 + 3600, &off), TD_OK);
    assert_int_equal(off, 7200);
    assert_int_equal(td_tz_posix_offset(paris, OCT25 / 1000 + 3599, &off), TD_OK);
    assert_int_equal(off, 7200);
    assert_int_equal(td_tz_posix_offset(paris, OCT25 / 1000 + 3600, &off), TD_OK);
    assert_int_equal(off, 3600);
    /* southern hemisphere: summer time across the new year */
    const char *sydney = "AEST-10AEDT,M10.1.0,M4.1.0/3";
    assert_int_equal(td_tz_posix_offset(sydney, JAN15 / 1000, &off), TD_OK);
    assert_int_equal(off, 39600);
    assert_int_equal(td_tz_posix_offset(sydney, JUL1 / 1000, &off), TD_OK);
    assert_int_equal(off, 36000);
    /* no DST; a quoted name */
    assert_int_equal(td_tz_posix_offset("<+0530>-5:30", JUL1 / 1000, &off), TD_OK);
    assert_int_equal(off, 19800);
    assert_int_equal(td_tz_posix_offset("EST5EDT,M3.2.0,M11.1.0", JAN15 / 1000, &off), TD_OK);
    assert_int_equal(off, -18000);
    const char *bad[] = {
        "", "CET", "1CET", "CET-1CEST,M13.5.0,M10.5.0", "CET-1CEST,M3.5.0", "<+05"
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(td_tz_posix_offset(bad[i], JUL1 / 1000, &off), TD_EINVAL);
    }
}

static void test_real_zone_files(void **state)
{
    int off = -1;
    size_t len = 0;

    (void)state;
    td_tz_cache_t *c = td_tz_cache_new(NULL);
    if (td_tz_cache_offset(c, "Europe/Paris", NOW, &off) != TD_OK) {
        td_tz_cache_free(c);
        skip(); /* no zoneinfo files on this machine */
    }
    assert_int_equal(off, 3600); /* November */
    assert_int_equal(td_tz_cache_offset(c, "Europe/Paris", NOW - 150LL * 86400000, &off), TD_OK);
    assert_int_equal(off, 7200); /* July */
    /* far beyond the listed transitions: the POSIX rule at the file's end */
    assert_int_equal(td_tz_cache_offset(c, "Europe/Paris", 4118054400000LL, &off), TD_OK);
    assert_int_equal(off, 7200); /* 2100-07-01 */
    assert_int_equal(td_tz_cache_offset(c, "America/New_York", NOW, &off), TD_OK);
    assert_int_equal(off, -18000);
    assert_int_equal(td_tz_cache_offset(c, "Asia/Kolkata", NOW, &off), TD_OK);
    assert_int_equal(off, 19800);
    /* asked twice (the second from the cache), unknown twice */
    assert_int_equal(td_tz_cache_offset(c, "Asia/Kolkata", JUL1, &off), TD_OK);
    assert_int_equal(off, 19800);
    assert_int_equal(td_tz_cache_offset(c, "Nowhere/City", NOW, &off), TD_ENOTFOUND);
    assert_int_equal(td_tz_cache_offset(c, "Nowhere/City", NOW, &off), TD_ENOTFOUND);
    assert_int_equal(td_tz_cache_offset(c, "Europe", NOW, &off), TD_ENOTFOUND); /* a directory */
    assert_int_equal(td_tz_cache_offset(c, NULL, NOW, &off), TD_ENOTFOUND);
    td_tz_cache_free(c);

    /* the same answers from the parser on the bytes; cut short, refused */
    unsigned char *data = read_zone("Europe/Paris", &len);
    assert_non_null(data);
    assert_int_equal(td_tz_tzif_offset(data, len, JUL1, &off), TD_OK);
    assert_int_equal(off, 7200);
    for (size_t cut = 0; cut < len; cut += cut < 100 ? 1 : 37) {
        int rc = td_tz_tzif_offset(data, cut, JUL1, &off);
        /* never read past cut (ASan would say); less than a header is refused */
        if (cut < 44) {
            assert_int_equal(rc, TD_EINVAL);
        }
    }
    assert_int_equal(td_tz_tzif_offset(data, len / 2, JUL1, &off), TD_EINVAL);
    free(data);
    assert_true(td_tz_cache_shared() == td_tz_cache_shared());
}

static void test_tzif_garbage_is_refused(void **state)
{
    unsigned char buf[200];
    int off;

    (void)state;
    memset(buf, 0xff, sizeof(buf));
    memcpy(buf, "TZif2", 5);
    assert_int_not_equal(td_tz_tzif_offset(buf, sizeof(buf), 0, &off), TD_OK);
    assert_int_not_equal(td_tz_tzif_offset(buf, 10, 0, &off), TD_OK);
    memset(buf, 0, sizeof(buf));
    memcpy(buf, "TZif2", 5);
    assert_int_not_equal(td_tz_tzif_offset(buf, sizeof(buf), 0, &off), TD_OK); /* no types */
}

/* A zoneinfo directory of our own: a copied zone, a file that is not TZif. */
typedef struct lookup_arg {
    td_tz_cache_t *cache;
    int bad;
} lookup_arg_t;

static void *lookups(void *p)
{
    lookup_arg_t *a = p;
    for (int i = 0; i < 2000; i++) {
        int off = 0;
        char name[32];
        snprintf(name, sizeof(name), "Made/Up%d", i % 50);
        if (td_tz_cache_offset(a->cache, "Test/Paris", JUL1, &off) != TD_OK || off != 7200 ||
            td_tz_cache_offset(a->cache, "Test/Junk", JUL1, &off) != TD_ENOTFOUND ||
            td_tz_cache_offset(a->cache, name, JUL1, &off) != TD_ENOTFOUND) {
            a->bad++;
        }
    }
    return NULL;
}

static void test_cache_dir_and_threads(void **state)
{
    char dir[] = "/tmp/td_tz_XXXXXX", path[128];
    size_t len = 0;

    (void)state;
    unsigned char *data = read_zone("Europe/Paris", &len);
    if (data == NULL) {
        skip();
    }
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/Test", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/Test/Paris", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    snprintf(path, sizeof(path), "%s/Test/Junk", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("TZif2 but not really\n", f);
    fclose(f);

    td_tz_cache_t *c = td_tz_cache_new(dir);
    pthread_t th[4];
    lookup_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (lookup_arg_t){ .cache = c };
        assert_int_equal(pthread_create(&th[i], NULL, lookups, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].bad, 0);
    }
    int off;
    /* the system's zones are not in this directory */
    assert_int_equal(td_tz_cache_offset(c, "Europe/Paris", JUL1, &off), TD_ENOTFOUND);
    td_tz_cache_free(c);

    unlink(path);
    snprintf(path, sizeof(path), "%s/Test/Paris", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/Test", dir);
    rmdir(path);
    rmdir(dir);
    free(data);
}

static void test_local_to_utc(void **state)
{
    int64_t t = 0;

    (void)state;
    td_tz_cache_t *c = td_tz_cache_new(NULL);
    int off;
    if (td_tz_cache_offset(c, "Europe/Paris", NOW, &off) != TD_OK) {
        td_tz_cache_free(c);
        skip();
    }
    /* an ordinary summer noon */
    assert_int_equal(td_tz_local_to_utc(c, "Europe/Paris", JUL1 + 12 * HOUR, &t), TD_OK);
    assert_int_equal(t, JUL1 + 10 * HOUR);
    /* 2026-03-29 02:30 never happens in Paris: the clock jumps 02:00 -> 03:00 at 01:00Z */
    assert_int_equal(td_tz_local_to_utc(c, "Europe/Paris", MAR29 + 2 * HOUR + 30 * MINUTE, &t),
                     TD_OK);
    assert_int_equal(t, MAR29 + 1 * HOUR);
    /* 08:00 that morning is summer time already */
    assert_int_equal(td_tz_local_to_utc(c, "Europe/Paris", MAR29 + 8 * HOUR, &t), TD_OK);
    assert_int_equal(t, MAR29 + 6 * HOUR);
    /* 2026-10-25 02:30 happens twice (00:30Z and 01:30Z): the first */
    assert_int_equal(td_tz_local_to_utc(c, "Europe/Paris", OCT25 + 2 * HOUR + 30 * MINUTE, &t),
                     TD_OK);
    assert_int_equal(t, OCT25 + 30 * MINUTE);
    assert_int_equal(td_tz_local_to_utc(c, "Europe/Paris", OCT25 + 8 * HOUR, &t), TD_OK);
    assert_int_equal(t, OCT25 + 7 * HOUR);
    /* New York's change, 2026-03-08 02:00 -> 03:00 at 07:00Z */
    assert_int_equal(td_tz_local_to_utc(c, "America/New_York",
                                        MAR29 - 21LL * 86400000 + 2 * HOUR + 15 * MINUTE, &t),
                     TD_OK);
    assert_int_equal(t, MAR29 - 21LL * 86400000 + 7 * HOUR);
    /* fixed offsets, and an unknown zone */
    assert_int_equal(td_tz_local_to_utc(NULL, "+05:30", JUL1, &t), TD_OK);
    assert_int_equal(t, JUL1 - 330 * MINUTE);
    assert_int_equal(td_tz_local_to_utc(c, "Nowhere/City", JUL1, &t), TD_ENOTFOUND);
    td_tz_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_offsets),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_posix_rules),
        cmocka_unit_test(test_real_zone_files),
        cmocka_unit_test(test_tzif_garbage_is_refused),
        cmocka_unit_test(test_cache_dir_and_threads),
        cmocka_unit_test(test_local_to_utc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
