/*
 * enroll.h — the coordinator's enrollment endpoint. Any CURVE key may
 * connect to it (the agent's key is not known yet), but it accepts nothing
 * but "enroll" carrying the secret of a valid join token: then, in one
 * transaction, the token is consumed, the sender's key is registered as the
 * agent the token names, and the enrollment is audited. Everything else is
 * refused, logged and counted.
 */
#ifndef COVEY_ENROLL_H
#define COVEY_ENROLL_H

#include <stdint.h>

#include "fl_store.h"

/* Handle one message waiting on the enrollment ROUTER socket `sock`.
 * `federation` is the federation's display name sent back to the agent.
 * Increments *invalid for anything refused. Never fails the daemon. */
void enroll_handle(void *sock, fl_store_t *store, const char *federation,
                   const char *endpoint, uint64_t *invalid);

#endif
