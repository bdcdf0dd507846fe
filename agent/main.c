/*
 * main.c — covey-agent: the edge program. Dispatches to its subcommands:
 * local training and evaluation now, the federation daemon (run), key
 * generation and enrollment as they arrive.
 */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "fl_log.h"

#define COVEY_VERSION "0.1.0"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} s_cmds[] = {
    {"run", agent_cmd_run, "run the agent daemon: join a federation and train when asked"},
    {"keygen", agent_cmd_keygen, "make this agent's CURVE key pair"},
    {"train", agent_cmd_train, "train a model on local data (no coordinator)"},
    {"eval", agent_cmd_eval, "evaluate a safetensors model on local data"},
};

static void
s_usage(FILE *f)
{
    fprintf(f, "usage: covey-agent COMMAND [OPTIONS]\n"
               "\n"
               "The Covey agent trains models on data that stays on this machine.\n"
               "\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        fprintf(f, "  %-10s %s\n", s_cmds[i].name, s_cmds[i].help);
    fprintf(f, "\n"
               "Run 'covey-agent COMMAND --help' for a command's options.\n"
               "  -h, --help     show this help\n"
               "  --version      print the version\n");
}

int
main(int argc, char **argv)
{
    fl_log_set_component("agent");
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
        printf("covey-agent " COVEY_VERSION "\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        if (strcmp(argv[1], s_cmds[i].name) == 0)
            return s_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "covey-agent: unknown command '%s' (try --help)\n", argv[1]);
    return 2;
}
