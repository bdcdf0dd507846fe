/*
 * daemon.h — `covey-coordinator run`: the federation daemon. One thread runs
 * an event loop over the agents' CurveZMQ ROUTER socket, the local admin
 * socket and the round timers; a ZAP thread admits only enrolled, active
 * agent keys. Every phase transition is committed to SQLite, so a coordinator
 * killed at any moment restarts from its last committed checkpoint.
 */
#ifndef COVEY_DAEMON_H
#define COVEY_DAEMON_H

#include <stdbool.h>

typedef struct coord_run_opts {
    const char *state_dir;
    bool exit_when_done;   /* exit 0 once the configured rounds are complete */
    const char *log_level; /* overrides the config's [log] level; NULL keeps it */
} coord_run_opts_t;

/* Run the daemon until SIGTERM/SIGINT (or completion with exit_when_done).
 * Returns the process exit code (0 clean, 1 failure with a logged reason). */
int coord_run(const coord_run_opts_t *opts);

#endif
