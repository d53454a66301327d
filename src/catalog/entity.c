/* Entities: the value struct's life cycle, merging partial updates, packing
 * for the index, JSON in the Entities API's shape, conversion to and from
 * store rows, and the text helpers the feed parsers share. */
#include "catalog/internal.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/banned.h"

static const struct field_desc {
    unsigned bit;
    const char *api; /* Entities API and entity.* parameter name */
    const char *alt; /* Target CSV header name, when different */
} fields[] = {
    { TD_ENTITY_NAME, "name", NULL },
    { TD_ENTITY_CATEGORIES, "categories", "categoryId" },
    { TD_ENTITY_BRAND, "brand", NULL },
    { TD_ENTITY_PAGE_URL, "pageUrl", NULL },
    { TD_ENTITY_THUMBNAIL_URL, "thumbnailUrl", NULL },
    { TD_ENTITY_VALUE, "value", NULL },
    { TD_ENTITY_INVENTORY, "inventory", NULL },
    { TD_ENTITY_MARGIN, "margin", NULL },
    { TD_ENTITY_MESSAGE, "message", NULL },
    { TD_ENTITY_ENVIRONMENT, "environment", NULL },
};

/* The attributes{} members that are standard fields, in output order. */
static const unsigned attr_fields[] = { TD_ENTITY_VALUE,    TD_ENTITY_INVENTORY,
                                        TD_ENTITY_MARGIN,   TD_ENTITY_MESSAGE,
                                        TD_ENTITY_PAGE_URL, TD_ENTITY_THUMBNAIL_URL,
                                        TD_ENTITY_BRAND };

const char *td_entity_field_name(unsigned field)
{
    for (size_t i = 0; i < TD_ARRAY_LEN(fields); i++) {
        if (fields[i].bit == field) {
            return fields[i].api;
        }
    }
    return "?";
}

static bool name_is(const char *name, size_t len, const char *want)
{
    return want && strlen(want) == len && strncasecmp(name, want, len) == 0;
}

unsigned td_entity_field_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < TD_ARRAY_LEN(fields); i++) {
        if (name_is(name, len, fields[i].api) || name_is(name, len, fields[i].alt)) {
            return fields[i].bit;
        }
    }
    return 0;
}

static char **str_field(td_entity_t *e, unsigned field)
{
    switch (field) {
    case TD_ENTITY_NAME:
        return &e->name;
    case TD_ENTITY_BRAND:
        return &e->brand;
    case TD_ENTITY_PAGE_URL:
        return &e->page_url;
    case TD_ENTITY_THUMBNAIL_URL:
        return &e->thumbnail_url;
    case TD_ENTITY_MESSAGE:
        return &e->message;
    default:
        return NULL;
    }
}

static double *num_field(td_entity_t *e, unsigned field)
{
    switch (field) {
    case TD_ENTITY_VALUE:
        return &e->value;
    case TD_ENTITY_INVENTORY:
        return &e->inventory;
    case TD_ENTITY_MARGIN:
        return &e->margin;
    default:
        return NULL;
    }
}

static const char *cstr_field(const td_entity_t *e, unsigned field)
{
    return *str_field((td_entity_t *)e, field);
}

static double cnum_field(const td_entity_t *e, unsigned field)
{
    return *num_field((td_entity_t *)e, field);
}

void td_attr_release(td_attr_t *a)
{
    free(a->name);
    if (a->type == TD_ATTR_STRING) {
        free(a->str);
    } else if (a->type == TD_ATTR_LIST) {
        for (int i = 0; i < a->n_list; i++) {
            free(a->list[i]);
        }
        free(a->list);
    }
    memset(a, 0, sizeof(*a));
}

static void release_categories(td_entity_t *e)
{
    for (int i = 0; i < e->n_categories; i++) {
        free(e->categories[i]);
    }
    free(e->categories);
    e->categories = NULL;
    e->n_categories = 0;
}

void td_entity_release(td_entity_t *e)
{
    if (e == NULL) {
        return;
    }
    if (e->packed_) {
        TD_BUG("td_entity_release on a packed entity");
    }
    free(e->id);
    free(e->name);
    free(e->brand);
    free(e->page_url);
    free(e->thumbnail_url);
    free(e->message);
    release_categories(e);
    for (int i = 0; i < e->n_attrs; i++) {
        td_attr_release(&e->attrs[i]);
    }
    free(e->attrs);
    memset(e, 0, sizeof(*e));
}

void td_entity_move(td_entity_t *dst, td_entity_t *src)
{
    td_entity_release(dst);
    *dst = *src;
    memset(src, 0, sizeof(*src));
}

/* Arrays that grow by doubling when their length reaches a power of two
 * hold at least this much; copies must keep that. */
static size_t grow_cap(int n)
{
    size_t cap = 2;

    while (cap < (size_t)n) {
        cap *= 2;
    }
    return cap;
}

static char *dup_or_null(const char *s)
{
    return s ? td_xstrdup(s) : NULL;
}

static void attr_copy(td_attr_t *dst, const td_attr_t *src)
{
    *dst = *src;
    dst->name = td_xstrdup(src->name);
    if (src->type == TD_ATTR_STRING) {
        dst->str = dup_or_null(src->str);
    } else if (src->type == TD_ATTR_LIST) {
        dst->list = td_xmalloc(sizeof(char *) * grow_cap(src->n_list));
        for (int i = 0; i < src->n_list; i++) {
            dst->list[i] = td_xstrdup(src->list[i]);
        }
    }
}

void td_entity_copy(td_entity_t *dst, const td_entity_t *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->id = dup_or_null(src->id);
    dst->name = dup_or_null(src->name);
    dst->brand = dup_or_null(src->brand);
    dst->page_url = dup_or_null(src->page_url);
    dst->thumbnail_url = dup_or_null(src->thumbnail_url);
    dst->message = dup_or_null(src->message);
    dst->value = src->value;
    dst->inventory = src->inventory;
    dst->margin = src->margin;
    dst->environment = src->environment;
    dst->has = src->has;
    dst->clear = src->clear;
    dst->updated_ms = src->updated_ms;
    if (src->n_categories) {
        dst->categories = td_xmalloc(sizeof(char *) * grow_cap(src->n_categories));
        for (int i = 0; i < src->n_categories; i++) {
            dst->categories[i] = td_xstrdup(src->categories[i]);
        }
        dst->n_categories = src->n_categories;
    }
    if (src->n_attrs) {
        dst->attrs = td_xcalloc(grow_cap(src->n_attrs), sizeof(td_attr_t));
        for (int i = 0; i < src->n_attrs; i++) {
            attr_copy(&dst->attrs[i], &src->attrs[i]);
        }
        dst->n_attrs = src->n_attrs;
    }
}

