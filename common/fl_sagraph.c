/*
 * fl_sagraph.c — SecAgg+ neighbour graphs (full and Harary) and FCP's (k, t)
 * parameter finder. See fl_sagraph.h.
 *
 * The finder follows fcp/secagg/server/graph_parameter_finder.cc and
 * distribution_utilities.cc step for step (same constants, same
 * floating-point order of evaluation where it decides a rounding), because
 * its output is only meaningful if it agrees with the published analysis.
 */
#include "fl_sagraph.h"

#include <assert.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct fl_sagraph {
    fl_sagraph_params_t p;
    uint32_t *ring; /* ring[pos] = client; NULL for the full graph */
    uint32_t *pos;  /* pos[client] = ring position; NULL for the full graph */
};

/* ---- hypergeometric distribution (FCP distribution_utilities.cc) ---- */

/* Draws of `sampled` out of `total`, of which `marked` are marked. */
typedef struct {
    int total, marked, sampled;
} s_hyper_t;

static double
s_lgamma(double x)
{
    int sign;
    return lgamma_r(x, &sign);
}

/* P[X = x] with `counted` marked items (marked or total - marked). */
static double
s_pmf(const s_hyper_t *h, double x, int counted)
{
    int N = h->total, n = h->sampled;
    if (x < 0 || x > n || x > counted)
        return 0;
    if (N + x < counted + n)
        return 0;
    double lpmf = s_lgamma(n + 1) + s_lgamma(counted + 1) + s_lgamma(N - counted + 1) +
                  s_lgamma(N - n + 1) - s_lgamma(x + 1) - s_lgamma(n - x + 1) -
                  s_lgamma(counted - x + 1) - s_lgamma(N + 1) - s_lgamma(N - n - counted + x + 1);
    return exp(lpmf);
}

/* P[X <= x], summing the pmf downwards from x until terms are negligible. */
static double
s_cdf_impl(const s_hyper_t *h, double x, int counted)
{
    int N = h->total, n = h->sampled;
    double cur = s_pmf(h, x, counted);
    double result = 0;
    while (cur > result * 1e-16) {
        result += cur;
        cur *= x;
        cur *= N - counted - n + x;
        cur /= counted - x + 1;
        cur /= n - x + 1;
        --x;
    }
    return result;
}

/* P[X <= x]; the upper tail is computed as 1 - the complement's lower tail. */
static double
s_cdf(const s_hyper_t *h, double x)
{
    x = floor(x);
    double mean = h->marked * (double)h->sampled / h->total;
    if (x > mean)
        return 1 - s_cdf_impl(h, h->sampled - x - 1, h->total - h->marked);
    return s_cdf_impl(h, x, h->marked);
}

/* Largest x with P[X <= x] < quantile (so x+1 is the first reaching it),
 * starting the search from a Hoeffding lower bound. */
static double
s_quantile_impl(const s_hyper_t *h, double quantile, int counted)
{
    int N = h->total, n = h->sampled;
    double basic_bound = counted + n - N - 1;
    double fancy_bound = n * ((double)counted / N - sqrt(-log(quantile) / (2 * n)));
    double result = -1;
    if (basic_bound > result)
        result = basic_bound;
    if (fancy_bound > result)
        result = fancy_bound;
    result = floor(result);

    double cur_cdf = s_cdf_impl(h, result, counted);
    double cur_pmf = s_pmf(h, result, counted);
    while (cur_cdf < quantile && result < n) {
        if (cur_pmf > 0) {
            cur_pmf /= result + 1;
            cur_pmf /= N - counted - n + result + 1;
            cur_pmf *= counted - result;
            cur_pmf *= n - result;
        } else {
            cur_pmf = s_pmf(h, result + 1, counted);
        }
        cur_cdf += cur_pmf;
        ++result;
    }
    --result;
    return result;
}

