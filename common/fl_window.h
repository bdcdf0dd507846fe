/*
 * fl_window.h — the coordinator's credit window for bulk transfers: a bound
 * on the bytes of model chunks and update pulls inside libzmq at once, over
 * all agents together, with the requests that do not fit queued and served
 * as credit frees up.
 *
 * Why, as measured (heaptrack on covey-coordinator, 32 agents downloading
 * 256 KiB chunks at once): a chunk waiting in a ROUTER's pipe costs nothing,
 * since it refers to the published model (zero-copy). But a CURVE connection
 * encrypts each message into a fresh copy when its engine takes it from the
 * pipe, and keeps that copy until the kernel has accepted its last byte. A
 * connection whose agent reads slowly therefore holds one encrypted chunk,
 * and 32 such connections held 8.1 MiB of them: 254 KiB per agent, most of
 * the coordinator's memory per agent. Smaller chunks shrink each copy but
 * starve links with a long round-trip time; so instead the number of
 * connections that may hold a copy is bounded.
 *
 * Slots. A peer (one agent connection) that holds a slot has every request
 * it queues handed to libzmq at once, so its link stays as full as its own
 * window of requests makes it. Its chunks go down one connection, which
 * encrypts them one after another, so the slot accounts for ONE copy: it is
 * charged the largest chunk handed under it. Slots go to waiting peers in
 * the order they asked, while the charges plus the update pulls in flight
 * fit the budget; when no slot is held, one is given whatever the budget
 * says, so that progress never depends on the configuration.
 *
 * A slot is returned only when its copy is known to be gone, that is when
 * the peer's queue is empty, libzmq has let go of every chunk handed (each
 * chunk's free function tells: fl_window_chunk_free), and one of these holds:
 *  - the last chunk handed is the end of the data: the download is complete
 *    (its copy drains while the agent reads its last bytes);
 *  - no chunk was handed under the slot;
 *  - the peer asked for nothing more for FL_WINDOW_IDLE_MS (it gave up, or
 *    its connection died and libzmq closed it);
 *  - the peer's connection was replaced (fl_window_peer_reset).
 * While more chunks follow, a chunk is known gone as soon as libzmq lets go
 * of the next one of its connection: libzmq encrypts a connection's
 * messages in order, and takes the next one only when the kernel has
 * accepted every byte of the one before. So the download memory is about
 * (budget / chunk) copies, plus the last chunks of downloads that are
 * completing, however many agents download at once.
 *
 * Update pulls are counted in bytes requested and not yet received: each
 * becomes one message that libzmq allocates and decrypts on arrival. The
 * caller keeps the count and asks fl_window_may_pull() before each pull.
 *
 * Threads: the window and its peers belong to one thread (the coordinator's
 * event loop). Only fl_window_chunk_free() runs elsewhere, in libzmq's I/O
 * thread (or the owner's, when a send fails or a connection's pipe is torn
 * down): it counts with atomics and wakes the owner through a pipe whose
 * read end fl_window_fd() gives, for zmq_poll.
 */
#ifndef FL_WINDOW_H
#define FL_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_util.h"

/* Requests one peer may have queued. An agent keeps a few outstanding (its
 * window W, 4 by default); more is refused, so a peer cannot make the
 * coordinator hold an unbounded list. */
#define FL_WINDOW_QUEUE 16

/* A slot whose peer has had every chunk released and asks for nothing more
 * is returned after this long (milliseconds). */
#define FL_WINDOW_IDLE_MS 1000

typedef struct fl_window fl_window_t;
typedef struct fl_window_peer fl_window_peer_t;

/* A queued request: bytes [offset, offset + length) of the data. */
typedef struct fl_window_req {
    uint64_t offset;
    uint32_t length;
    bool end; /* the range reaches the end of the data */
} fl_window_req_t;

/* What the window holds now (for logs and tests). */
typedef struct fl_window_stats {
    uint64_t budget;  /* bytes */
    uint64_t charged; /* bytes charged to the slots held */
    uint64_t pulls;   /* bytes of update pulls in flight, as last told */
    size_t slots;     /* peers holding a slot */
    size_t waiting;   /* peers queued for one */
} fl_window_stats_t;

/* A window of `budget` bytes. Returns NULL with a detail (FL_EIO: no pipe).
 * Caller owns the result. */
