/*
 * commands.h — covey-coordinator's subcommands. Each takes (argc, argv) with
 * argv[0] the command name and returns the process exit code: 0 success,
 * 1 runtime failure (reason printed), 2 usage error.
 */
#ifndef COVEY_COMMANDS_H
#define COVEY_COMMANDS_H

int coord_cmd_init(int argc, char **argv);
int coord_cmd_run(int argc, char **argv);
int coord_cmd_status(int argc, char **argv);
int coord_cmd_agents(int argc, char **argv);
int coord_cmd_rounds(int argc, char **argv);
int coord_cmd_export(int argc, char **argv);

#endif
