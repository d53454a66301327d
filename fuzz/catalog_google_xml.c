/* libFuzzer target: the Google Merchant XML feed parser (catalog/). The first byte picks
 * the chunk size the input is handed over in, so chunk boundaries fall
 * everywhere; every entity handed over must be valid. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

#include "catalog/catalog.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_entity(void *ctx, td_entity_t *e, int line)
{
    td_buf_t b = TD_BUF_INIT;

    (void)ctx;
    (void)line;
    td_entity_to_json(e, 0, 0, &b);
    td_buf_release(&b);
    /* parsers hand over valid entities only */
    if (td_entity_validate(e, NULL) != TD_OK) {
        abort();
    }
    return TD_OK;
}

static void on_reject(void *ctx, const td_err_t *err)
{
    (void)ctx;
    (void)err;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const td_feed_sink_t sink = { on_entity, on_reject };
    td_err_t err = { 0 };
    size_t chunk;

    if (size == 0) {
        return 0;
    }
    chunk = data[0] % 2 ? (size_t)(data[0] % 17) + 1 : 0;
    int rc = td_feed_parse_mem(TD_FEED_GOOGLE_XML, (const char *)data + 1, size - 1, chunk, &sink,
                               NULL, &err);
    (void)rc;
    return 0;
}
