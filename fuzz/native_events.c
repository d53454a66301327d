/* libFuzzer target: the native event parser (POST /v1/events bodies). */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

#include "collect/collect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const td_collect_limits_t lim = { .max_events = 100, .max_items = 50 };
    td_event_batch_t b;
    td_err_t err = { 0 };

    if (td_collect_parse_native((const char *)data, size, &lim, 1795000000000LL, &b, &err) ==
        TD_OK) {
        for (int i = 0; i < b.n; i++) {
            free(td_event_to_json(&b.slots[i].ev, 1795000000000LL));
        }
    }
    td_event_batch_release(&b);
    return 0;
}
