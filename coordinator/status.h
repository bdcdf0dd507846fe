/*
 * status.h — the operator's view: one JSON document describing the federation
 * (built by the running daemon for its admin socket, or from the database
 * alone when the coordinator is down), and its one-screen text rendering.
 *
 * The same JSON is what `status --json` prints, so machines and humans read
 * one source of truth.
 */
#ifndef COVEY_STATUS_H
#define COVEY_STATUS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "fl_store.h"

/* What only the running daemon knows. */
typedef struct status_live {
    int64_t pid, started_ms;
    const char *phase;            /* "waiting", "train", "eval", "complete" */
    int64_t round, attempt;       /* round in progress (or next) */
    int64_t expected, received, rejected, dropped;
    int64_t deadline_ms;          /* wall clock; 0 when none */
    int64_t online;
    uint64_t invalid_messages;
    const char *stop_reason;      /* why the federation stopped early, or "" */
    /* secure aggregation of the attempt in progress: sa_phase NULL when none */
    const char *sa_phase;         /* "adv", "shr", "masked", "chk", "unmask", "done", "failed" */
    int64_t sa_k, sa_t;
    bool sa_full;
    bool sa_active;               /* the active-server model: signed keys, consistency round */
    int64_t sa_counts[6];         /* |U0| selected .. |U5| unmasking shares sent */
    /* Whether the agent with this public key is online now. */
    bool (*is_online)(const char *pubkey, void *arg);
    void *arg;
} status_live_t;

/* Build the status document; `live` is NULL when the coordinator is not
 * running. `history` limits the per-round metric history (0 = all). Caller
 * owns the result (json_decref). NULL with a detail on a database error. */
json_t *status_build(fl_store_t *store, const coord_config_t *cfg, const status_live_t *live,
                     int64_t history);

/* The agents list (name, key, status, online, last seen, samples, version). */
json_t *status_agents(fl_store_t *store, const status_live_t *live);

/* The rounds list (every attempt with its phase, outcome and metrics). */
json_t *status_rounds(fl_store_t *store, int64_t limit);

/* Render a status document as one screen of text. */
void status_render(const json_t *st, FILE *f);

/* Render agents / rounds lists as tables. */
void status_render_agents(const json_t *agents, FILE *f);
void status_render_rounds(const json_t *rounds, FILE *f);

#endif