/* FCP FindQuantile: rounded outwards, away from the median. */
static double
s_quantile(const s_hyper_t *h, double quantile, bool complement)
{
    if (quantile > 0.5) {
        quantile = 1 - quantile;
        complement = !complement;
    }
    if (complement)
        return h->sampled - s_quantile_impl(h, quantile, h->total - h->marked) - 1;
    return s_quantile_impl(h, quantile, h->marked);
}

/* ---- the finder (FCP graph_parameter_finder.cc) ---- */

#define S_SECURITY 40.0    /* statistical security 2^-40 */
#define S_CORRECTNESS 20.0 /* failure probability < 2^-20 */
/* Keeps rounding error from being magnified in the insecure direction by
 * the floor/ceil of rate * n (FCP's kSmall). */
#define S_SMALL 1e-14

typedef struct {
    int n;
    double gamma, delta;
    fl_sagraph_threat_t model;
} s_finder_t;

/* Union bound on the probability that removing the bad (adversarial or
 * dropped) clients disconnects a random Harary graph of degree k: that needs
 * k/2 consecutive bad clients in two disjoint places of the ring. */
static double
s_log_prob_disconnected(const s_finder_t *f, int k)
{
    int n = f->n;
    double log_pairs = log(n) + log(n - k - 1) - log(2);
    int max_adv = (int)floor((f->gamma + S_SMALL) * n);
    int max_drop = (int)floor((f->delta + S_SMALL) * n);
    int max_bad = max_adv + max_drop;
    if (k > max_bad)
        return -HUGE_VAL;
    return log_pairs + s_lgamma(max_bad + 1) + s_lgamma(n - k + 1) - s_lgamma(n + 1) -
           s_lgamma(max_bad - k + 1);
}

/* The threshold for degree k, or 0 when k does not work. */
static int
s_check_degree(const s_finder_t *f, int k)
{
    const double sec_per_event = S_SECURITY + 1; /* split over the two bad events */
    if (s_log_prob_disconnected(f, k) >= -sec_per_event * log(2))
        return 0;
    int n = f->n;
    int max_adv = (int)floor((f->gamma + S_SMALL) * n);
    int min_surv = (int)ceil((1 - f->delta - S_SMALL) * n);
    s_hyper_t adv = {n, max_adv, k};
    s_hyper_t surv = {n, min_surv, k};
    /* t1: P[adversarial neighbours > t1] <= 2^-41 / n;
     * t2: P[surviving neighbours <= t2] >= 2^-20 / n (rounded outwards). */
    double t1 = s_quantile(&adv, pow(2, -sec_per_event) / n, true);
    double t2 = s_quantile(&surv, pow(2, -S_CORRECTNESS) / n, false);
    if (s_cdf(&surv, t2) < pow(2, -S_CORRECTNESS) / n)
        t2++;
    /* Semi-malicious: 2t - k adversarial neighbours must be unlikely too. */
    if (f->model == FL_SAGRAPH_SEMI_MALICIOUS)
        t1 = ceil((t1 + k - 1.25) / 2);
    if (t2 <= t1)
        return 0;
    double t = t1 + 1 < 2 ? 2 : t1 + 1; /* Shamir needs t >= 2 */
    return (int)t;
}

static int
s_check_rates(uint32_t n, double gamma, double delta, fl_sagraph_threat_t model)
{
    if (n < 1 || n > FL_SAGRAPH_MAX_N)
        return fl_fail(FL_EINVAL, "secagg graph: %u clients outside 1..%u", n, FL_SAGRAPH_MAX_N);
    if (!(gamma >= 0 && gamma < 1))
        return fl_fail(FL_EINVAL, "secagg graph: adversarial rate %g outside [0, 1)", gamma);
    if (!(delta >= 0 && delta < 1))
        return fl_fail(FL_EINVAL, "secagg graph: dropout rate %g outside [0, 1)", delta);
    if (model == FL_SAGRAPH_SEMI_HONEST && gamma + delta > .9)
        return fl_fail(FL_EINVAL,
                       "secagg graph: semi-honest needs adversarial + dropout rate <= 0.9 "
                       "(%g + %g)",
                       gamma, delta);
    if (model == FL_SAGRAPH_SEMI_MALICIOUS && gamma + 2 * delta > .9)
        return fl_fail(FL_EINVAL,
                       "secagg graph: semi-malicious needs adversarial + 2 x dropout rate <= 0.9 "
                       "(%g + 2 x %g)",
                       gamma, delta);
    if (model != FL_SAGRAPH_SEMI_HONEST && model != FL_SAGRAPH_SEMI_MALICIOUS)
        return fl_fail(FL_EINVAL, "secagg graph: unknown threat model %d", (int)model);
    return 0;
}