void td_entity_set_str(td_entity_t *e, unsigned field, const char *s, size_t len)
{
    if (field == 0) {
        free(e->id);
        e->id = td_xstrndup(s, len);
        return;
    }
    char **p = str_field(e, field);
    if (p == NULL) {
        TD_BUG("td_entity_set_str on a field that is not text");
    }
    free(*p);
    *p = td_xstrndup(s, len);
    e->has |= field;
    e->clear &= ~field;
}

static int find_category(const td_entity_t *e, const char *s, size_t len)
{
    for (int i = 0; i < e->n_categories; i++) {
        if (strncmp(e->categories[i], s, len) == 0 && e->categories[i][len] == '\0') {
            return i;
        }
    }
    return -1;
}

void td_entity_add_category(td_entity_t *e, const char *s, size_t len)
{
    e->has |= TD_ENTITY_CATEGORIES;
    e->clear &= ~TD_ENTITY_CATEGORIES;
    if (len == 0 || find_category(e, s, len) >= 0) {
        return;
    }
    if ((e->n_categories & (e->n_categories - 1)) == 0) {
        size_t cap = e->n_categories ? (size_t)e->n_categories * 2 : 2;
        e->categories = td_xrealloc(e->categories, sizeof(char *) * cap);
    }
    e->categories[e->n_categories++] = td_xstrndup(s, len);
}

static int find_attr(const td_entity_t *e, const char *name, size_t len)
{
    for (int i = 0; i < e->n_attrs; i++) {
        if (strncmp(e->attrs[i].name, name, len) == 0 && e->attrs[i].name[len] == '\0') {
            return i;
        }
    }
    return -1;
}

td_attr_t *td_entity_set_attr(td_entity_t *e, const char *name, size_t name_len)
{
    int i = find_attr(e, name, name_len);

    if (i >= 0) {
        td_attr_t *a = &e->attrs[i];
        char *keep = a->name;
        a->name = NULL;
        td_attr_release(a);
        a->name = keep;
        return a;
    }
    if ((e->n_attrs & (e->n_attrs - 1)) == 0) {
        size_t cap = e->n_attrs ? (size_t)e->n_attrs * 2 : 2;
        e->attrs = td_xrealloc(e->attrs, sizeof(td_attr_t) * cap);
    }
    td_attr_t *a = &e->attrs[e->n_attrs++];
    memset(a, 0, sizeof(*a));
    a->name = td_xstrndup(name, name_len);
    return a;
}

const td_attr_t *td_entity_attr(const td_entity_t *e, const char *name)
{
    int i = find_attr(e, name, strlen(name));

    return i >= 0 ? &e->attrs[i] : NULL;
}

static void remove_attr(td_entity_t *e, int i)
{
    td_attr_release(&e->attrs[i]);
    memmove(&e->attrs[i], &e->attrs[i + 1], sizeof(td_attr_t) * (size_t)(e->n_attrs - i - 1));
    e->n_attrs--;
}

static void merge_categories(td_entity_t *dst, const td_entity_t *src)
{
    int n_new = 0;

    for (int i = 0; i < src->n_categories; i++) {
        n_new += find_category(dst, src->categories[i], strlen(src->categories[i])) < 0;
    }
    /* Target appends categoryId values up to a limit; past ours the oldest
     * go, so that a product moved to a new category keeps the new one */
    int drop = dst->n_categories + n_new - TD_CATALOG_MAX_CATEGORIES;
    if (drop > 0) {
        for (int i = 0; i < drop && i < dst->n_categories; i++) {
            free(dst->categories[i]);
        }
        drop = drop < dst->n_categories ? drop : dst->n_categories;
        memmove(dst->categories, dst->categories + drop,
                sizeof(char *) * (size_t)(dst->n_categories - drop));
        dst->n_categories -= drop;
    }
    for (int i = 0; i < src->n_categories; i++) {
        if (dst->n_categories < TD_CATALOG_MAX_CATEGORIES) {
            td_entity_add_category(dst, src->categories[i], strlen(src->categories[i]));
        }
    }
}

