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

int agent_cmd_enroll(int argc, char **argv); /* enroll.c */
int agent_cmd_identity(int argc, char **argv); /* identity.c */

/*
 * What `covey-agent enroll` writes to STATE/agent.ini, so that
 * `covey-agent run --state STATE` needs no other flag.
 */
typedef struct agent_state {
    char endpoint[256];       /* the coordinator's agents endpoint */
    char server_key[41];      /* its CURVE public key (Z85) */
    char signing_key[65];     /* its Ed25519 public key (hex): models are verified with it */
    char federation_id[65];
    char name[64];
    char key[4096];           /* path of this agent's key pair */
    char identity_ca[65];     /* the operator's identity CA public key (hex), "" = none */
    char identity_cert[4096]; /* path of this agent's identity certificate, "" = none */
    char data[1024], test_data[1024], partition[64];
    unsigned long long parts, index, seed;
} agent_state_t;

/* Read STATE/agent.ini. FL_ENOTFOUND / FL_EINVAL naming the file, line and key. */
int agent_state_load(const char *dir, agent_state_t *st);

#endif
