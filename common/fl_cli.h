/*
 * fl_cli.h — small helpers shared by the covey-coordinator and covey-agent
 * command lines: strict option values with range checks, and uniform error
 * reporting ("covey-agent train: --epochs: expected ... (try --help)").
 */
#ifndef FL_CLI_H
#define FL_CLI_H

#include <stdio.h>

#include "fl_util.h"

/* Set the "program command" prefix used by fl_cli_error (e.g. "covey-agent train"). */
void fl_cli_set_prog(const char *prog);
const char *fl_cli_prog(void);

/* Print "PROG: message\n" to stderr. Returns 2 (the exit code for usage errors)
 * so callers can `return fl_cli_error(...)`. */
int fl_cli_error(const char *fmt, ...) FL_PRINTF(1, 2);

/* Print "PROG: <fl_errmsg()>" (or the code's name when there is no detail) and
 * return 1 (the exit code for runtime failures). */
int fl_cli_fail(int code);

/* Parse an unsigned option value within [min, max]; on error print a message
 * naming the option and return FL_EINVAL. */
int fl_cli_u64(const char *arg, const char *opt, uint64_t min, uint64_t max, uint64_t *out)
    FL_MUST_CHECK;
int fl_cli_size(const char *arg, const char *opt, size_t min, size_t max, size_t *out)
    FL_MUST_CHECK;

/* Parse a finite floating-point option value within [min, max]. */
int fl_cli_double(const char *arg, const char *opt, double min, double max, double *out)
    FL_MUST_CHECK;
int fl_cli_float(const char *arg, const char *opt, double min, double max, float *out)
    FL_MUST_CHECK;

/* A program's subcommand: name, entry point (argc, argv with argv[0] the
 * command name; returns the exit code) and a one-line description. */
typedef struct fl_cli_cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} fl_cli_cmd_t;

/*
 * The whole main() of a program made of subcommands: --help / help, --version,
 * dispatch to the named command, and the usage ("usage: PROG COMMAND ...",
 * `about`, the command table) on no or an unknown command (exit 2).
 */
int fl_cli_dispatch(const char *prog, const char *version, const char *about,
                    const fl_cli_cmd_t *cmds, size_t n, int argc, char **argv);

#endif
