/* Time zones: fixed offsets, POSIX TZ rules, TZif files (RFC 8536) and a
 * cache of the zoneinfo directory's files. See tz.h. */
#include "util/tz.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/banned.h"

/* ---- fixed offsets and TZif ------------------------------------------- */

/* "+02:00", "-0530", "+2", "UTC", "Z", "GMT": fixed offsets without a file. */
bool td_tz_fixed_offset(const char *zone, int *offset_s)
{
    if (strcmp(zone, "UTC") == 0 || strcmp(zone, "Z") == 0 || strcmp(zone, "GMT") == 0 ||
        strcmp(zone, "Etc/UTC") == 0) {
        *offset_s = 0;
        return true;
    }
    const char *p = zone;
    if (strncmp(p, "UTC", 3) == 0) {
        p += 3;
    }
    if (*p != '+' && *p != '-') {
        return false;
    }
    int sign = *p++ == '-' ? -1 : 1, h = 0, m = 0, nd = 0;
    while (isdigit((unsigned char)*p) && nd < 2) {
        h = h * 10 + (*p++ - '0');
        nd++;
    }
    if (nd == 0) {
        return false;
    }
    if (*p == ':') {
        p++;
    }
    if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1])) {
        m = (p[0] - '0') * 10 + (p[1] - '0');
        p += 2;
    }
    if (*p != '\0' || h > 14 || m > 59) {
        return false;
    }
    *offset_s = sign * (h * 3600 + m * 60);
    return true;
}

static int64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    if (n == 4) {
        return (int32_t)(uint32_t)v;
    }
    return (int64_t)v;
}

/* POSIX TZ rules ("CET-1CEST,M3.5.0,M10.5.0/3"), as at the end of TZif v2+. */
typedef struct rule {
    char kind; /* 'M', 'J', 'n' */
    int m, w, d, n;
    int time_s;
} rule_t;

static const char *tz_name(const char *p)
{
    if (*p == '<') {
        const char *e = strchr(p, '>');
        return e ? e + 1 : NULL;
    }
    const char *s = p;
    while (isalpha((unsigned char)*p)) {
        p++;
    }
    return p - s >= 3 ? p : NULL;
}

static const char *tz_offset(const char *p, int *secs, bool allow_big)
{
    int sign = 1, h = 0, m = 0, s = 0;

    if (*p == '+' || *p == '-') {
        sign = *p++ == '-' ? -1 : 1;
    }
    if (!isdigit((unsigned char)*p)) {
        return NULL;
    }
    while (isdigit((unsigned char)*p)) {
        h = h * 10 + (*p++ - '0');
        if (h > (allow_big ? 167 : 24)) {
            return NULL;
        }
    }
    if (*p == ':') {
        p++;
        while (isdigit((unsigned char)*p)) {
            m = m * 10 + (*p++ - '0');
            if (m > 59) {
                return NULL;
            }
        }
        if (*p == ':') {
            p++;
            while (isdigit((unsigned char)*p)) {
                s = s * 10 + (*p++ - '0');
                if (s > 59) {
                    return NULL;
                }
            }
        }
    }
    *secs = sign * (h * 3600 + m * 60 + s);
    return p;
}

/* Digits at *p worth at most max -> their value (*p moved past); -1 else. */
static int small_number(const char **p, int max)
{
    int v = 0;

    if (!isdigit((unsigned char)**p)) {
        return -1;
    }
    while (isdigit((unsigned char)**p)) {
        v = v * 10 + (*(*p)++ - '0');
        if (v > max) {
            return -1;
        }
    }
    return v;
}

