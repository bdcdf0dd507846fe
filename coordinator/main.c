/*
 * main.c — covey-coordinator: dispatch to the daemon (run) and the operator
 * commands (init, status, agents, rounds, export).
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "fl_blas.h"
#include "fl_log.h"

#define COVEY_VERSION "0.1.0"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} s_cmds[] = {
    {"init", coord_cmd_init, "create a state directory: database, keys, config, initial model"},
    {"run", coord_cmd_run, "run the coordinator daemon"},
    {"status", coord_cmd_status, "the federation at a glance (--json, --watch)"},
    {"agents", coord_cmd_agents, "list, add or revoke agents"},
    {"rounds", coord_cmd_rounds, "list every round attempt with its outcome and metrics"},
    {"export", coord_cmd_export, "write a round's global model as safetensors"},
};

static void
s_usage(FILE *f)
{
    fprintf(f, "usage: covey-coordinator COMMAND [OPTIONS]\n"
               "\n"
               "The Covey coordinator schedules federated training rounds among agents that\n"
               "keep their data, and aggregates their updates.\n"
               "\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        fprintf(f, "  %-8s %s\n", s_cmds[i].name, s_cmds[i].help);
    fprintf(f, "\n"
               "Run 'covey-coordinator COMMAND --help' for a command's options.\n"
               "  -h, --help     show this help\n"
               "  --version      print the version\n");
}

int
main(int argc, char **argv)
{
    fl_log_set_component("coordinator");
    if (sodium_init() < 0) {
        fprintf(stderr, "covey-coordinator: libsodium failed to initialise\n");
        return 1;
    }
    fl_blas_init_default();
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        s_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("covey-coordinator " COVEY_VERSION "\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        if (strcmp(argv[1], s_cmds[i].name) == 0)
            return s_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "covey-coordinator: unknown command '%s' (try --help)\n", argv[1]);
    return 2;
}