int td_entity_merge(td_entity_t *dst, const td_entity_t *src, bool append_categories, td_err_t *err)
{
    int n = dst->n_attrs;

    for (int i = 0; i < src->n_attrs; i++) {
        bool present = find_attr(dst, src->attrs[i].name, strlen(src->attrs[i].name)) >= 0;
        if (src->attrs[i].type == TD_ATTR_NULL) {
            n -= present;
        } else {
            n += !present;
        }
    }
    if (n > TD_CATALOG_MAX_ATTRS) {
        return td_err_set(err, TD_ETOOBIG, "attributes",
                          "the entity would have %d custom attributes (at most %d)", n,
                          TD_CATALOG_MAX_ATTRS);
    }
    if (dst->id == NULL && src->id) {
        dst->id = td_xstrdup(src->id);
    }
    for (size_t i = 0; i < TD_ARRAY_LEN(fields); i++) {
        unsigned bit = fields[i].bit;
        char **s = str_field(dst, bit);
        double *d = num_field(dst, bit);
        if (src->has & bit) {
            if (s) {
                free(*s);
                *s = td_xstrdup(cstr_field(src, bit));
            } else if (d) {
                *d = cnum_field(src, bit);
            } else if (bit == TD_ENTITY_ENVIRONMENT) {
                dst->environment = src->environment;
            } else if (bit == TD_ENTITY_CATEGORIES) {
                if (!append_categories) {
                    release_categories(dst);
                }
                merge_categories(dst, src);
            }
            dst->has |= bit;
        } else if (src->clear & bit) {
            if (s) {
                free(*s);
                *s = NULL;
            } else if (d) {
                *d = 0;
            } else if (bit == TD_ENTITY_ENVIRONMENT) {
                dst->environment = 0;
            } else if (bit == TD_ENTITY_CATEGORIES) {
                release_categories(dst);
            }
            dst->has &= ~bit;
        }
    }
    for (int i = 0; i < src->n_attrs; i++) {
        const td_attr_t *a = &src->attrs[i];
        int at = find_attr(dst, a->name, strlen(a->name));
        if (a->type == TD_ATTR_NULL) {
            if (at >= 0) {
                remove_attr(dst, at);
            }
            continue;
        }
        td_attr_t *d = td_entity_set_attr(dst, a->name, strlen(a->name));
        char *keep = d->name;
        attr_copy(d, a);
        free(d->name);
        d->name = keep;
    }
    dst->clear = 0;
    if (src->updated_ms) {
        dst->updated_ms = src->updated_ms;
    }
    return TD_OK;
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool attr_eq(const td_attr_t *a, const td_attr_t *b)
{
    if (a->type != b->type || a->n_list != b->n_list) {
        return false;
    }
    if ((a->type == TD_ATTR_STRING && !str_eq(a->str, b->str)) ||
        (a->type == TD_ATTR_NUMBER && a->num != b->num)) {
        return false;
    }
    for (int i = 0; i < a->n_list; i++) {
        if (strcmp(a->list[i], b->list[i]) != 0) {
            return false;
        }
    }
    return true;
}

bool td_entity_equal(const td_entity_t *a, const td_entity_t *b)
{
    if (!str_eq(a->id, b->id) || a->has != b->has || a->n_categories != b->n_categories ||
        a->n_attrs != b->n_attrs) {
        return false;
    }
    for (size_t i = 0; i < TD_ARRAY_LEN(fields); i++) {
        unsigned bit = fields[i].bit;
        if (!(a->has & bit)) {
            continue;
        }
        if (str_field((td_entity_t *)a, bit) && !str_eq(cstr_field(a, bit), cstr_field(b, bit))) {
            return false;
        }
        if (num_field((td_entity_t *)a, bit) && cnum_field(a, bit) != cnum_field(b, bit)) {
            return false;
        }
    }
    if ((a->has & TD_ENTITY_ENVIRONMENT) && a->environment != b->environment) {
        return false;
    }
    for (int i = 0; i < a->n_categories; i++) {
        if (strcmp(a->categories[i], b->categories[i]) != 0) {
            return false;
        }
    }
    for (int i = 0; i < a->n_attrs; i++) {
        int j = find_attr(b, a->attrs[i].name, strlen(a->attrs[i].name));
        if (j < 0 || !attr_eq(&a->attrs[i], &b->attrs[j])) {
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Packing: one allocation per entity in the index keeps memory near the size
 * of the data (a million entities would otherwise cost ten million mallocs
 * and their headers). */

typedef struct pack {
    char *strings; /* where the next string goes */
} pack_t;

/* Attribute names, category names and brands repeat across a catalog:
 * packed entities share one copy of each (a million entities with five
 * attributes would otherwise hold five million copies of five names).
 * Interned strings live as long as the process; the pool is capped, and
 * past the cap strings are simply copied. */
#define INTERN_MAX_COUNT 65536
#define INTERN_MAX_LEN   128
#define INTERN_MAX_VALUE 32

static pthread_mutex_t intern_mu = PTHREAD_MUTEX_INITIALIZER;
static char **intern_slots;
static size_t intern_cap, intern_n;

static uint64_t intern_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    }
    return h ^ (h >> 31);
}

static void intern_grow(void)
{
    char **old = intern_slots;
    size_t old_cap = intern_cap;

    intern_cap = intern_cap ? intern_cap * 2 : 1024;
    intern_slots = td_xcalloc(intern_cap, sizeof(char *));
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i]) {
            size_t j = intern_hash(old[i]) & (intern_cap - 1);
            while (intern_slots[j]) {
                j = (j + 1) & (intern_cap - 1);
            }
            intern_slots[j] = old[i];
        }
    }
    free(old);
}

/* The shared copy of s, or NULL (s too long, or the pool full). Call with
 * intern_mu held. */
static const char *intern(const char *s)
{
    size_t i;

    if (s == NULL || strlen(s) > INTERN_MAX_LEN) {
        return NULL;
    }
    if (intern_cap == 0) {
        intern_grow();
    }
    for (i = intern_hash(s) & (intern_cap - 1); intern_slots[i]; i = (i + 1) & (intern_cap - 1)) {
        if (strcmp(intern_slots[i], s) == 0) {
            return intern_slots[i];
        }
    }
    if (intern_n >= INTERN_MAX_COUNT) {
        return NULL;
    }
    intern_slots[i] = td_xstrdup(s);
    intern_n++;
    if (intern_n * 2 > intern_cap) {
        const char *kept = intern_slots[i];
        intern_grow();
        return kept;
    }
    return intern_slots[i];
}

static size_t str_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

static char *pack_str(pack_t *p, const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    size_t n = strlen(s) + 1;
    char *out = p->strings;
    memcpy(out, s, n);
    p->strings += n;
    return out;
}

