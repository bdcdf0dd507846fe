/*
 * test_window.c — unit tests of fl_window (the coordinator's credit window
 * for bulk transfers): slots given in order while they fit the budget, one
 * slot always available, a peer's whole queue handed at once, a slot kept
 * until its chunks are known gone (end of the data, idle time, reset) and
 * never before, pulls sharing the budget, duplicates and the queue cap, and
 * the wake-up pipe written by a chunk freed on another thread. libzmq is
 * played by the test: it "frees" chunks by calling fl_window_chunk_free.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fl_window.h"

#define L 262144u /* a chunk */

/* the caller's buffer reference, dropped by each chunk's release */
static int s_released;

static void
s_release(void *arg)
{
    (void)arg;
    s_released++;
}

/* Take every request the window lets go now; hints into hints[] (if not
 * NULL), requests into reqs[], their peers' tags into tags[]. */
static size_t
s_drain(fl_window_t *w, void **hints, fl_window_req_t *reqs, size_t *tags, size_t cap)
{
    size_t n = 0;
    fl_window_peer_t *p;
    fl_window_req_t r;
    while (fl_window_next(w, &p, &r)) {
        assert_true(n < cap);
        void *h = fl_window_chunk_hint(w, p, &r, s_release, NULL);
        if (hints)
            hints[n] = h;
        else
            fl_window_chunk_free(NULL, h);
        if (reqs)
            reqs[n] = r;
        if (tags)
            tags[n] = fl_window_peer_tag(p);
        n++;
    }
    return n;
}

static size_t
s_slots(const fl_window_t *w)
{
    fl_window_stats_t st;
    fl_window_stats(w, &st);
    return st.slots;
}

static size_t
s_waiting(const fl_window_t *w)
{
    fl_window_stats_t st;
    fl_window_stats(w, &st);
    return st.waiting;
}

static void
test_one_peer_pipelines_its_queue(void **state)
{
    (void)state;
    /* a budget of one chunk still hands a peer all four of its requests:
     * they share one connection, which encrypts one at a time */
    fl_window_t *w = fl_window_new(L);
    assert_non_null(w);
    fl_window_peer_t *a = fl_window_peer_new(w, 7);
    for (uint64_t i = 0; i < 4; i++)
        assert_int_equal(fl_window_push(w, a, i * L, L, 10 * L, 0), 0);
    void *h[8];
    fl_window_req_t r[8];
    size_t tags[8];
    assert_int_equal(s_drain(w, h, r, tags, 8), 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(r[i].offset, i * L); /* in the order asked */
        assert_int_equal(tags[i], 7);
        assert_false(r[i].end);
    }
    assert_int_equal(s_slots(w), 1);

    /* three released: the fourth may still be being written, slot kept */
    for (size_t i = 0; i < 3; i++)
        fl_window_chunk_free(NULL, h[i]);
    fl_window_update(w, 10);
    assert_int_equal(s_slots(w), 1);
    /* all released, but the download goes on: the last copy may live until
     * the peer reads it, so the slot is kept until it asks again ... */
    fl_window_chunk_free(NULL, h[3]);
    fl_window_update(w, 20);
    assert_int_equal(s_slots(w), 1);
    fl_window_update(w, 20 + FL_WINDOW_IDLE_MS - 1);
    assert_int_equal(s_slots(w), 1);
    /* ... which it does: served under the same slot */
    assert_int_equal(fl_window_push(w, a, 4 * L, L, 10 * L, 30), 0);
    assert_int_equal(s_drain(w, NULL, r, NULL, 8), 1);
    assert_int_equal(r[0].offset, 4 * L);
    fl_window_update(w, 40);
    assert_int_equal(s_slots(w), 1);
    /* or, silent for FL_WINDOW_IDLE_MS after its last release, it gave up */
    fl_window_update(w, 40 + FL_WINDOW_IDLE_MS);
    assert_int_equal(s_slots(w), 0);
    assert_int_equal(s_released, 5);
    fl_window_destroy(&w);
    assert_null(w);
    fl_window_destroy(&w);
    s_released = 0;
}

