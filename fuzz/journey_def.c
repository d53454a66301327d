/* libFuzzer target: journey definitions (parsing, validation, the graph
 * checks), then one decision of every step against a small context. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

#include "journey/journey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const td_journey_defaults_t dflt = { .reentry_wait_ms = 300000,
                                                .timeout_ms = 91LL * 86400000 };
    td_journey_errors_t *errs = calloc(1, sizeof(*errs));
    td_journey_def_t *def = NULL;

    if (td_journey_def_parse((const char *)data, size, NULL, &dflt, &def, errs) == TD_OK) {
        json_t *vars = json_loads("{\"profile\": {\"id\": 1, \"email\": \"a@b.c\", \"cart\": "
                                  "[{\"id\": \"X\"}]}, \"event\": {\"type\": \"cart_add\", "
                                  "\"items\": [{\"id\": \"X\"}]}, \"actions\": {}}",
                                  0, NULL);
        td_journey_env_t env = { .vars = vars, .now_ms = 1795000000000LL, .entry_ms = 0 };
        for (int i = 0; i < td_journey_def_n_steps(def); i++) {
            for (int phase = 0; phase < 2; phase++) {
                td_journey_state_t st = { .step = i, .phase = phase, .profile_id = 1 };
                td_journey_decision_t d;
                if (td_journey_step_decide(def, &st, &env, &d) == TD_OK) {
                    td_journey_decision_release(&d);
                }
            }
        }
        bool match;
        char *key = NULL;
        td_err_t err = { 0 };
        if (td_journey_entry_match(def, &env, &match, &key, &err) == TD_OK) {
            free(key);
        }
        json_object_set(vars, "trigger", json_object_get(vars, "event"));
        (void)td_journey_exit_match(def, "purchase", &env, &err);
        json_decref(vars);
        td_journey_def_free(def);
    }
    free(errs);
    return 0;
}