int
fl_sagraph_find(uint32_t n, double gamma, double delta, fl_sagraph_threat_t model, uint32_t *k,
                uint32_t *t)
{
    int rc = s_check_rates(n, gamma, delta, model);
    if (rc < 0)
        return rc;
    s_finder_t f = {(int)n, gamma, delta, model};
    for (int deg = 2; deg < f.n - 1; deg += 2) {
        int thr = s_check_degree(&f, deg);
        if (thr > 0) {
            *k = (uint32_t)deg;
            *t = (uint32_t)thr;
            return 0;
        }
    }
    return fl_fail(FL_ENOTFOUND,
                   "secagg graph: no Harary degree below %u works for %u clients with "
                   "adversarial rate %g, dropout rate %g",
                   n > 1 ? n - 1 : 0, n, gamma, delta);
}

uint32_t
fl_sagraph_full_threshold(uint32_t n)
{
    return (uint32_t)(2 * (uint64_t)n / 3 + 1);
}

int
fl_sagraph_choose(uint32_t n, double gamma, double delta, fl_sagraph_threat_t model,
                  uint32_t full_max, fl_sagraph_params_t *out)
{
    int rc = s_check_rates(n, gamma, delta, model);
    if (rc < 0)
        return rc;
    if (n < 2)
        return fl_fail(FL_EINVAL, "secagg graph: %u client(s); secure aggregation needs >= 2", n);
    fl_sagraph_params_t p = {.n = n, .k = n - 1, .t = fl_sagraph_full_threshold(n), .full = true};
    uint32_t k = 0, t = 0;
    if (n > full_max && fl_sagraph_find(n, gamma, delta, model, &k, &t) == 0) {
        p.k = k;
        p.t = t;
        p.full = false;
    }
    fl_errclear();
    *out = p;
    return 0;
}

/* ---- graphs ---- */

/* The sid-derived ring (see the header for the exact derivation). */
static int
s_ring(uint32_t n, const uint8_t sid[FL_SAGRAPH_SID_LEN], uint32_t *ring)
{
    static const char label[] = "FLSA/v1/harary";
    uint8_t key[32];
    crypto_generichash_state st;
    if (crypto_generichash_init(&st, NULL, 0, sizeof key) != 0 ||
        crypto_generichash_update(&st, (const unsigned char *)label, sizeof label - 1) != 0 ||
        crypto_generichash_update(&st, sid, FL_SAGRAPH_SID_LEN) != 0 ||
        crypto_generichash_final(&st, key, sizeof key) != 0)
        return fl_fail(FL_ECRYPTO, "secagg graph: BLAKE2b failed");

    static const uint8_t nonce[12] = {0};
    uint8_t buf[1024];
    size_t used = sizeof buf;
    uint32_t block = 0;
    for (uint32_t i = 0; i < n; i++)
        ring[i] = i;
    for (uint32_t i = n - 1; i >= 1; i--) {
        uint64_t m = (uint64_t)i + 1;
        uint64_t lim = (1ull << 32) - ((1ull << 32) % m);
        uint32_t w;
        do {
            if (used == sizeof buf) {
                memset(buf, 0, sizeof buf);
                crypto_stream_chacha20_ietf_xor_ic(buf, buf, sizeof buf, nonce, block, key);
                block += sizeof buf / 64;
                used = 0;
            }
            w = (uint32_t)buf[used] | (uint32_t)buf[used + 1] << 8 |
                (uint32_t)buf[used + 2] << 16 | (uint32_t)buf[used + 3] << 24;
            used += 4;
        } while (w >= lim);
        uint32_t j = (uint32_t)(w % m);
        uint32_t tmp = ring[i];
        ring[i] = ring[j];
        ring[j] = tmp;
    }
    sodium_memzero(key, sizeof key);
    return 0;
}