static void
test_slot_kept_while_a_chunk_is_inside(void **state)
{
    (void)state;
    /* however long it takes: a chunk libzmq still holds may be encrypted yet */
    fl_window_t *w = fl_window_new(L);
    fl_window_peer_t *a = fl_window_peer_new(w, 0), *b = fl_window_peer_new(w, 1);
    void *h[2];
    assert_int_equal(fl_window_push(w, a, 0, L, L, 0), 0); /* the end of the data, even */
    assert_int_equal(fl_window_push(w, b, 0, L, L, 0), 0);
    assert_int_equal(s_drain(w, h, NULL, NULL, 2), 1);
    fl_window_update(w, 100 * FL_WINDOW_IDLE_MS);
    assert_int_equal(s_slots(w), 1);
    assert_int_equal(s_drain(w, NULL, NULL, NULL, 2), 0);
    fl_window_chunk_free(NULL, h[0]);
    fl_window_update(w, 100 * FL_WINDOW_IDLE_MS);
    assert_int_equal(s_drain(w, NULL, NULL, NULL, 2), 1); /* b's turn */
    fl_window_update(w, 100 * FL_WINDOW_IDLE_MS);
    assert_int_equal(s_slots(w), 0);
    fl_window_destroy(&w);
    s_released = 0;
}

static void
test_end_of_data_returns_the_slot(void **state)
{
    (void)state;
    fl_window_t *w = fl_window_new(L);
    fl_window_peer_t *a = fl_window_peer_new(w, 1), *b = fl_window_peer_new(w, 2);
    /* 2.5 chunks of data */
    uint64_t total = 2 * L + L / 2;
    assert_int_equal(fl_window_push(w, a, 0, L, total, 0), 0);
    assert_int_equal(fl_window_push(w, a, L, L, total, 0), 0);
    assert_int_equal(fl_window_push(w, a, 2 * L, L / 2, total, 0), 0);
    assert_int_equal(fl_window_push(w, b, 0, L, total, 0), 0);
    void *h[8];
    fl_window_req_t r[8];
    size_t tags[8];
    /* a fills the budget: b waits */
    assert_int_equal(s_drain(w, h, r, tags, 8), 3);
    assert_true(r[2].end);
    assert_int_equal(s_waiting(w), 1);
    fl_window_chunk_free(NULL, h[0]);
    fl_window_chunk_free(NULL, h[1]);
    fl_window_update(w, 1);
    assert_int_equal(s_drain(w, NULL, NULL, NULL, 8), 0); /* the end is not released yet */
    /* the end released: the download is complete, the slot goes to b at once */
    fl_window_chunk_free(NULL, h[2]);
    fl_window_update(w, 2);
    assert_int_equal(s_drain(w, NULL, r, tags, 8), 1);
    assert_int_equal(tags[0], 2);
    assert_int_equal(s_waiting(w), 0);
    fl_window_destroy(&w);
    s_released = 0;
}

static void
test_slots_in_order_within_budget(void **state)
{
    (void)state;
    /* two slots' worth; peers 0..4 each ask for 2 chunks, in that order */
    fl_window_t *w = fl_window_new(2 * L);
    fl_window_peer_t *p[5];
    void *h[32];
    fl_window_req_t r[32];
    size_t tags[32];
    for (size_t i = 0; i < 5; i++) {
        p[i] = fl_window_peer_new(w, i);
        assert_int_equal(fl_window_push(w, p[i], 0, L, 2 * L, 0), 0);
        assert_int_equal(fl_window_push(w, p[i], L, L, 2 * L, 0), 0);
    }
    assert_int_equal(s_drain(w, h, r, tags, 32), 4);
    assert_int_equal(tags[0], 0);
    assert_int_equal(tags[1], 0);
    assert_int_equal(tags[2], 1);
    assert_int_equal(tags[3], 1);
    assert_int_equal(s_waiting(w), 3);
    /* peer 1 finishes first: peer 2 (the oldest waiting) gets its slot */
    fl_window_chunk_free(NULL, h[2]);
    fl_window_chunk_free(NULL, h[3]);
    fl_window_update(w, 1);
    size_t n = s_drain(w, h + 4, r + 4, tags + 4, 28);
    assert_int_equal(n, 2);
    assert_int_equal(tags[4], 2);
    /* nothing else while peers 0 and 2 hold theirs */
    fl_window_update(w, 2);
    assert_int_equal(s_drain(w, NULL, NULL, NULL, 8), 0);
    for (size_t i = 0; i < 2; i++)
        fl_window_chunk_free(NULL, h[i]);
    for (size_t i = 4; i < 6; i++)
        fl_window_chunk_free(NULL, h[i]);
    fl_window_update(w, 3);
    assert_int_equal(s_drain(w, NULL, r, tags, 8), 4);
    assert_int_equal(tags[0] + tags[2], 3 + 4);
    fl_window_update(w, 4);
    assert_int_equal(s_slots(w), 0);
    assert_int_equal(s_waiting(w), 0);
    assert_int_equal(s_released, 10);
    fl_window_destroy(&w);
    s_released = 0;
}