fl_window_t *fl_window_new(uint64_t budget);

/* Free the window, its peers and its pipe, and NULL *self_p; accepts NULL.
 * Only once libzmq has released every chunk (after zmq_ctx_term): a chunk's
 * free function refers to its window. */
void fl_window_destroy(fl_window_t **self_p);

/* Change the budget (a configuration reload). Slots already held stay. */
void fl_window_set_budget(fl_window_t *self, uint64_t budget);

/* The read end of the wake-up pipe: readable when libzmq released a chunk.
 * Poll it; fl_window_update() empties it. */
int fl_window_fd(const fl_window_t *self);

/* The record of one agent connection, tagged with the caller's `tag` (e.g.
 * its session index, given back by fl_window_peer_tag). Owned by the
 * window; valid until fl_window_destroy. Can't fail. */
fl_window_peer_t *fl_window_peer_new(fl_window_t *self, size_t tag);

size_t fl_window_peer_tag(const fl_window_peer_t *p);

/* The peer's connection was replaced or is gone: its queued requests are
 * forgotten and its slot returned (the old connection's copy goes with the
 * connection). Chunks still inside libzmq count no more. Can't fail. */
void fl_window_peer_reset(fl_window_t *self, fl_window_peer_t *p);

/*
 * Queue a request of peer p for bytes [offset, offset + length) of data of
 * `total` bytes (length >= 1, offset + length <= total: checked by the
 * caller). now_ms: fl_now_ms(). Returns 0 (queued), 1 (the same range is
 * already queued: nothing done; an agent re-requests after a pause), or
 * FL_ERANGE with a detail when p already has FL_WINDOW_QUEUE requests.
 */
int fl_window_push(fl_window_t *self, fl_window_peer_t *p, uint64_t offset, uint32_t length,
                   uint64_t total, int64_t now_ms) FL_MUST_CHECK;

/* Forget every queued request of every peer (the data they name is no longer
 * served), calling fn (may be NULL) for each so that the caller can answer
 * it. Slots are returned as usual, once their chunks are gone. */
void fl_window_drop_all(fl_window_t *self,
                        void (*fn)(size_t tag, const fl_window_req_t *req, void *arg), void *arg);

/* Empty the wake-up pipe, learn which chunks libzmq released, and return the
 * slots that are free by the rules above. Call it when fl_window_fd() is
 * readable and now and then (the idle rule needs time to pass). */
void fl_window_update(fl_window_t *self, int64_t now_ms);

/*
 * The next request to send, if a slot allows one: true with *p_out and
 * *req_out set, the request taken off its queue; false when none may go now.
 * The caller sends it with fl_window_chunk_hint() (then owns the hint, which
 * libzmq's free function consumes), or drops it (for example when its peer
 * has gone; then fl_window_peer_reset).
 */
bool fl_window_next(fl_window_t *self, fl_window_peer_t **p_out,
                    fl_window_req_t *req_out) FL_MUST_CHECK;

/*
 * The hint for the chunk answering req of peer p (as fl_window_next gave
 * it): pass fl_window_chunk_free and the result to zmq_msg_init_data. When
 * libzmq frees the chunk, release(arg) runs first (for example dropping the
 * caller's reference to the buffer), in whichever thread frees it. Counts
 * the chunk as handed to libzmq. If the send then fails, libzmq (or
 * fl_net_send_msg) frees it at once: that is counted too. Can't fail.
 */
void *fl_window_chunk_hint(fl_window_t *self, fl_window_peer_t *p, const fl_window_req_t *req,
                           void (*release)(void *arg), void *arg);

/* The zmq_free_fn of chunks made with fl_window_chunk_hint: data unused. */
void fl_window_chunk_free(void *data, void *hint);

/* Tell the window how many bytes of update pulls are in flight now. */
void fl_window_set_pulls(fl_window_t *self, uint64_t bytes);

/* Whether a pull of `len` bytes may go out when `outstanding` bytes of pulls
 * are in flight: when it fits the budget with the slots' charges, and always
 * when none is in flight (an upload never waits for credit forever). */
bool fl_window_may_pull(const fl_window_t *self, uint64_t outstanding, uint64_t len);

void fl_window_stats(const fl_window_t *self, fl_window_stats_t *st);

#endif
