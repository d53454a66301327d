/* tandem: one binary, one subcommand per job. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/banned.h"

#define TD_VERSION "0.1.0"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} command_t;

static const command_t commands[] = {
    { "serve", td_cli_serve, "run the server (events, profiles, admin API)" },
    { "demo", td_cli_demo, "run the server with generated demo data on a virtual clock" },
    { "config", td_cli_config, "print the configuration reference or check settings" },
    { "eval", td_cli_eval, "replay a public dataset through the recommendation engine" },
    { "journey", td_cli_journey,
      "manage journeys on a running server (apply, publish, report...)" },
    { "mail", td_cli_mail, "send a test email through the mail settings (tandem mail send)" },
    { "import", td_cli_import, "import a product catalog feed (tandem import catalog FILE)" },
    { "template", td_cli_template, "check email templates or render one against JSON data" },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: tandem <command> [options]\n\n"
                 "Tandem: product recommendations and customer journeys, self-hosted.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    }
    fprintf(out,
            "  %-10s %s\n\n"
            "Run 'tandem <command> --help' for a command's options.\n",
            "version", "print the version");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("tandem %s\n", TD_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].run(argc - 2, argv + 2);
        }
    }
    fprintf(stderr, "tandem: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
