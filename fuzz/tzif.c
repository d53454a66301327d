/* libFuzzer target: TZif data (RFC 8536) as read from a zoneinfo file,
 * asked for its UTC offset at instants from long before the first listed
 * transition to long after the last (where the POSIX rule of the footer
 * decides). Whatever the bytes, the parser must not read past them. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util/tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int64_t instants[] = { INT64_MIN,
                                        -4000000000000000LL,
                                        -2208988800000LL,
                                        -1,
                                        0,
                                        1774745999000LL,
                                        1774746000000LL,
                                        1795860000000LL,
                                        4118054400000LL,
                                        9000000000000000LL,
                                        INT64_MAX };
    /* an exact-size copy: reads past the end are caught */
    unsigned char *copy = malloc(size ? size : 1);
    int off;

    memcpy(copy, data, size);
    for (size_t i = 0; i < sizeof(instants) / sizeof(instants[0]); i++) {
        /* an offset out of RFC 8536's range (+-25:59:59) is refused, so
         * callers may do arithmetic on what they get */
        if (td_tz_tzif_offset(copy, size, instants[i], &off) == TD_OK &&
            (off < -93599 || off > 93599)) {
            abort();
        }
    }
    /* the instant from the last 8 bytes too, to reach every transition */
    if (size >= 8) {
        int64_t t = 0;
        memcpy(&t, copy + size - 8, 8);
        if (td_tz_tzif_offset(copy, size, t, &off) == TD_OK && (off < -93599 || off > 93599)) {
            abort();
        }
    }
    free(copy);
    return 0;
}
