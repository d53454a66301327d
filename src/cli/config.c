/* tandem config: prints the configuration reference, or checks a setup. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "util/banned.h"

int td_cli_config(int argc, char **argv)
{
    if (td_cli_wants_help(argc, argv) || argc == 0) {
        printf("usage: tandem config --markdown       print the configuration reference\n"
               "       tandem config check [options]  validate settings (file, env, flags)\n");
        return argc == 0 ? 1 : 0;
    }
    if (strcmp(argv[0], "--markdown") == 0) {
        td_config_print_markdown(stdout);
        return 0;
    }
    if (strcmp(argv[0], "check") == 0) {
        td_config_t cfg;
        td_err_t err = { 0 };
        td_config_init(&cfg);
        int rc = td_config_load(&cfg, argc - 1, argv + 1, &err);
        if (rc != TD_OK) {
            fprintf(stderr, "tandem config: %s\n", err.message);
        } else {
            printf("configuration ok\n");
        }
        td_config_release(&cfg);
        return rc == TD_OK ? 0 : 1;
    }
    fprintf(stderr, "tandem config: unknown argument \"%s\" (see tandem config --help)\n", argv[0]);
    return 1;
}