static void
test_a_slot_is_always_available(void **state)
{
    (void)state;
    /* a budget below one chunk: one peer at a time, never none */
    fl_window_t *w = fl_window_new(1000);
    fl_window_peer_t *a = fl_window_peer_new(w, 0), *b = fl_window_peer_new(w, 1);
    void *h[4];
    assert_int_equal(fl_window_push(w, a, 0, L, L, 0), 0);
    assert_int_equal(fl_window_push(w, b, 0, L, L, 0), 0);
    fl_window_set_pulls(w, 4 * L); /* even with pulls in flight */
    assert_int_equal(s_drain(w, h, NULL, NULL, 4), 1);
    fl_window_chunk_free(NULL, h[0]);
    fl_window_update(w, 0);
    assert_int_equal(s_drain(w, h, NULL, NULL, 4), 1);
    fl_window_chunk_free(NULL, h[0]);
    fl_window_update(w, 0);
    assert_int_equal(s_slots(w), 0);
    fl_window_destroy(&w);
    s_released = 0;
}

static void
test_pulls_share_the_budget(void **state)
{
    (void)state;
    fl_window_t *w = fl_window_new(4 * L);
    fl_window_peer_t *a = fl_window_peer_new(w, 0), *b = fl_window_peer_new(w, 1),
                     *c = fl_window_peer_new(w, 2);
    void *h[8];
    /* with nothing charged, four pulls fit, a fifth does not */
    assert_true(fl_window_may_pull(w, 0, L));
    assert_true(fl_window_may_pull(w, 3 * L, L));
    assert_false(fl_window_may_pull(w, 4 * L, L));
    /* three pulls in flight leave room for one slot */
    fl_window_set_pulls(w, 3 * L);
    assert_int_equal(fl_window_push(w, a, 0, L, 8 * L, 0), 0);
    assert_int_equal(fl_window_push(w, b, 0, L, 8 * L, 0), 0);
    assert_int_equal(s_drain(w, h, NULL, NULL, 8), 1);
    assert_int_equal(s_waiting(w), 1);
    /* the slot's charge now limits the pulls; the first one may always go */
    assert_false(fl_window_may_pull(w, 3 * L, L));
    assert_true(fl_window_may_pull(w, 0, 8 * L));
    fl_window_set_pulls(w, L);
    assert_int_equal(s_drain(w, h + 1, NULL, NULL, 7), 1);
    /* a chunk larger than the slot's charge raises it */
    assert_int_equal(fl_window_push(w, c, 0, 2 * L, 8 * L, 0), 0);
    assert_int_equal(s_drain(w, NULL, NULL, NULL, 8), 0);
    fl_window_stats_t st;
    fl_window_stats(w, &st);
    assert_int_equal(st.charged, 2 * L);
    assert_int_equal(st.pulls, L);
    for (size_t i = 0; i < 2; i++)
        fl_window_chunk_free(NULL, h[i]);
    fl_window_update(w, 1); /* released, then idle: a and b gave up */
    fl_window_update(w, 1 + FL_WINDOW_IDLE_MS);
    fl_window_set_pulls(w, 0);
    assert_int_equal(s_drain(w, NULL, NULL, NULL, 8), 1);
    fl_window_stats(w, &st);
    assert_int_equal(st.charged, 2 * L);
    fl_window_update(w, 2 * FL_WINDOW_IDLE_MS);
    fl_window_destroy(&w);
    s_released = 0;
}