static const char *tz_rule(const char *p, rule_t *r)
{
    r->time_s = 7200;
    if (*p == 'M') {
        /* Mm.w.d: month, week (5 = the last), day of the week (0 = Sunday) */
        r->kind = 'M';
        p++;
        if ((r->m = small_number(&p, 12)) < 1 || *p++ != '.' || (r->w = small_number(&p, 5)) < 1 ||
            *p++ != '.' || (r->d = small_number(&p, 6)) < 0) {
            return NULL;
        }
    } else {
        r->kind = *p == 'J' ? 'J' : 'n';
        p += *p == 'J';
        if (!isdigit((unsigned char)*p)) {
            return NULL;
        }
        r->n = 0;
        while (isdigit((unsigned char)*p)) {
            r->n = r->n * 10 + (*p++ - '0');
            if (r->n > 365) {
                return NULL;
            }
        }
    }
    if (*p == '/') {
        p = tz_offset(p + 1, &r->time_s, true);
    }
    return p;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

/* Seconds since the epoch (as if UTC) at which rule r happens in year y. */
static int64_t rule_time(const rule_t *r, int64_t y)
{
    int64_t day;

    if (r->kind == 'M') {
        static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        int64_t first = days_from_civil(y, r->m, 1);
        int wd_first = (int)((first % 7 + 7 + 4) % 7); /* 0 = Sunday */
        int dom = 1 + (r->d - wd_first + 7) % 7 + (r->w - 1) * 7;
        int len = mdays[r->m - 1] + (r->m == 2 && leap(y));
        while (dom > len) {
            dom -= 7;
        }
        day = first + dom - 1;
    } else if (r->kind == 'J') {
        int n = r->n < 1 ? 1 : r->n;
        day = days_from_civil(y, 1, 1) + n - 1 + (leap(y) && n >= 60);
    } else {
        day = days_from_civil(y, 1, 1) + r->n;
    }
    return day * 86400 + r->time_s;
}

int td_tz_posix_offset(const char *tz, int64_t t, int *offset_s)
{
    int std_off, dst_off;
    rule_t start, end;
    const char *p = tz_name(tz);

    if (p == NULL || (p = tz_offset(p, &std_off, false)) == NULL) {
        return TD_EINVAL;
    }
    std_off = -std_off; /* POSIX counts west of Greenwich */
    if (*p == '\0') {
        *offset_s = std_off;
        return TD_OK;
    }
    if ((p = tz_name(p)) == NULL) {
        return TD_EINVAL;
    }
    dst_off = std_off + 3600;
    if (*p != ',' && *p != '\0') {
        if ((p = tz_offset(p, &dst_off, false)) == NULL) {
            return TD_EINVAL;
        }
        dst_off = -dst_off;
    }
    if (*p != ',' || (p = tz_rule(p + 1, &start)) == NULL || *p != ',' ||
        (p = tz_rule(p + 1, &end)) == NULL) {
        return TD_EINVAL;
    }
    int64_t days = t / 86400 - (t % 86400 < 0);
    int y, m, d;
    {
        /* civil year of t in standard time */
        int64_t z = days + (int64_t)std_off / 86400 + 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        int64_t doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp = (5 * doy + 2) / 153;
        d = (int)(doy - (153 * mp + 2) / 5 + 1);
        m = (int)(mp < 10 ? mp + 3 : mp - 9);
        y = (int)(yoe + era * 400 + (m <= 2));
        (void)d;
    }
    /* start is given in standard local time, end in daylight local time */
    int64_t s = rule_time(&start, y) - std_off;
    int64_t e = rule_time(&end, y) - dst_off;
    bool in_dst = s < e ? (t >= s && t < e) : !(t >= e && t < s);
    *offset_s = in_dst ? dst_off : std_off;
    return TD_OK;
}

int td_tz_tzif_offset(const unsigned char *data, size_t len, int64_t utc_ms, int *offset_s)
{
    const unsigned char *p = data, *end = data + len;
    int64_t t = utc_ms / 1000 - (utc_ms % 1000 < 0);
    int tsize = 4;

    if (len < 44 || memcmp(p, "TZif", 4) != 0) {
        return TD_EINVAL;
    }
    char version = (char)p[4];
    for (int pass = 0; pass < 2; pass++) {
        if ((size_t)(end - p) < 44 || memcmp(p, "TZif", 4) != 0) {
            return TD_EINVAL;
        }
        int64_t isut = be(p + 20, 4), isstd = be(p + 24, 4), leapc = be(p + 28, 4);
        int64_t timec = be(p + 32, 4), typec = be(p + 36, 4), charc = be(p + 40, 4);
        if (isut < 0 || isstd < 0 || leapc < 0 || timec < 0 || typec < 1 || charc < 0 ||
            timec > 100000 || typec > 256 || leapc > 100000 || charc > 100000 || isut > 256 ||
            isstd > 256) {
            return TD_EINVAL;
        }
        p += 44;
        size_t block = (size_t)(timec * tsize + timec + typec * 6 + charc + leapc * (tsize + 4) +
                                isstd + isut);
        if ((size_t)(end - p) < block) {
            return TD_EINVAL;
        }
        if (pass == 0 && version >= '2') {
            p += block; /* skip the 32-bit block: the 64-bit one follows */
            tsize = 8;
            continue;
        }
        const unsigned char *times = p, *idx = p + timec * tsize, *types = idx + timec;
        int64_t lo = 0, hi = timec; /* first transition after t */
        while (lo < hi) {
            int64_t mid = (lo + hi) / 2;
            if (be(times + mid * tsize, tsize) <= t) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        int type = 0;
        if (lo == 0) {
            /* before the first transition: the first standard-time type */
            for (int k = 0; k < typec; k++) {
                if (types[k * 6 + 4] == 0) {
                    type = k;
                    break;
                }
            }
        } else {
            type = idx[lo - 1];
        }
        if (type >= typec) {
            return TD_EINVAL;
        }
        if (lo == timec && version >= '2') {
            /* after the last transition the footer's POSIX rule decides */
            const unsigned char *f = p + block;
            if (end - f >= 2 && f[0] == '\n') {
                const unsigned char *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
                if (nl && nl > f + 1 && nl - f < 128) {
                    char tz[128];
                    memcpy(tz, f + 1, (size_t)(nl - f - 1));
                    tz[nl - f - 1] = '\0';
                    if (td_tz_posix_offset(tz, t, offset_s) == TD_OK) {
                        return TD_OK;
                    }
                }
            }
        }
        int64_t utoff = be(types + type * 6, 4);
        if (utoff < -93599 || utoff > 93599) {
            return TD_EINVAL; /* RFC 8536 3.2: within -25:59:59 and +25:59:59 */
        }
        *offset_s = (int)utoff;
        return TD_OK;
    }
    return TD_EINVAL;
}

/* ---- the zone cache --------------------------------------------------- */

#define MAX_MISSING   256   /* unknown names remembered; more are looked for each time */
#define MAX_TZIF_SIZE 65536 /* real zone files are a few kB */

typedef struct zone {
    char *name;
    unsigned char *data; /* NULL: known to be missing */
    size_t len;
    struct zone *next;
} zone_t;

struct td_tz_cache {
    char *dir;
    pthread_mutex_t mu;
    zone_t *zones;
    int n_missing;
};

td_tz_cache_t *td_tz_cache_new(const char *zoneinfo_dir)
{
    td_tz_cache_t *c = td_xcalloc(1, sizeof(*c));

    c->dir = td_xstrdup(zoneinfo_dir ? zoneinfo_dir : "/usr/share/zoneinfo");
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void td_tz_cache_free(td_tz_cache_t *c)
{
    if (c == NULL) {
        return;
    }
    while (c->zones) {
        zone_t *z = c->zones;
        c->zones = z->next;
        free(z->name);
        free(z->data);
        free(z);
    }
    pthread_mutex_destroy(&c->mu);
    free(c->dir);
    free(c);
}

static td_tz_cache_t *shared_cache;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

static void make_shared(void)
{
    shared_cache = td_tz_cache_new(NULL);
}

td_tz_cache_t *td_tz_cache_shared(void)
{
    pthread_once(&shared_once, make_shared);
    return shared_cache;
}

bool td_tz_name_valid(const char *zone)
{
    size_t n = strlen(zone);

    if (n == 0 || n > TD_TZ_NAME_MAX || zone[0] == '/' || strstr(zone, "..")) {
        return false;
    }
    for (const char *c = zone; *c; c++) {
        if (!isalnum((unsigned char)*c) && !strchr("/_-+", *c)) {
            return false;
        }
    }
    return true;
}

/* The zone's file, checked to be TZif; NULL data when there is none. */
static zone_t *load_zone(const td_tz_cache_t *c, const char *zone)
{
    zone_t *z = td_xcalloc(1, sizeof(*z));
    char path[512];
    FILE *f;

    z->name = td_xstrdup(zone);
    snprintf(path, sizeof(path), "%s/%s", c->dir, zone);
    if ((f = fopen(path, "rb")) != NULL) {
        unsigned char *buf = td_xmalloc(MAX_TZIF_SIZE);
        size_t n = fread(buf, 1, MAX_TZIF_SIZE, f);
        fclose(f);
        int off;
        if (n > 0 && n < MAX_TZIF_SIZE && td_tz_tzif_offset(buf, n, 0, &off) == TD_OK) {
            z->data = td_xrealloc(buf, n);
            z->len = n;
        } else {
            free(buf);
        }
    }
    return z;
}

static void zone_free(zone_t *z)
{
    free(z->name);
    free(z->data);
    free(z);
}

int td_tz_cache_offset(void *cache, const char *zone, int64_t utc_ms, int *offset_s)
{
    td_tz_cache_t *c = cache;
    zone_t *z;

    if (zone == NULL) {
        return TD_ENOTFOUND;
    }
    if (td_tz_fixed_offset(zone, offset_s)) {
        return TD_OK;
    }
    if (c == NULL || !td_tz_name_valid(zone)) {
        return TD_ENOTFOUND;
    }
    pthread_mutex_lock(&c->mu);
    for (z = c->zones; z; z = z->next) {
        if (strcmp(z->name, zone) == 0) {
            break;
        }
    }
    if (z == NULL) {
        /* read under the lock: a file read once per zone and process */
        z = load_zone(c, zone);
        if (z->data == NULL) {
            td_log(TD_LOG_WARN, "tz", "unknown time zone zone=\"%s\"", zone);
        }
        if (z->data || c->n_missing < MAX_MISSING) {
            c->n_missing += z->data == NULL;
            z->next = c->zones;
            c->zones = z;
        } else {
            zone_free(z);
            z = NULL;
        }
    }
    pthread_mutex_unlock(&c->mu);
    /* cached zones are never changed or freed before the cache: read unlocked */
    if (z == NULL || z->data == NULL) {
        return TD_ENOTFOUND;
    }
    return td_tz_tzif_offset(z->data, z->len, utc_ms, offset_s) == TD_OK ? TD_OK : TD_ENOTFOUND;
}

int td_tz_local_to_utc(void *cache, const char *zone, int64_t local_ms, int64_t *utc_ms)
{
    const int64_t day = 86400000LL;
    int before, after, o;
    int rc;

    /* the offsets in force a day either side; transitions are further apart */
    if ((rc = td_tz_cache_offset(cache, zone, local_ms - day, &before)) != TD_OK ||
        (rc = td_tz_cache_offset(cache, zone, local_ms + day, &after)) != TD_OK) {
        return rc;
    }
    int64_t t_before = local_ms - (int64_t)before * 1000,
            t_after = local_ms - (int64_t)after * 1000;
    bool ok_before = td_tz_cache_offset(cache, zone, t_before, &o) == TD_OK && o == before;
    bool ok_after = td_tz_cache_offset(cache, zone, t_after, &o) == TD_OK && o == after;
    if (ok_before && ok_after) {
        *utc_ms = t_before < t_after ? t_before : t_after; /* repeated: the first */
        return TD_OK;
    }
    if (ok_before || ok_after) {
        *utc_ms = ok_before ? t_before : t_after;
        return TD_OK;
    }
    /* skipped (the clock jumped over it): find the jump, the first instant
     * of the new offset, between the two readings */
    int64_t lo = t_after < t_before ? t_after : t_before;
    int64_t hi = t_after < t_before ? t_before : t_after;
    while (hi - lo > 1000) {
        int64_t mid = lo + (hi - lo) / 2;
        if (td_tz_cache_offset(cache, zone, mid, &o) == TD_OK && o == before) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    *utc_ms = hi - ((hi % 1000) + 1000) % 1000; /* transitions fall on whole seconds */
    if (td_tz_cache_offset(cache, zone, *utc_ms, &o) != TD_OK || o == before) {
        *utc_ms += 1000;
    }
    return TD_OK;
}

/* ---- the strict offsets of the message settings ----------------------- */

int td_tz_offset_parse(const char *s, int *offset_min)
{
    *offset_min = 0;
    if (s == NULL) {
        return TD_EINVAL;
    }
    if (strcmp(s, "UTC") == 0 || strcmp(s, "Z") == 0) {
        return TD_OK;
    }
    if (strncmp(s, "UTC", 3) == 0) {
        s += 3;
    }
    if ((s[0] != '+' && s[0] != '-') || strlen(s) != 6 || s[3] != ':') {
        return TD_EINVAL;
    }
    for (int i = 1; i < 6; i++) {
        if (i != 3 && !isdigit((unsigned char)s[i])) {
            return TD_EINVAL;
        }
    }
    int h = (s[1] - '0') * 10 + (s[2] - '0'), m = (s[4] - '0') * 10 + (s[5] - '0');
    if (h > 23 || m > 59 || h * 60 + m > 14 * 60) {
        return TD_EINVAL;
    }
    *offset_min = s[0] == '-' ? -(h * 60 + m) : h * 60 + m;
    return TD_OK;
}
