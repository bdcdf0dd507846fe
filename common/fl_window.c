/*
 * fl_window.c — the credit window for bulk transfers: slots, per-peer
 * request queues, and the count of chunks libzmq has released. See
 * fl_window.h for the model and the reasons behind it.
 */
#include "fl_window.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The chunks of one connection inside libzmq. Shared by the peer (until its
 * connection is replaced) and by each chunk not yet released, so that a
 * chunk freed late, by a connection the peer has left, still has somewhere
 * to count.
 */
typedef struct flight {
    atomic_uint_fast64_t released; /* chunks libzmq let go of (encrypted or discarded) */
    atomic_int refs;
    fl_window_t *win; /* whose pipe wakes the owner */
} flight_t;

/* The free-function argument of one chunk. */
typedef struct chunk_hint {
    flight_t *fl;
    void (*release)(void *arg);
    void *arg;
} chunk_hint_t;

struct fl_window_peer {
    size_t tag;
    flight_t *fl;
    uint64_t handed;     /* chunks handed to libzmq on fl */
    uint64_t seen;       /* fl->released when last read */
    uint64_t slot_start; /* handed when the slot was given */
    bool last_end;       /* the last chunk handed reaches the end of the data */
    int64_t last_ms;     /* last request queued, or last release seen */
    uint64_t charge;     /* bytes charged to its slot; 0: it holds none */
    bool waiting;        /* queued for a slot */
    fl_window_req_t q[FL_WINDOW_QUEUE];
    unsigned q_head, q_len;
};

struct fl_window {
    uint64_t budget, charged, pulls;
    fl_window_peer_t **peers; /* every peer, owned */
    size_t n_peers, cap;
    fl_window_peer_t **slots; /* peers holding a slot */
    size_t n_slots, rr;       /* rr: where the next round-robin look starts */
    fl_window_peer_t **wait;  /* ring of peers waiting for a slot, oldest first */
    size_t w_head, w_len;
    int rd, wr; /* the wake-up pipe */
    atomic_bool signalled;
};

static flight_t *
s_flight_new(fl_window_t *w)
{
    flight_t *fl = fl_xcalloc(1, sizeof *fl);
    atomic_init(&fl->released, 0);
    atomic_init(&fl->refs, 1);
    fl->win = w;
    return fl;
}

static void
s_flight_unref(flight_t *fl)
{
    if (atomic_fetch_sub(&fl->refs, 1) == 1)
        free(fl);
}

/* Non-blocking (a full pipe never stalls libzmq's I/O thread), close-on-exec. */
static int
s_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

