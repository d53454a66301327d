/* libFuzzer target: the config file parser. td_config_load reads a path,
 * so each input is written to one temporary file first. */
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[512];

static void remove_file(void)
{
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char flag[] = "--config";
    char *argv[] = { flag, path, NULL };
    td_config_t cfg;
    td_err_t err = { 0 };
    FILE *f;

    if (path[0] == '\0') {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof(path), "%s/tandem-fuzz-config-%d.conf", tmp && *tmp ? tmp : "/tmp",
                 (int)getpid());
        atexit(remove_file);
    }
    if ((f = fopen(path, "wb")) == NULL) {
        abort();
    }
    if (size > 0 && fwrite(data, 1, size, f) != size) {
        abort();
    }
    fclose(f);
    td_config_init(&cfg);
    if (td_config_load(&cfg, 2, argv, &err) == TD_OK) {
        /* what loaded is usable */
        for (int i = 0; i < cfg.datastream.n; i++) {
            (void)td_config_datastream_org(&cfg, "x");
        }
    } else if (err.message[0] == '\0') {
        abort(); /* a refusal always says why */
    }
    td_config_release(&cfg);
    return 0;
}