td_entity_t *td_entity_pack(const td_entity_t *src)
{
    const char *names[TD_CATALOG_MAX_ATTRS], *cats[TD_CATALOG_MAX_CATEGORIES], *brand;
    const char *values[TD_CATALOG_MAX_ATTRS];
    size_t ptrs = (size_t)src->n_categories, strings = 0;
    td_entity_t *e;
    pack_t p;

    pthread_mutex_lock(&intern_mu);
    brand = intern(src->brand);
    for (int i = 0; i < src->n_attrs && i < TD_CATALOG_MAX_ATTRS; i++) {
        const td_attr_t *a = &src->attrs[i];
        names[i] = intern(a->name);
        /* short text values (colours, sizes, flags) repeat too */
        values[i] =
            a->type == TD_ATTR_STRING && strlen(a->str) <= INTERN_MAX_VALUE ? intern(a->str) : NULL;
    }
    for (int i = 0; i < src->n_categories && i < TD_CATALOG_MAX_CATEGORIES; i++) {
        cats[i] = intern(src->categories[i]);
    }
    pthread_mutex_unlock(&intern_mu);

    strings += str_size(src->id) + str_size(src->name) + (brand ? 0 : str_size(src->brand)) +
               str_size(src->page_url) + str_size(src->thumbnail_url) + str_size(src->message);
    for (int i = 0; i < src->n_categories; i++) {
        if (i >= TD_CATALOG_MAX_CATEGORIES || cats[i] == NULL) {
            strings += str_size(src->categories[i]);
        }
    }
    for (int i = 0; i < src->n_attrs; i++) {
        const td_attr_t *a = &src->attrs[i];
        if (i >= TD_CATALOG_MAX_ATTRS || names[i] == NULL) {
            strings += str_size(a->name);
        }
        if (a->type == TD_ATTR_STRING && (i >= TD_CATALOG_MAX_ATTRS || values[i] == NULL)) {
            strings += str_size(a->str);
        }
        ptrs += a->type == TD_ATTR_LIST ? (size_t)a->n_list : 0;
        for (int j = 0; a->type == TD_ATTR_LIST && j < a->n_list; j++) {
            strings += str_size(a->list[j]);
        }
    }
    size_t attrs_at = sizeof(td_entity_t);
    size_t ptrs_at = attrs_at + sizeof(td_attr_t) * (size_t)src->n_attrs;
    size_t strings_at = ptrs_at + sizeof(char *) * ptrs;
    char *block = td_xmalloc(strings_at + strings);
    char **ptr = (char **)(void *)(block + ptrs_at);

    e = (td_entity_t *)(void *)block;
    *e = *src;
    p.strings = block + strings_at;
    e->id = pack_str(&p, src->id);
    e->name = pack_str(&p, src->name);
    e->brand = brand ? (char *)brand : pack_str(&p, src->brand);
    e->page_url = pack_str(&p, src->page_url);
    e->thumbnail_url = pack_str(&p, src->thumbnail_url);
    e->message = pack_str(&p, src->message);
    e->categories = src->n_categories ? ptr : NULL;
    for (int i = 0; i < src->n_categories; i++) {
        bool shared = i < TD_CATALOG_MAX_CATEGORIES && cats[i];
        *ptr++ = shared ? (char *)cats[i] : pack_str(&p, src->categories[i]);
    }
    e->attrs = src->n_attrs ? (td_attr_t *)(void *)(block + attrs_at) : NULL;
    for (int i = 0; i < src->n_attrs; i++) {
        const td_attr_t *a = &src->attrs[i];
        td_attr_t *d = &e->attrs[i];
        bool shared = i < TD_CATALOG_MAX_ATTRS && names[i];
        *d = *a;
        d->name = shared ? (char *)names[i] : pack_str(&p, a->name);
        if (a->type == TD_ATTR_STRING) {
            bool shared_value = i < TD_CATALOG_MAX_ATTRS && values[i];
            d->str = shared_value ? (char *)values[i] : pack_str(&p, a->str);
        } else if (a->type == TD_ATTR_LIST) {
            d->list = a->n_list ? ptr : NULL;
            for (int j = 0; j < a->n_list; j++) {
                *ptr++ = pack_str(&p, a->list[j]);
            }
        }
    }
    e->clear = 0;
    e->refs_ = 1;
    e->ordinal_ = 0;
    e->packed_ = true;
    return e;
}

const td_entity_t *td_entity_ref(const td_entity_t *e)
{
    __atomic_add_fetch(&((td_entity_t *)e)->refs_, 1, __ATOMIC_RELAXED);
    return e;
}

void td_entity_unref(const td_entity_t *e)
{
    if (e && __atomic_sub_fetch(&((td_entity_t *)e)->refs_, 1, __ATOMIC_ACQ_REL) == 0) {
        free((void *)e);
    }
}

/* ------------------------------------------------------------------------ */
/* JSON */

static void add_key(td_buf_t *b, bool *first, const char *key)
{
    td_buf_adds(b, *first ? "" : ",");
    *first = false;
    td_buf_add_json_str(b, key, strlen(key));
    td_buf_addc(b, ':');
}

static void add_str(td_buf_t *b, const char *s)
{
    td_buf_add_json_str(b, s, strlen(s));
}

/* Numbers as JSON; whole numbers (counts, prices in cents) skip printf. */
static void add_number(td_buf_t *b, double v)
{
    /* range first: converting a double outside int64_t is undefined */
    if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v) {
        char tmp[24], *p = tmp + sizeof(tmp);
        int64_t x = (int64_t)v;
        uint64_t u = x < 0 ? (uint64_t)-x : (uint64_t)x;
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (x < 0) {
            *--p = '-';
        }
        td_buf_add(b, p, (size_t)(tmp + sizeof(tmp) - p));
        return;
    }
    td_buf_add_double(b, v);
}

static void add_attr_value(td_buf_t *b, const td_attr_t *a)
{
    switch (a->type) {
    case TD_ATTR_STRING:
        add_str(b, a->str);
        break;
    case TD_ATTR_NUMBER:
        add_number(b, a->num);
        break;
    case TD_ATTR_LIST:
        td_buf_addc(b, '[');
        for (int i = 0; i < a->n_list; i++) {
            td_buf_adds(b, i ? "," : "");
            add_str(b, a->list[i]);
        }
        td_buf_addc(b, ']');
        break;
    default:
        td_buf_adds(b, "null");
    }
}

static void add_categories(td_buf_t *b, const td_entity_t *e)
{
    td_buf_addc(b, '[');
    for (int i = 0; i < e->n_categories; i++) {
        td_buf_adds(b, i ? "," : "");
        add_str(b, e->categories[i]);
    }
    td_buf_addc(b, ']');
}

static void add_custom_attrs(td_buf_t *b, const td_entity_t *e, bool *first)
{
    for (int i = 0; i < e->n_attrs; i++) {
        add_key(b, first, e->attrs[i].name);
        add_attr_value(b, &e->attrs[i]);
    }
}

static void add_time(td_buf_t *b, const char *key, int64_t ms)
{
    char ts[32];

    td_time_format_iso(ms, ts, sizeof(ts));
    td_buf_addf(b, ",\"%s\":\"%s\"", key, ts);
}

void td_entity_to_json(const td_entity_t *e, int64_t now_ms, int64_t expiry_ms, td_buf_t *b)
{
    bool first = true;

    td_buf_adds(b, "{\"id\":");
    add_str(b, e->id ? e->id : "");
    if (e->has & TD_ENTITY_NAME) {
        td_buf_adds(b, ",\"name\":");
        add_str(b, e->name);
    }
    td_buf_adds(b, ",\"categories\":");
    add_categories(b, e);
    if (e->has & TD_ENTITY_ENVIRONMENT) {
        td_buf_addf(b, ",\"environment\":%lld", (long long)e->environment);
    }
    td_buf_adds(b, ",\"attributes\":{");
    for (size_t i = 0; i < TD_ARRAY_LEN(attr_fields); i++) {
        unsigned bit = attr_fields[i];
        if (!(e->has & bit)) {
            continue;
        }
        add_key(b, &first, td_entity_field_name(bit));
        if (str_field((td_entity_t *)e, bit)) {
            add_str(b, cstr_field(e, bit));
        } else {
            add_number(b, cnum_field(e, bit));
        }
    }
    add_custom_attrs(b, e, &first);
    td_buf_addc(b, '}');
    if (e->updated_ms) {
        add_time(b, "updated", e->updated_ms);
        if (expiry_ms > 0) {
            add_time(b, "expires", e->updated_ms + expiry_ms);
            td_buf_addf(b, ",\"expired\":%s",
                        td_entity_expired(e, now_ms, expiry_ms) ? "true" : "false");
        }
    }
    td_buf_addc(b, '}');
}

