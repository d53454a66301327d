/* libFuzzer target: tracking token verification (the /t/o, /t/c and /t/u
 * path segment), then the re-encoding of whatever verified. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "track/track.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static td_track_key_t key;
    static int ready;
    td_track_token_t t;

    if (!ready) {
        td_track_key_derive("fuzz secret fuzz secret fuzz sec", 32, &key);
        ready = 1;
    }
    if (td_track_token_decode(&key, (const char *)data, size, &t) == TD_OK) {
        td_buf_t b = TD_BUF_INIT;
        if (td_track_token_encode(&key, &t, &b) == TD_OK &&
            (b.len != size || memcmp(b.data, data, size) != 0)) {
            __builtin_trap(); /* one token, one spelling */
        }
        td_buf_release(&b);
    }
    return 0;
}
