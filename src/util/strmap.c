/* String to integer hash map. */
#include "util/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/banned.h"

uint64_t td_strmap_hash(const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

void td_strmap_clear(td_strmap_t *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slots[i].key);
    }
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

static td_strmap_slot_t *find(const td_strmap_t *m, const char *key, size_t len, uint64_t h)
{
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        td_strmap_slot_t *s = &m->slots[i];
        if (s->key == NULL ||
            (s->hash == h && s->key_len == len && memcmp(s->key, key, len) == 0)) {
            return s;
        }
    }
}

static void grow(td_strmap_t *m)
{
    td_strmap_t bigger = { td_xcalloc(m->cap ? m->cap * 2 : 64, sizeof(td_strmap_slot_t)),
                           m->cap ? m->cap * 2 : 64, m->n };

    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key) {
            *find(&bigger, m->slots[i].key, m->slots[i].key_len, m->slots[i].hash) = m->slots[i];
        }
    }
    free(m->slots);
    *m = bigger;
}

void td_strmap_put(td_strmap_t *m, const char *key, size_t len, int64_t value)
{
    uint64_t h = td_strmap_hash(key, len);

    if ((m->n + 1) * 4 > m->cap * 3) {
        grow(m);
    }
    td_strmap_slot_t *s = find(m, key, len, h);
    if (s->key == NULL) {
        s->key = td_xstrndup(key, len);
        s->key_len = len;
        s->hash = h;
        m->n++;
    }
    s->value = value;
}

bool td_strmap_get(const td_strmap_t *m, const char *key, size_t len, int64_t *value)
{
    if (m->cap == 0) {
        return false;
    }
    td_strmap_slot_t *s = find(m, key, len, td_strmap_hash(key, len));
    if (s->key == NULL) {
        return false;
    }
    *value = s->value;
    return true;
}