void td_catalog__to_row(const td_entity_t *e, int64_t seq, td_buf_t *cats, td_buf_t *attrs,
                        td_store_entity_t *row)
{
    bool first = true;

    memset(row, 0, sizeof(*row));
    td_buf_reset(cats);
    td_buf_reset(attrs);
    row->id = e->id;
    row->name = e->has & TD_ENTITY_NAME ? e->name : NULL;
    if (e->n_categories) {
        add_categories(cats, e);
        row->categories = cats->data;
    }
    row->brand = e->has & TD_ENTITY_BRAND ? e->brand : NULL;
    row->page_url = e->has & TD_ENTITY_PAGE_URL ? e->page_url : NULL;
    row->thumbnail_url = e->has & TD_ENTITY_THUMBNAIL_URL ? e->thumbnail_url : NULL;
    row->message = e->has & TD_ENTITY_MESSAGE ? e->message : NULL;
    row->has_value = e->has & TD_ENTITY_VALUE;
    row->value = e->value;
    row->has_inventory = e->has & TD_ENTITY_INVENTORY;
    row->inventory = e->inventory;
    row->has_margin = e->has & TD_ENTITY_MARGIN;
    row->margin = e->margin;
    if (e->n_attrs) {
        td_buf_addc(attrs, '{');
        add_custom_attrs(attrs, e, &first);
        td_buf_addc(attrs, '}');
        row->attrs = attrs->data;
    }
    row->environment = e->has & TD_ENTITY_ENVIRONMENT ? e->environment : 0;
    row->updated_ms = e->updated_ms;
    row->change_seq = seq;
}

/* Text of a JSON scalar inside a multi-value attribute. */
static bool scalar_text(json_t *v, char *buf, size_t cap, const char **out)
{
    if (json_is_string(v)) {
        *out = json_string_value(v);
    } else if (json_is_integer(v)) {
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
        *out = buf;
    } else if (json_is_real(v)) {
        td_buf_t b = TD_BUF_INIT;
        td_buf_add_double(&b, json_real_value(v));
        snprintf(buf, cap, "%s", b.data);
        td_buf_release(&b);
        *out = buf;
    } else if (json_is_boolean(v)) {
        *out = json_is_true(v) ? "true" : "false";
    } else {
        return false;
    }
    return true;
}

/* Fills a with the strings of JSON array arr; false when an element is not a
 * scalar or there are too many. */
static bool list_from_json(td_attr_t *a, json_t *arr)
{
    size_t n = json_array_size(arr), i;
    json_t *v;

    if (n > TD_CATALOG_MAX_LIST) {
        return false;
    }
    a->type = TD_ATTR_LIST;
    a->list = n ? td_xmalloc(sizeof(char *) * grow_cap((int)n)) : NULL;
    a->n_list = 0;
    json_array_foreach(arr, i, v)
    {
        char buf[48];
        const char *s;
        if (!scalar_text(v, buf, sizeof(buf), &s)) {
            return false;
        }
        a->list[a->n_list++] = td_xstrdup(s);
    }
    return true;
}

int td_catalog__from_row(const td_store_entity_t *row, td_entity_t *out)
{
    memset(out, 0, sizeof(*out));
    out->id = td_xstrdup(row->id);
    if (row->name) {
        td_entity_set_str(out, TD_ENTITY_NAME, row->name, strlen(row->name));
    }
    if (row->brand) {
        td_entity_set_str(out, TD_ENTITY_BRAND, row->brand, strlen(row->brand));
    }
    if (row->page_url) {
        td_entity_set_str(out, TD_ENTITY_PAGE_URL, row->page_url, strlen(row->page_url));
    }
    if (row->thumbnail_url) {
        td_entity_set_str(out, TD_ENTITY_THUMBNAIL_URL, row->thumbnail_url,
                          strlen(row->thumbnail_url));
    }
    if (row->message) {
        td_entity_set_str(out, TD_ENTITY_MESSAGE, row->message, strlen(row->message));
    }
    if (row->has_value) {
        out->value = row->value;
        out->has |= TD_ENTITY_VALUE;
    }
    if (row->has_inventory) {
        out->inventory = row->inventory;
        out->has |= TD_ENTITY_INVENTORY;
    }
    if (row->has_margin) {
        out->margin = row->margin;
        out->has |= TD_ENTITY_MARGIN;
    }
    if (row->environment) {
        out->environment = row->environment;
        out->has |= TD_ENTITY_ENVIRONMENT;
    }
    out->updated_ms = row->updated_ms;
    if (row->categories) {
        json_t *arr = json_loads(row->categories, 0, NULL);
        size_t i;
        json_t *v;
        if (!json_is_array(arr)) {
            json_decref(arr);
            return TD_EIO;
        }
        json_array_foreach(arr, i, v)
        {
            if (json_is_string(v)) {
                td_entity_add_category(out, json_string_value(v), json_string_length(v));
            }
        }
        json_decref(arr);
    }
    if (row->attrs) {
        json_t *obj = json_loads(row->attrs, 0, NULL), *v;
        const char *key;
        if (!json_is_object(obj)) {
            json_decref(obj);
            return TD_EIO;
        }
        json_object_foreach(obj, key, v)
        {
            td_attr_t *a = td_entity_set_attr(out, key, strlen(key));
            if (json_is_number(v)) {
                a->type = TD_ATTR_NUMBER;
                a->num = json_number_value(v);
            } else if (json_is_array(v)) {
                list_from_json(a, v);
            } else {
                a->type = TD_ATTR_STRING;
                a->str = td_xstrdup(json_is_string(v) ? json_string_value(v) : "");
            }
        }
        json_decref(obj);
    }
    return TD_OK;
}