static void
test_duplicates_and_queue_cap(void **state)
{
    (void)state;
    fl_window_t *w = fl_window_new(L);
    fl_window_peer_t *a = fl_window_peer_new(w, 0);
    uint64_t total = (uint64_t)(FL_WINDOW_QUEUE + 2) * L;
    assert_int_equal(fl_window_push(w, a, 0, L, total, 0), 0);
    /* an agent that re-requests after a pause: the queued one stands */
    assert_int_equal(fl_window_push(w, a, 0, L, total, 0), 1);
    for (uint64_t i = 1; i < FL_WINDOW_QUEUE; i++)
        assert_int_equal(fl_window_push(w, a, i * L, L, total, 0), 0);
    assert_int_equal(fl_window_push(w, a, FL_WINDOW_QUEUE * (uint64_t)L, L, total, 0),
                     FL_ERANGE);
    assert_int_equal(s_drain(w, NULL, NULL, NULL, 32), FL_WINDOW_QUEUE);
    /* once handed, the same range may be asked for again */
    assert_int_equal(fl_window_push(w, a, 0, L, total, 0), 0);
    assert_int_equal(s_drain(w, NULL, NULL, NULL, 32), 1);
    fl_window_update(w, 1);
    fl_window_update(w, 1 + FL_WINDOW_IDLE_MS);
    assert_int_equal(s_slots(w), 0);
    fl_window_destroy(&w);
    s_released = 0;
}

static void
test_reset_forgets_the_connection(void **state)
{
    (void)state;
    fl_window_t *w = fl_window_new(L);
    fl_window_peer_t *a = fl_window_peer_new(w, 0), *b = fl_window_peer_new(w, 1);
    void *h[4];
    assert_int_equal(fl_window_push(w, a, 0, L, 4 * L, 0), 0);
    assert_int_equal(fl_window_push(w, a, L, L, 4 * L, 0), 0);
    assert_int_equal(s_drain(w, h, NULL, NULL, 4), 2);
    assert_int_equal(fl_window_push(w, a, 2 * L, L, 4 * L, 0), 0); /* handed: slot held */
    assert_int_equal(s_drain(w, h + 2, NULL, NULL, 2), 1);
    assert_int_equal(fl_window_push(w, b, 0, L, 4 * L, 0), 0);
    assert_int_equal(fl_window_push(w, a, 3 * L, L, 4 * L, 0), 0);
    /* a reconnects: its slot and queue go, b gets the slot */
    fl_window_peer_reset(w, a);
    assert_int_equal(s_slots(w), 0);
    void *hb[2];
    fl_window_req_t r;
    size_t tag;
    assert_int_equal(s_drain(w, hb, &r, &tag, 1), 1);
    assert_int_equal(tag, 1);
    /* the old connection's chunks are freed late: harmless, not counted */
    for (size_t i = 0; i < 3; i++)
        fl_window_chunk_free(NULL, h[i]);
    fl_window_update(w, 1);
    assert_int_equal(s_slots(w), 1); /* b's */
    /* a asks anew (resume), and waits behind b */
    assert_int_equal(fl_window_push(w, a, 0, L, 4 * L, 2), 0);
    assert_int_equal(s_drain(w, NULL, NULL, NULL, 4), 0);
    fl_window_chunk_free(NULL, hb[0]);
    fl_window_update(w, 3);
    fl_window_update(w, 3 + FL_WINDOW_IDLE_MS);
    assert_int_equal(s_drain(w, NULL, &r, &tag, 1), 1);
    assert_int_equal(tag, 0);
    fl_window_update(w, 4 + 2 * FL_WINDOW_IDLE_MS);
    assert_int_equal(s_released, 5);
    fl_window_destroy(&w);
    s_released = 0;
}

static void
s_count_dropped(size_t tag, const fl_window_req_t *req, void *arg)
{
    (void)req;
    ((size_t *)arg)[tag]++;
}

