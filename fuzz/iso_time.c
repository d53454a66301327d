/* libFuzzer target: RFC 3339 times (td_time_parse_iso), and the round trip
 * through td_time_format_iso: whatever parses must print as a time that
 * parses back to the same instant. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the years that
 * print with four digits, as the parser wants them */
#define MIN_MS (-62167219200000LL)
#define MAX_MS 253402300799999LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), out[32];
    int64_t ms, back;

    memcpy(s, data, size);
    s[size] = '\0'; /* the parser takes C strings: an exact-size copy finds overreads */
    if (td_time_parse_iso(s, &ms) == TD_OK) {
        td_time_format_iso(ms, out, sizeof(out));
        if (ms >= MIN_MS && ms <= MAX_MS &&
            (td_time_parse_iso(out, &back) != TD_OK || back != ms)) {
            abort();
        }
    }
    free(s);
    return 0;
}