/* A JSON value for a standard field: text fields take strings, number fields
 * numbers (or numeric strings); null clears the field. */
static int set_field_json(td_entity_t *e, unsigned bit, json_t *v, const char *p, td_err_t *err)
{
    if (json_is_null(v)) {
        e->clear |= bit;
        e->has &= ~bit;
        return TD_OK;
    }
    if (bit == TD_ENTITY_CATEGORIES) {
        size_t i;
        json_t *c;
        if (json_is_string(v)) {
            int rc = td_catalog__add_categories_text(e, json_string_value(v), json_string_length(v),
                                                     err);
            if (rc != TD_OK && err) {
                snprintf(err->path, sizeof(err->path), "%s", p);
            }
            return rc;
        }
        if (!json_is_array(v)) {
            return td_err_set(err, TD_EINVAL, p, "must be an array of strings");
        }
        e->has |= TD_ENTITY_CATEGORIES;
        json_array_foreach(v, i, c)
        {
            const char *s;
            size_t len;
            if (!json_is_string(c)) {
                return td_err_set(err, TD_EINVAL, p, "must be an array of strings");
            }
            s = json_string_value(c);
            len = json_string_length(c);
            td_catalog__trim(&s, &len);
            if (e->n_categories >= TD_CATALOG_MAX_CATEGORIES) {
                return td_err_set(err, TD_ETOOBIG, p, "more than %d categories",
                                  TD_CATALOG_MAX_CATEGORIES);
            }
            td_entity_add_category(e, s, len);
        }
        return TD_OK;
    }
    if (bit == TD_ENTITY_ENVIRONMENT) {
        double d;
        if (json_is_integer(v)) {
            e->environment = json_integer_value(v);
        } else if (json_is_string(v) &&
                   td_catalog__parse_number(json_string_value(v), json_string_length(v), &d) &&
                   d == floor(d) && fabs(d) < 9e15) {
            e->environment = (int64_t)d;
        } else {
            return td_err_set(err, TD_EINVAL, p, "must be an integer environment id");
        }
        e->has |= bit;
        return TD_OK;
    }
    if (str_field(e, bit)) {
        if (!json_is_string(v)) {
            return td_err_set(err, TD_EINVAL, p, "must be a string");
        }
        td_entity_set_str(e, bit, json_string_value(v), json_string_length(v));
        return TD_OK;
    }
    double d;
    if (json_is_number(v)) {
        d = json_number_value(v);
    } else if (!json_is_string(v) ||
               !td_catalog__parse_number(json_string_value(v), json_string_length(v), &d)) {
        return td_err_set(err, TD_EINVAL, p, "must be a number");
    }
    *num_field(e, bit) = d;
    e->has |= bit;
    e->clear &= ~bit;
    return TD_OK;
}

static int set_custom_json(td_entity_t *e, const char *key, json_t *v, const char *p, td_err_t *err)
{
    size_t klen = strlen(key);
    td_attr_t *a;

    if (klen == 0 || klen > TD_CATALOG_MAX_NAME) {
        return td_err_set(err, TD_EINVAL, p, "attribute names have 1 to %d bytes",
                          TD_CATALOG_MAX_NAME);
    }
    if (json_is_object(v)) {
        return td_err_set(err, TD_EINVAL, p,
                          "must be a string, a number or an array of strings, not an object");
    }
    if (find_attr(e, key, klen) < 0 && e->n_attrs >= TD_CATALOG_MAX_ATTRS) {
        return td_err_set(err, TD_ETOOBIG, p, "more than %d custom attributes",
                          TD_CATALOG_MAX_ATTRS);
    }
    a = td_entity_set_attr(e, key, klen);
    if (json_is_null(v)) {
        a->type = TD_ATTR_NULL;
    } else if (json_is_number(v)) {
        a->type = TD_ATTR_NUMBER;
        a->num = json_number_value(v);
    } else if (json_is_array(v)) {
        if (!list_from_json(a, v)) {
            return td_err_set(err, TD_EINVAL, p, "must be an array of at most %d strings",
                              TD_CATALOG_MAX_LIST);
        }
    } else {
        char buf[8];
        const char *s;
        scalar_text(v, buf, sizeof(buf), &s);
        a->type = TD_ATTR_STRING;
        a->str = td_xstrdup(s);
    }
    return TD_OK;
}

static void sub_path(char *out, size_t cap, const char *base, const char *a, const char *b)
{
    snprintf(out, cap, "%s/%s%s%s", base, a, b ? "/" : "", b ? b : "");
}

int td_entity_from_json(const char *text, size_t len, const char *path, td_entity_t *out,
                        td_err_t *err)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je), *v;
    const char *key;
    char p[320];
    int rc = TD_OK;

    memset(out, 0, sizeof(*out));
    if (root == NULL) {
        return td_err_set_at(err, TD_EINVAL, path, je.line, je.column, "malformed JSON: %s",
                             je.text);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return td_err_set(err, TD_EINVAL, path, "an entity must be a JSON object");
    }
    json_object_foreach(root, key, v)
    {
        unsigned bit = td_entity_field_by_name(key, strlen(key));
        sub_path(p, sizeof(p), path, key, NULL);
        if (strcmp(key, "id") == 0) {
            char buf[32];
            if (json_is_integer(v)) {
                snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
                out->id = td_xstrdup(buf);
            } else if (json_is_string(v)) {
                out->id = td_xstrndup(json_string_value(v), json_string_length(v));
            } else {
                rc = td_err_set(err, TD_EINVAL, p, "must be a string");
            }
        } else if (strcmp(key, "attributes") == 0) {
            const char *akey;
            json_t *av;
            if (!json_is_object(v)) {
                rc = td_err_set(err, TD_EINVAL, p, "must be an object");
                break;
            }
            json_object_foreach(v, akey, av)
            {
                unsigned abit = td_entity_field_by_name(akey, strlen(akey));
                sub_path(p, sizeof(p), path, "attributes", akey);
                if (abit && abit != TD_ENTITY_ENVIRONMENT) {
                    rc = set_field_json(out, abit, av, p, err);
                } else {
                    rc = set_custom_json(out, akey, av, p, err);
                }
                if (rc != TD_OK) {
                    break;
                }
            }
        } else if (bit) {
            rc = set_field_json(out, bit, v, p, err);
        } else if (strcmp(key, "updated") == 0 || strcmp(key, "expires") == 0 ||
                   strcmp(key, "expired") == 0) {
            /* read-only fields of GET: accepted so a GET body can be PUT back */
        } else {
            rc = td_err_set(err, TD_EINVAL, p,
                            "unknown field \"%s\" (custom attributes go in \"attributes\")", key);
        }
        if (rc != TD_OK) {
            break;
        }
    }
    json_decref(root);
    if (rc != TD_OK) {
        td_entity_release(out);
        return rc;
    }
    return TD_OK;
}

