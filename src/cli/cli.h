/* Subcommands of the tandem binary, one file each. Each takes the arguments
 * after its name and returns the process exit status. */
#ifndef TD_CLI_H
#define TD_CLI_H

#include <stdbool.h>

#include "api/api.h"
#include "util/config.h"

int td_cli_serve(int argc, char **argv);
int td_cli_config(int argc, char **argv);
int td_cli_demo(int argc, char **argv);
int td_cli_eval(int argc, char **argv);
int td_cli_journey(int argc, char **argv);
int td_cli_mail(int argc, char **argv);
int td_cli_import(int argc, char **argv);
int td_cli_template(int argc, char **argv);

/* True when argv holds -h or --help. */
bool td_cli_wants_help(int argc, char **argv);

/* Opens everything the server and the offline commands share: store,
 * clock (restoring a virtual time), ingest. Fills app; undo with
 * td_cli_app_close(). Errors are printed with what to do next. */
int td_cli_app_open(const td_config_t *cfg, bool serving, td_app_t *app);
void td_cli_app_close(td_app_t *app);

#endif
