/*
 * agent.h — the covey-agent subcommands, each in its own source file.
 * Every command takes (argc, argv) with argv[0] the command name and returns
 * the process exit code: 0 success, 1 runtime failure, 2 usage error.
 */
#ifndef COVEY_AGENT_H
#define COVEY_AGENT_H

int agent_cmd_train(int argc, char **argv); /* local.c */
int agent_cmd_eval(int argc, char **argv);  /* local.c */
int agent_cmd_run(int argc, char **argv);   /* daemon.c */
int agent_cmd_keygen(int argc, char **argv); /* daemon.c */

#endif
