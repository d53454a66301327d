/* A hash map from strings to 64-bit integers (open addressing, linear
 * probing). Keys are copied. Not thread-safe: one owner at a time. */
#ifndef TD_UTIL_STRMAP_H
#define TD_UTIL_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct td_strmap_slot {
    char *key; /* NULL: empty */
    size_t key_len;
    uint64_t hash;
    int64_t value;
} td_strmap_slot_t;

typedef struct td_strmap {
    td_strmap_slot_t *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;
} td_strmap_t;

#define TD_STRMAP_INIT \
    {                  \
        NULL, 0, 0     \
    }

/* Frees keys and slots; the map is empty and usable afterwards. */
void td_strmap_clear(td_strmap_t *m);
/* Sets key (len bytes) to value, replacing an existing value. */
void td_strmap_put(td_strmap_t *m, const char *key, size_t len, int64_t value);
/* True and *value set when key is present. */
bool td_strmap_get(const td_strmap_t *m, const char *key, size_t len, int64_t *value);
uint64_t td_strmap_hash(const char *key, size_t len);

#endif