static bool has_control(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return true;
        }
    }
    return false;
}

static int check_text(const char *s, const char *path, td_err_t *err)
{
    size_t len = strlen(s), bad;

    if (len > TD_CATALOG_MAX_VALUE) {
        return td_err_set(err, TD_ETOOBIG, path, "value of %zu bytes (at most %d)", len,
                          TD_CATALOG_MAX_VALUE);
    }
    if (!td_catalog__utf8_valid(s, len, &bad)) {
        return td_err_set(err, TD_EINVAL, path, "invalid UTF-8 at byte %zu", bad + 1);
    }
    return TD_OK;
}

int td_entity_validate(const td_entity_t *e, td_err_t *err)
{
    int rc;

    if (e->id == NULL || e->id[0] == '\0') {
        return td_err_set(err, TD_EINVAL, "id", "missing entity id");
    }
    if (strlen(e->id) > TD_CATALOG_MAX_ID) {
        return td_err_set(err, TD_ETOOBIG, "id", "entity id of %zu bytes (at most %d)",
                          strlen(e->id), TD_CATALOG_MAX_ID);
    }
    if (has_control(e->id)) {
        return td_err_set(err, TD_EINVAL, "id", "entity id with a control character");
    }
    if ((rc = check_text(e->id, "id", err)) != TD_OK) {
        return rc;
    }
    for (size_t i = 0; i < TD_ARRAY_LEN(fields); i++) {
        unsigned bit = fields[i].bit;
        if ((e->has & bit) && str_field((td_entity_t *)e, bit) &&
            (rc = check_text(cstr_field(e, bit), fields[i].api, err)) != TD_OK) {
            return rc;
        }
        if ((e->has & bit) && num_field((td_entity_t *)e, bit) && !isfinite(cnum_field(e, bit))) {
            return td_err_set(err, TD_EINVAL, fields[i].api, "must be a finite number");
        }
    }
    for (int i = 0; i < e->n_categories; i++) {
        if ((rc = check_text(e->categories[i], "categories", err)) != TD_OK) {
            return rc;
        }
    }
    if (e->n_categories > TD_CATALOG_MAX_CATEGORIES) {
        return td_err_set(err, TD_ETOOBIG, "categories", "more than %d categories",
                          TD_CATALOG_MAX_CATEGORIES);
    }
    if (e->n_attrs > TD_CATALOG_MAX_ATTRS) {
        return td_err_set(err, TD_ETOOBIG, "attributes", "%d custom attributes (at most %d)",
                          e->n_attrs, TD_CATALOG_MAX_ATTRS);
    }
    for (int i = 0; i < e->n_attrs; i++) {
        const td_attr_t *a = &e->attrs[i];
        size_t nlen = strlen(a->name);
        if (nlen == 0 || nlen > TD_CATALOG_MAX_NAME || has_control(a->name)) {
            return td_err_set(err, TD_EINVAL, "attributes",
                              "attribute names have 1 to %d bytes and no control characters",
                              TD_CATALOG_MAX_NAME);
        }
        if ((rc = check_text(a->name, a->name, err)) != TD_OK ||
            (a->type == TD_ATTR_STRING && (rc = check_text(a->str, a->name, err)) != TD_OK)) {
            return rc;
        }
        if (a->type == TD_ATTR_NUMBER && !isfinite(a->num)) {
            return td_err_set(err, TD_EINVAL, a->name, "must be a finite number");
        }
        if (a->n_list > TD_CATALOG_MAX_LIST) {
            return td_err_set(err, TD_ETOOBIG, a->name, "more than %d values", TD_CATALOG_MAX_LIST);
        }
        for (int j = 0; j < a->n_list; j++) {
            if ((rc = check_text(a->list[j], a->name, err)) != TD_OK) {
                return rc;
            }
        }
    }
    return TD_OK;
}

/* ------------------------------------------------------------------------ */
/* Text helpers */

bool td_catalog__utf8_valid(const char *str, size_t len, size_t *bad_at)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i];
        size_t n;
        uint32_t cp;
        /* most feed text is ASCII: eight bytes at a time while it is (no
         * high bit set, and no zero byte) */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ULL) ||
                ((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL)) {
                break;
            }
            i += 8;
        }
        if (i >= len) {
            break;
        }
        c = s[i];
        if (c < 0x80) {
            if (c == 0) {
                goto bad;
            }
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            goto bad;
        }
        if (i + n >= len) {
            goto bad;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                goto bad;
            }
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* overlong forms, surrogates and code points past U+10FFFF */
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            goto bad;
        }
        i += n + 1;
    }
    return true;
bad:
    if (bad_at) {
        *bad_at = i;
    }
    return false;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void td_catalog__trim(const char **s, size_t *len)
{
    while (*len && is_ws(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && is_ws((*s)[*len - 1])) {
        (*len)--;
    }
}

bool td_catalog__blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!is_ws(s[i])) {
            return false;
        }
    }
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool td_catalog__parse_number(const char *s, size_t len, double *out)
{
    char buf[64];
    size_t i = 0, digits = 0;
    char *end;

    td_catalog__trim(&s, &len);
    if (len == 0 || len >= sizeof(buf)) {
        return false;
    }
    if (s[i] == '-' || s[i] == '+') {
        i++;
    }
    for (; i < len && is_digit(s[i]); i++) {
        digits++;
    }
    if (i < len && s[i] == '.') {
        for (i++; i < len && is_digit(s[i]); i++) {
            digits++;
        }
    }
    if (digits == 0) {
        return false;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t exp_digits = 0;
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+')) {
            i++;
        }
        for (; i < len && is_digit(s[i]); i++) {
            exp_digits++;
        }
        if (exp_digits == 0) {
            return false;
        }
    }
    if (i != len) {
        return false;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    *out = strtod(buf, &end);
    return isfinite(*out);
}

