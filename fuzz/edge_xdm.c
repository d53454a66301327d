/* libFuzzer target: the Edge / XDM parser (bodies of POST /ee/v1/interact,
 * /collect, /identity/acquire, /privacy/set-consent) and the kndctr
 * identity cookie decoder, which reads whatever a browser sends. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "collect/collect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const td_collect_limits_t lim = { .max_events = 100, .max_items = 50 };
    td_xdm_request_t r;
    td_err_t err = { 0 };
    char ecid[65], *cookie;

    if (td_collect_parse_xdm((const char *)data, size, "ORG1@AdobeOrg", &lim, 1795000000000LL, &r,
                             &err) == TD_OK) {
        td_collect_xdm_set_ecid(&r, "12345678901234567890123456789012345678");
        for (int i = 0; i < r.batch.n; i++) {
            free(td_event_to_json(&r.batch.slots[i].ev, 1795000000000LL));
        }
    }
    td_xdm_request_release(&r);
    cookie = malloc(size + 1);
    memcpy(cookie, data, size);
    cookie[size] = '\0';
    if (td_collect_kndctr_decode(cookie, ecid, sizeof(ecid)) == TD_OK) {
        td_buf_t b = TD_BUF_INIT;
        td_collect_kndctr_encode(ecid, &b);
        td_buf_release(&b);
    }
    free(cookie);
    return 0;
}
