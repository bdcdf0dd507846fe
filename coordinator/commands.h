/*
 * commands.h — covey-coordinator's subcommands. Each takes (argc, argv) with
 * argv[0] the command name and returns the process exit code: 0 success,
 * 1 runtime failure (reason printed), 2 usage error.
 */
#ifndef COVEY_COMMANDS_H
#define COVEY_COMMANDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "state.h"

int coord_cmd_init(int argc, char **argv);
int coord_cmd_run(int argc, char **argv);
int coord_cmd_status(int argc, char **argv);
int coord_cmd_agents(int argc, char **argv);
int coord_cmd_rounds(int argc, char **argv);
int coord_cmd_export(int argc, char **argv);

int coord_cmd_token(int argc, char **argv);  /* seccmds.c */
int coord_cmd_audit(int argc, char **argv);  /* seccmds.c */
int coord_cmd_admins(int argc, char **argv); /* seccmds.c */
int coord_cmd_ca(int argc, char **argv);     /* cacmds.c */

/* Options most commands share: --state DIR, --json, --help, positional
 * arguments (parsed by hand: CURVE keys may begin with '-'; "--" ends the
 * options). The caller frees o->args. Returns 0 (o->help set when the usage
 * was printed) or an exit code. `watch` (may be NULL) enables --watch[=S]. */
typedef struct coord_common_opts {
    const char *state;
    bool json;
    bool help;
    char **args;
    int nargs;
    bool passthrough; /* set by the caller: unknown --options become positional */
    const char *remote, *server_key, *key; /* --remote EP --server-key K --key FILE */
} coord_common_opts_t;
int coord_parse_common(int argc, char **argv, coord_common_opts_t *o, const char *usage,
                       int *watch);

/* Print a JSON listing as JSON or through `render`, then release it; NULL is
 * a database failure. Returns the exit code. */
int coord_emit(json_t *list, bool json, void (*render)(const json_t *, FILE *));

/* Paths, configuration and a read-only store of a state directory. */
int coord_open_readonly(const char *state, coord_paths_t *p, coord_config_t *cfg,
                        fl_store_t **store);

#endif