const char *td_catalog__number_hint(const char *s, size_t len)
{
    bool comma = memchr(s, ',', len) != NULL, dot = memchr(s, '.', len) != NULL, unit = false;

    for (size_t i = 0; i < len; i++) {
        unit |= (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                (unsigned char)s[i] >= 0x80 || s[i] == '$';
    }
    if (comma && !dot) {
        return unit ? "write it with a dot as the decimal separator and no currency or unit "
                      "(12.99)"
                    : "use a dot as the decimal separator (12.99)";
    }
    if (comma) {
        return "no thousands separators (1299.00)";
    }
    return unit ? "a plain number is expected, without currency or unit"
                : "a plain number is expected";
}

/* "12", "-3", "9.25"; not "007", "1e3" or "12." (codes and oddities stay
 * text, so "00123" keeps its zeros). */
static bool plain_decimal(const char *s, size_t len)
{
    size_t i = 0, int_digits = 0, frac_digits = 0;

    if (i < len && s[i] == '-') {
        i++;
    }
    if (i < len && s[i] == '0') {
        i++;
        int_digits = 1;
    } else {
        for (; i < len && is_digit(s[i]); i++) {
            int_digits++;
        }
    }
    if (int_digits == 0 || int_digits > 15) {
        return false;
    }
    if (i < len && s[i] == '.') {
        for (i++; i < len && is_digit(s[i]); i++) {
            frac_digits++;
        }
        if (frac_digits == 0 || frac_digits > 9) {
            return false;
        }
    }
    return i == len;
}

/* ["a", "b"] without escapes, the usual multi-value cell, read without
 * building a JSON tree: returns 1 (set), 0 (too many values) or -1 (not that
 * simple: let jansson decide). */
static int simple_string_array(td_entity_t *e, const char *name, size_t name_len, const char *v,
                               size_t len)
{
    const char *p = v + 1, *end = v + len - 1;
    const char *starts[16];
    size_t lens[16];
    int n = 0;

    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }
        if (p == end && n == 0) {
            break;
        }
        if (p >= end || *p != '"' || n == 16) {
            return -1;
        }
        const char *q = ++p;
        while (q < end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) {
            q++;
        }
        if (q >= end || *q != '"') {
            return -1;
        }
        starts[n] = p;
        lens[n++] = (size_t)(q - p);
        p = q + 1;
        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }
        if (p == end) {
            break;
        }
        if (*p++ != ',') {
            return -1;
        }
    }
    if (n > TD_CATALOG_MAX_LIST) {
        return 0;
    }
    td_attr_t *a = td_entity_set_attr(e, name, name_len);
    a->type = TD_ATTR_LIST;
    a->list = n ? td_xmalloc(sizeof(char *) * grow_cap(n)) : NULL;
    a->n_list = n;
    for (int i = 0; i < n; i++) {
        a->list[i] = td_xstrndup(starts[i], lens[i]);
    }
    return 1;
}

int td_catalog__set_attr_text(td_entity_t *e, const char *name, size_t name_len, const char *v,
                              size_t len, td_err_t *err)
{
    td_attr_t *a;

    td_catalog__trim(&v, &len);
    if (find_attr(e, name, name_len) < 0 && e->n_attrs >= TD_CATALOG_MAX_ATTRS) {
        return td_err_set(err, TD_ETOOBIG, "", "more than %d custom attributes",
                          TD_CATALOG_MAX_ATTRS);
    }
    if (len >= 2 && v[0] == '[' && v[len - 1] == ']') {
        int fast = simple_string_array(e, name, name_len, v, len);
        if (fast >= 0) {
            return fast ? TD_OK
                        : td_err_set(err, TD_EINVAL, "",
                                     "a multi-value attribute is a JSON array of at most %d "
                                     "strings",
                                     TD_CATALOG_MAX_LIST);
        }
        json_t *arr = json_loadb(v, len, 0, NULL);
        if (json_is_array(arr)) {
            a = td_entity_set_attr(e, name, name_len);
            bool ok = list_from_json(a, arr);
            json_decref(arr);
            if (!ok) {
                return td_err_set(err, TD_EINVAL, "",
                                  "a multi-value attribute is a JSON array of at most %d "
                                  "strings",
                                  TD_CATALOG_MAX_LIST);
            }
            return TD_OK;
        }
        json_decref(arr);
    }
    a = td_entity_set_attr(e, name, name_len);
    if (plain_decimal(v, len)) {
        a->type = TD_ATTR_NUMBER;
        td_catalog__parse_number(v, len, &a->num);
    } else {
        a->type = TD_ATTR_STRING;
        a->str = td_xstrndup(v, len);
    }
    return TD_OK;
}

static int add_category_checked(td_entity_t *e, const char *s, size_t len, td_err_t *err)
{
    td_catalog__trim(&s, &len);
    if (len == 0) {
        return TD_OK;
    }
    if (e->n_categories >= TD_CATALOG_MAX_CATEGORIES && find_category(e, s, len) < 0) {
        return td_err_set(err, TD_ETOOBIG, "", "more than %d categories",
                          TD_CATALOG_MAX_CATEGORIES);
    }
    td_entity_add_category(e, s, len);
    return TD_OK;
}

int td_catalog__add_categories_text(td_entity_t *e, const char *v, size_t len, td_err_t *err)
{
    int rc;

    td_catalog__trim(&v, &len);
    e->has |= TD_ENTITY_CATEGORIES;
    if (len >= 2 && v[0] == '[' && v[len - 1] == ']') {
        json_t *arr = json_loadb(v, len, 0, NULL), *c;
        if (json_is_array(arr)) {
            size_t i;
            rc = TD_OK;
            json_array_foreach(arr, i, c)
            {
                char buf[48];
                const char *s;
                if (!scalar_text(c, buf, sizeof(buf), &s)) {
                    rc = td_err_set(err, TD_EINVAL, "", "categories must be strings");
                } else {
                    rc = add_category_checked(e, s, strlen(s), err);
                }
                if (rc != TD_OK) {
                    break;
                }
            }
            json_decref(arr);
            return rc;
        }
        json_decref(arr);
    }
    while (len > 0) {
        const char *comma = memchr(v, ',', len);
        size_t n = comma ? (size_t)(comma - v) : len;
        if ((rc = add_category_checked(e, v, n, err)) != TD_OK) {
            return rc;
        }
        v += n;
        len -= n;
        if (comma) {
            v++;
            len--;
        }
    }
    return TD_OK;
}
