/*
 * main.c — covey-coordinator: dispatch to the daemon (run) and the operator
 * commands (init, status, agents, rounds, export, token, audit, admins, ca).
 */
#include <sodium.h>
#include <stdio.h>

#include "commands.h"
#include "fl_blas.h"
#include "fl_cli.h"
#include "fl_log.h"

static const fl_cli_cmd_t s_cmds[] = {
    {"init", coord_cmd_init, "create a state directory: database, keys, config, initial model"},
    {"run", coord_cmd_run, "run the coordinator daemon"},
    {"status", coord_cmd_status, "the federation at a glance (--json, --watch)"},
    {"agents", coord_cmd_agents, "list, add or revoke agents"},
    {"rounds", coord_cmd_rounds, "list every round attempt with its outcome and metrics"},
    {"export", coord_cmd_export, "write a round's global model as safetensors"},
    {"token", coord_cmd_token, "create, list or revoke one-time join tokens for agents"},
    {"audit", coord_cmd_audit, "the tamper-evident audit log: list, verify, head"},
    {"admins", coord_cmd_admins, "operator keys and roles: add, list, revoke"},
    {"ca", coord_cmd_ca, "the identity CA of secure aggregation: init, sign, show (offline)"},
};

int
main(int argc, char **argv)
{
    fl_log_set_component("coordinator");
    if (sodium_init() < 0) {
        fprintf(stderr, "covey-coordinator: libsodium failed to initialise\n");
        return 1;
    }
    fl_blas_init_default();
    return fl_cli_dispatch("covey-coordinator", COVEY_VERSION,
                           "The Covey coordinator schedules federated training rounds among\n"
                           "agents that keep their data, and aggregates their updates.",
                           s_cmds, sizeof s_cmds / sizeof s_cmds[0], argc, argv);
}
