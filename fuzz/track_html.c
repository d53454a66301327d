/* libFuzzer target: the rewrite of an email's HTML links into tracked
 * links, and the plain-text part and MIME message built from the result. */
#include <stdint.h>
#include <stddef.h>

#include "message/message.h"
#include "track/track.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static td_track_key_t key;
    static int ready;
    td_buf_t out = TD_BUF_INIT, msg = TD_BUF_INIT;
    td_err_t err = { 0 };
    int n = 0;

    if (!ready) {
        td_track_key_derive("fuzz secret fuzz secret fuzz sec", 32, &key);
        ready = 1;
    }
    td_track_ctx_t c = { .key = &key,
                         .base_url = "https://t.example",
                         .message_id = "tandem.1.email@shop.example",
                         .email = "jane@example.com",
                         .now_ms = 1795000000000LL };
    if (td_track_rewrite_html(&c, (const char *)data, size, &out, &n) == TD_OK) {
        td_mime_message_t m = { .from_addr = "news@shop.example",
                                .to_addr = "jane@example.com",
                                .subject = "s",
                                .html = out.data ? out.data : "",
                                .html_len = out.len,
                                .message_id = "tandem.1.email@shop.example" };
        int rc = td_mime_build(&m, &msg, &err);
        (void)rc; /* refusals are fine: crashes and leaks are not */
    }
    td_buf_release(&out);
    td_buf_release(&msg);
    return 0;
}
