/*
 * main.c — covey-agent: the edge program. Dispatches to its subcommands: the
 * federation daemon (run), enrolment, key generation, the identity key of
 * secure aggregation, and local training and evaluation.
 */
#include "agent.h"
#include "fl_cli.h"
#include "fl_log.h"

static const fl_cli_cmd_t s_cmds[] = {
    {"run", agent_cmd_run, "run the agent daemon: join a federation and train when asked"},
    {"enroll", agent_cmd_enroll, "join a federation with a one-time token from the operator"},
    {"keygen", agent_cmd_keygen, "make this agent's CURVE key pair"},
    {"identity", agent_cmd_identity, "print this agent's identity key for the identity CA to sign"},
    {"train", agent_cmd_train, "train a model on local data (no coordinator)"},
    {"eval", agent_cmd_eval, "evaluate a safetensors model on local data"},
};

int
main(int argc, char **argv)
{
    fl_log_set_component("agent");
    return fl_cli_dispatch("covey-agent", COVEY_VERSION,
                           "The Covey agent trains models on data that stays on this machine.",
                           s_cmds, sizeof s_cmds / sizeof s_cmds[0], argc, argv);
}
