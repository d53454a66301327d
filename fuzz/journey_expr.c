/* libFuzzer target: the journey expression language, parsed and evaluated
 * against a fixed context (input: one expression, NUL bytes cut it). */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "journey/journey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *vars;
    char *src = malloc(size + 1);
    td_journey_expr_t *e = NULL;
    td_err_t err = { 0 };

    if (vars == NULL) {
        vars = json_loads("{\"profile\": {\"id\": 1, \"email\": \"a@b.c\", \"cart\": [{\"id\": "
                          "\"X\", \"price\": 2.5, \"quantity\": 2}], \"attributes\": {\"tz\": "
                          "\"+02:00\"}}, \"event\": {\"type\": \"cart_add\", \"ts\": "
                          "\"2026-11-28T10:00:00Z\", \"items\": [{\"id\": \"X\"}]}, "
                          "\"events\": [{\"type\": \"purchase\", \"received_ms\": 5}], "
                          "\"actions\": {\"r\": {\"status\": \"http_200\", \"items\": [1, 2, 3]}}}",
                          0, NULL);
    }
    memcpy(src, data, size);
    src[size] = '\0';
    if (td_journey_expr_parse(src, &e, &err) == TD_OK) {
        td_journey_env_t env = { .vars = vars,
                                 .now_ms = 1795000000000LL,
                                 .entry_ms = 1,
                                 .seed = "1/j/s",
                                 .tz = td_tz_cache_offset };
        json_t *out = NULL;
        if (td_journey_expr_eval(e, &env, &out, &err) == TD_OK) {
            json_decref(out);
        }
        td_journey_expr_free(e);
    }
    free(src);
    return 0;
}