static void
test_drop_all(void **state)
{
    (void)state;
    fl_window_t *w = fl_window_new(L);
    fl_window_peer_t *a = fl_window_peer_new(w, 0), *b = fl_window_peer_new(w, 1);
    void *h[2];
    assert_int_equal(fl_window_push(w, a, 0, L, 4 * L, 0), 0);
    assert_int_equal(s_drain(w, h, NULL, NULL, 2), 1);
    assert_int_equal(fl_window_push(w, a, L, 2, 4 * L, 0), 0);
    assert_int_equal(fl_window_push(w, b, 0, L, 4 * L, 0), 0);
    assert_int_equal(fl_window_push(w, b, L, L, 4 * L, 0), 0);
    size_t dropped[2] = {0, 0};
    /* every queued request is answered, including those of a peer holding
     * a slot; the slot stays until its chunk is gone */
    fl_window_drop_all(w, s_count_dropped, dropped);
    assert_int_equal(dropped[0], 1);
    assert_int_equal(dropped[1], 2);
    assert_int_equal(s_waiting(w), 0);
    assert_int_equal(s_drain(w, NULL, NULL, NULL, 2), 0);
    fl_window_chunk_free(NULL, h[0]);
    fl_window_update(w, 1);
    assert_int_equal(s_slots(w), 1);
    fl_window_update(w, 1 + FL_WINDOW_IDLE_MS);
    assert_int_equal(s_slots(w), 0);
    fl_window_destroy(&w);
    s_released = 0;
}

static void
test_many_peers_wait_in_order(void **state)
{
    (void)state;
    /* more peers than the first allocation holds, one slot at a time */
    enum { N = 40 };
    fl_window_t *w = fl_window_new(L);
    fl_window_peer_t *p[N];
    for (size_t i = 0; i < N; i++) {
        p[i] = fl_window_peer_new(w, i);
        assert_int_equal(fl_window_push(w, p[i], 0, L, L, 0), 0);
    }
    for (size_t i = 0; i < N; i++) {
        void *h;
        size_t tag;
        assert_int_equal(s_drain(w, &h, NULL, &tag, 1), 1);
        assert_int_equal(tag, i);
        if (i + 1 < N)
            assert_int_equal(s_waiting(w), N - 1 - i);
        fl_window_chunk_free(NULL, h);
        fl_window_update(w, 0);
    }
    assert_int_equal(s_slots(w), 0);
    fl_window_destroy(&w);
    s_released = 0;
}

static void *
s_free_thread(void *hint)
{
    fl_window_chunk_free(NULL, hint);
    return NULL;
}

static void
test_wakeup_from_another_thread(void **state)
{
    (void)state;
    fl_window_t *w = fl_window_new(L);
    fl_window_peer_t *a = fl_window_peer_new(w, 0);
    struct pollfd pfd = {.fd = fl_window_fd(w), .events = POLLIN};
    void *h[2];
    assert_int_equal(poll(&pfd, 1, 0), 0);
    assert_int_equal(fl_window_push(w, a, 0, L, 2 * L, 0), 0);
    assert_int_equal(fl_window_push(w, a, L, L, 2 * L, 0), 0);
    assert_int_equal(s_drain(w, h, NULL, NULL, 2), 2);
    for (size_t i = 0; i < 2; i++) {
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, s_free_thread, h[i]), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(poll(&pfd, 1, 1000), 1); /* the owner wakes */
        fl_window_update(w, 1);
        assert_int_equal(poll(&pfd, 1, 0), 0); /* and the pipe is empty again */
    }
    assert_int_equal(s_slots(w), 0); /* the end was released */
    assert_int_equal(s_released, 2);
    fl_window_destroy(&w);
    s_released = 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_peer_pipelines_its_queue),
        cmocka_unit_test(test_slot_kept_while_a_chunk_is_inside),
        cmocka_unit_test(test_end_of_data_returns_the_slot),
        cmocka_unit_test(test_slots_in_order_within_budget),
        cmocka_unit_test(test_a_slot_is_always_available),
        cmocka_unit_test(test_pulls_share_the_budget),
        cmocka_unit_test(test_duplicates_and_queue_cap),
        cmocka_unit_test(test_reset_forgets_the_connection),
        cmocka_unit_test(test_drop_all),
        cmocka_unit_test(test_many_peers_wait_in_order),
        cmocka_unit_test(test_wakeup_from_another_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