int
fl_sagraph_new(const fl_sagraph_params_t *params, const uint8_t *sid, fl_sagraph_t **graph_p)
{
    const fl_sagraph_params_t *p = params;
    if (p->n < 2 || p->n > FL_SAGRAPH_MAX_N)
        return fl_fail(FL_EINVAL, "secagg graph: %u clients outside 2..%u", p->n,
                       FL_SAGRAPH_MAX_N);
    if (p->full && p->k != p->n - 1)
        return fl_fail(FL_EINVAL, "secagg graph: full graph of %u clients with degree %u", p->n,
                       p->k);
    if (!p->full && (p->k < 2 || p->k % 2 != 0 || p->k > p->n - 1))
        return fl_fail(FL_EINVAL,
                       "secagg graph: Harary degree %u must be even and in 2..%u for %u clients",
                       p->k, p->n - 1, p->n);
    if (p->t < 2 || p->t > p->k + 1)
        return fl_fail(FL_EINVAL, "secagg graph: threshold %u outside 2..%u", p->t, p->k + 1);
    if (!p->full && !sid)
        return fl_fail(FL_EINVAL, "secagg graph: a Harary graph needs the session id");
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");

    fl_sagraph_t *g = fl_xcalloc(1, sizeof *g);
    g->p = *p;
    if (!p->full) {
        g->ring = fl_xmalloc(p->n * sizeof *g->ring);
        g->pos = fl_xmalloc(p->n * sizeof *g->pos);
        int rc = s_ring(p->n, sid, g->ring);
        if (rc < 0) {
            fl_sagraph_destroy(&g);
            return rc;
        }
        for (uint32_t i = 0; i < p->n; i++)
            g->pos[g->ring[i]] = i;
    }
    *graph_p = g;
    return 0;
}

void
fl_sagraph_destroy(fl_sagraph_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_sagraph_t *g = *self_p;
    free(g->ring);
    free(g->pos);
    free(g);
    *self_p = NULL;
}

const fl_sagraph_params_t *
fl_sagraph_params(const fl_sagraph_t *self)
{
    return &self->p;
}

uint32_t
fl_sagraph_size(const fl_sagraph_t *self)
{
    return self->p.k + 1;
}

uint32_t
fl_sagraph_ring_pos(const fl_sagraph_t *self, uint32_t u)
{
    assert(u < self->p.n);
    return self->p.full ? u : self->pos[u];
}

uint32_t
fl_sagraph_at(const fl_sagraph_t *self, uint32_t u, uint32_t pos)
{
    assert(u < self->p.n && pos <= self->p.k);
    if (self->p.full)
        return pos;
    uint32_t n = self->p.n;
    uint64_t r = ((uint64_t)self->pos[u] + n - self->p.k / 2 + pos) % n;
    return self->ring[r];
}

void
fl_sagraph_neighbours(const fl_sagraph_t *self, uint32_t u, uint32_t *out)
{
    for (uint32_t i = 0; i <= self->p.k; i++)
        out[i] = fl_sagraph_at(self, u, i);
}

int64_t
fl_sagraph_position(const fl_sagraph_t *self, uint32_t u, uint32_t v)
{
    assert(u < self->p.n && v < self->p.n);
    if (self->p.full)
        return v;
    uint32_t n = self->p.n;
    uint64_t d = ((uint64_t)self->pos[v] + n - self->pos[u] + self->p.k / 2) % n;
    return d <= self->p.k ? (int64_t)d : -1;
}
