/* libFuzzer target: the template compiler and renderer (against a fixed
 * context with the usual AJO shapes), and the HTML-to-text converter on both
 * the input and the rendered output. */
#include <stddef.h>
#include <stdint.h>

#include "message/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char context_json[] =
    "{\"profile\":{\"person\":{\"name\":{\"firstName\":\"Zo\\u00eb <&>\",\"lastName\":\"\"}},"
    "\"email\":\"a@x.io\",\"age\":41,\"vip\":true,\"tags\":[\"a\",\"b\"],\"none\":null},"
    "\"context\":{\"journey\":{\"events\":{\"e1\":{\"type\":\"cart_add\",\"ts\":"
    "\"2026-11-28T10:00:00+01:00\",\"items\":[{\"id\":\"S1\",\"price\":9.5}]}},"
    "\"actions\":{\"cart\":{\"items\":[{\"id\":\"S1\",\"name\":\"Coat\",\"value\":59.9,"
    "\"quantity\":2,\"currency\":\"EUR\",\"pageUrl\":\"https://x.io/p?a=1&b=2\"},"
    "{\"id\":\"S2\",\"name\":\"Hat\",\"value\":0,\"quantity\":1}]},"
    "\"recs\":{\"items\":[{\"name\":\"r1\",\"value\":1e10},{\"name\":\"r2\",\"value\":-3}]},"
    "\"viewed\":{\"items\":[]}}},"
    "\"message\":{\"unsubscribeUrl\":\"https://t.io/u\",\"locale\":\"de-DE\"}},"
    "\"o\":{\"k\":{\"k\":{\"k\":[1,[2,[3]]]}}},\"n\":[0,1,2,3,4,5,6,7,8,9],\"nul\":\"a\\u0000b\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *ctx;
    td_template_t *tpl = NULL;
    td_err_t err;
    td_buf_t out = TD_BUF_INIT, text = TD_BUF_INIT;

    if (ctx == NULL) {
        ctx = json_loads(context_json, JSON_ALLOW_NUL, NULL);
    }
    td_html_to_text((const char *)data, size, &text);
    if (td_template_compile((const char *)data, size, &tpl, &err) == TD_OK) {
        td_template_report_t rep;
        td_template_render(tpl, ctx, &out, &rep);
        td_template_report_release(&rep);
        td_buf_reset(&text);
        td_html_to_text(out.data, out.len, &text);
        td_template_free(tpl);
    }
    td_buf_release(&out);
    td_buf_release(&text);
    return 0;
}