fl_window_t *
fl_window_new(uint64_t budget)
{
    int fds[2];
    if (pipe(fds) != 0) {
        fl_fail(FL_EIO, "credit window: pipe: %s", strerror(errno));
        return NULL;
    }
    if (s_nonblock(fds[0]) != 0 || s_nonblock(fds[1]) != 0) {
        fl_fail(FL_EIO, "credit window: fcntl: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return NULL;
    }
    fl_window_t *w = fl_xcalloc(1, sizeof *w);
    w->budget = budget;
    w->rd = fds[0];
    w->wr = fds[1];
    atomic_init(&w->signalled, false);
    return w;
}

void
fl_window_destroy(fl_window_t **self_p)
{
    fl_window_t *w = self_p ? *self_p : NULL;
    if (!w)
        return;
    for (size_t i = 0; i < w->n_peers; i++) {
        /* libzmq has released every chunk: only the peer's reference is left */
        assert(atomic_load(&w->peers[i]->fl->refs) == 1);
        s_flight_unref(w->peers[i]->fl);
        free(w->peers[i]);
    }
    free(w->peers);
    free(w->slots);
    free(w->wait);
    close(w->rd);
    close(w->wr);
    free(w);
    *self_p = NULL;
}

void
fl_window_set_budget(fl_window_t *self, uint64_t budget)
{
    self->budget = budget;
}

int
fl_window_fd(const fl_window_t *self)
{
    return self->rd;
}

fl_window_peer_t *
fl_window_peer_new(fl_window_t *self, size_t tag)
{
    if (self->n_peers == self->cap) {
        size_t old = self->cap;
        self->cap = old ? 2 * old : 16;
        self->peers = fl_xrealloc(self->peers, self->cap * sizeof *self->peers);
        self->slots = fl_xrealloc(self->slots, self->cap * sizeof *self->slots);
        /* the ring is unrolled into the new array, oldest first (none waits
         * before the first peer exists) */
        assert(old > 0 || self->w_len == 0);
        fl_window_peer_t **ring = fl_xmalloc(self->cap * sizeof *ring);
        for (size_t i = 0; old > 0 && i < self->w_len; i++)
            ring[i] = self->wait[(self->w_head + i) % old];
        free(self->wait);
        self->wait = ring;
        self->w_head = 0;
    }
    fl_window_peer_t *p = fl_xcalloc(1, sizeof *p);
    p->tag = tag;
    p->fl = s_flight_new(self);
    self->peers[self->n_peers++] = p;
    return p;
}

size_t
fl_window_peer_tag(const fl_window_peer_t *p)
{
    return p->tag;
}

/* ------------------------------------------------------------- the queues */

static void
s_wait_push(fl_window_t *w, fl_window_peer_t *p)
{
    assert(!p->waiting && p->charge == 0 && w->w_len < w->n_peers);
    w->wait[(w->w_head + w->w_len++) % w->cap] = p;
    p->waiting = true;
}

/* Take p out of the waiting ring (rare: a reset, or its requests dropped). */
static void
s_wait_remove(fl_window_t *w, fl_window_peer_t *p)
{
    size_t kept = 0;
    for (size_t i = 0; i < w->w_len; i++) {
        fl_window_peer_t *x = w->wait[(w->w_head + i) % w->cap];
        if (x != p)
            w->wait[(w->w_head + kept++) % w->cap] = x;
    }
    w->w_len = kept;
    p->waiting = false;
}

static void
s_slot_give(fl_window_t *w, fl_window_peer_t *p, uint64_t charge)
{
    assert(p->charge == 0 && charge > 0 && w->n_slots < w->n_peers);
    p->charge = charge;
    p->slot_start = p->handed;
    w->charged += charge;
    w->slots[w->n_slots++] = p;
}

static void
s_slot_return(fl_window_t *w, size_t i)
{
    fl_window_peer_t *p = w->slots[i];
    w->charged -= p->charge;
    p->charge = 0;
    w->slots[i] = w->slots[--w->n_slots];
}

static void
s_slot_return_peer(fl_window_t *w, fl_window_peer_t *p)
{
    for (size_t i = 0; i < w->n_slots; i++)
        if (w->slots[i] == p) {
            s_slot_return(w, i);
            return;
        }
}

void
fl_window_peer_reset(fl_window_t *self, fl_window_peer_t *p)
{
    p->q_len = 0;
    if (p->waiting)
        s_wait_remove(self, p);
    if (p->charge)
        s_slot_return_peer(self, p);
    /* chunks of the old connection may still be released: to its flight */
    s_flight_unref(p->fl);
    p->fl = s_flight_new(self);
    p->handed = p->seen = p->slot_start = 0;
    p->last_end = false;
}

int
fl_window_push(fl_window_t *self, fl_window_peer_t *p, uint64_t offset, uint32_t length,
               uint64_t total, int64_t now_ms)
{
    assert(length > 0 && offset < total && length <= total - offset);
    for (unsigned i = 0; i < p->q_len; i++) {
        const fl_window_req_t *r = &p->q[(p->q_head + i) % FL_WINDOW_QUEUE];
        if (r->offset == offset && r->length == length)
            return 1;
    }
    if (p->q_len == FL_WINDOW_QUEUE)
        return fl_fail(FL_ERANGE, "more than %d requests outstanding", FL_WINDOW_QUEUE);
    fl_window_req_t *r = &p->q[(p->q_head + p->q_len++) % FL_WINDOW_QUEUE];
    r->offset = offset;
    r->length = length;
    r->end = offset + length == total;
    p->last_ms = now_ms;
    if (p->charge == 0 && !p->waiting)
        s_wait_push(self, p);
    return 0;
}

void
fl_window_drop_all(fl_window_t *self,
                   void (*fn)(size_t tag, const fl_window_req_t *req, void *arg), void *arg)
{
    for (size_t i = 0; i < self->n_peers; i++) {
        fl_window_peer_t *p = self->peers[i];
        for (unsigned k = 0; fn && k < p->q_len; k++)
            fn(p->tag, &p->q[(p->q_head + k) % FL_WINDOW_QUEUE], arg);
        p->q_len = 0;
    }
    self->w_len = 0;
    for (size_t i = 0; i < self->n_peers; i++)
        self->peers[i]->waiting = false;
}

/* ------------------------------------------------------------- the slots */

void
fl_window_update(fl_window_t *self, int64_t now_ms)
{
    char buf[64];
    while (read(self->rd, buf, sizeof buf) > 0) {
    }
    /* Cleared before the counters are read: a chunk released from here on
     * writes the pipe again (fl_window_chunk_free), so none goes unnoticed. */
    atomic_store(&self->signalled, false);
    for (size_t i = 0; i < self->n_slots;) {
        fl_window_peer_t *p = self->slots[i];
        uint64_t released = atomic_load(&p->fl->released);
        if (released != p->seen) {
            p->seen = released;
            p->last_ms = now_ms;
        }
        bool all_released = p->seen == p->handed;
        if (p->q_len == 0 && all_released &&
            (p->handed == p->slot_start || p->last_end ||
             now_ms - p->last_ms >= FL_WINDOW_IDLE_MS))
            s_slot_return(self, i); /* slots[i] is now another peer: look again */
        else
            i++;
    }
}

bool
fl_window_next(fl_window_t *self, fl_window_peer_t **p_out, fl_window_req_t *req_out)
{
    fl_window_peer_t *p = NULL;
    /* a peer holding a slot has everything it queued handed at once */
    for (size_t k = 0; k < self->n_slots && !p; k++) {
        fl_window_peer_t *x = self->slots[(self->rr + k) % self->n_slots];
        if (x->q_len > 0) {
            p = x;
            self->rr = (self->rr + k + 1) % self->n_slots;
        }
    }
    /* otherwise the oldest waiting peer, if its slot fits */
    if (!p && self->w_len > 0) {
        fl_window_peer_t *x = self->wait[self->w_head];
        uint64_t need = x->q[x->q_head].length;
        if (self->n_slots > 0 && self->charged + self->pulls + need > self->budget)
            return false;
        self->w_head = (self->w_head + 1) % self->cap;
        self->w_len--;
        x->waiting = false;
        s_slot_give(self, x, need);
        p = x;
    }
    if (!p)
        return false;
    *req_out = p->q[p->q_head];
    p->q_head = (p->q_head + 1) % FL_WINDOW_QUEUE;
    p->q_len--;
    *p_out = p;
    return true;
}

void *
fl_window_chunk_hint(fl_window_t *self, fl_window_peer_t *p, const fl_window_req_t *req,
                     void (*release)(void *arg), void *arg)
{
    assert(p->charge > 0);
    if (req->length > p->charge) { /* the slot covers the largest chunk handed */
        self->charged += req->length - p->charge;
        p->charge = req->length;
    }
    chunk_hint_t *h = fl_xmalloc(sizeof *h);
    h->fl = p->fl;
    h->release = release;
    h->arg = arg;
    atomic_fetch_add(&p->fl->refs, 1);
    p->handed++;
    p->last_end = req->end;
    return h;
}

void
fl_window_chunk_free(void *data, void *hint)
{
    chunk_hint_t *h = hint;
    flight_t *fl = h->fl;
    fl_window_t *w = fl->win;
    (void)data;
    if (h->release)
        h->release(h->arg);
    free(h);
    atomic_fetch_add(&fl->released, 1);
    /* one byte wakes the owner; more would only fill the pipe */
    if (!atomic_exchange(&w->signalled, true)) {
        ssize_t n = write(w->wr, "", 1);
        (void)n; /* a full pipe is awake already */
    }
    s_flight_unref(fl);
}

void
fl_window_set_pulls(fl_window_t *self, uint64_t bytes)
{
    self->pulls = bytes;
}

bool
fl_window_may_pull(const fl_window_t *self, uint64_t outstanding, uint64_t len)
{
    return outstanding == 0 || self->charged + outstanding + len <= self->budget;
}

void
fl_window_stats(const fl_window_t *self, fl_window_stats_t *st)
{
    st->budget = self->budget;
    st->charged = self->charged;
    st->pulls = self->pulls;
    st->slots = self->n_slots;
    st->waiting = self->w_len;
}
