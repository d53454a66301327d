/* libFuzzer target: the suppression list's CSV import (key[,reason] a
 * line) as POST /v1/suppressions:import parses it: every entry it keeps
 * must be a key and a reason the list would accept one at a time. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "message/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ENTRIES 500

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy without a NUL: the parser gets a length */
    char *copy = malloc(size ? size : 1);
    td_suppress_csv_t csv;

    memcpy(copy, data, size);
    int rc = td_suppress_csv_parse(copy, size, MAX_ENTRIES, &csv);
    if (rc != TD_OK && rc != TD_EINVAL && rc != TD_ETOOBIG) {
        abort();
    }
    if (csv.n > MAX_ENTRIES || (rc == TD_EINVAL) != (csv.n_bad > 0 && rc != TD_ETOOBIG) ||
        (rc == TD_OK && csv.n_bad != 0)) {
        abort();
    }
    for (int i = 0; i < csv.n; i++) {
        char again[TD_SUPPRESS_KEY_MAX];
        const td_suppress_entry_t *e = &csv.entries[i];
        /* a key is its own key; a reason is valid */
        if (!td_suppress_key_make(e->key, strlen(e->key), again, sizeof(again)) ||
            strcmp(again, e->key) != 0 || !td_suppress_reason_valid(e->reason)) {
            abort();
        }
    }
    for (int i = 0; i < csv.n_bad && i < TD_SUPPRESS_BAD_MAX; i++) {
        if (csv.bad_lines[i] < 2 || (i > 0 && csv.bad_lines[i] <= csv.bad_lines[i - 1])) {
            abort();
        }
    }
    td_suppress_csv_release(&csv);
    free(copy);
    return 0;
}
