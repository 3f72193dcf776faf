/* fastnet.c — the hand-written forward and backward of the fast order on the CPU
 * (fastnet.h): the workspace (one size table, one allocation, made once per shape),
 * and each layer operation as a forward/backward pair over oneDNN or AVX-512 1x1
 * convolutions and row passes (GroupNorm/ReLU/resize/mixing fused) parallelised over
 * (sample, channel block) planes. */
#include "engine/fastnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/clock.h"
#include "core/error.h"
#include "engine/blk_ops.h"
#include "engine/blocked.h"
#include "engine/conv1x1.h"
#include "engine/omp_threads.h"
#include "engine/simd16.h"

#define BLK DHF_BLK

typedef struct {
    int C, h, w;
    dhf_bilin1d ty, tx;
    dhf_dconv *conv_in;            /* shared with other layers of the same shape */
    bool owns_conv_in;
    dhf_c1x1 *own_in;              /* its forward on conv1x1.h (NULL: oneDNN); shared too */
    bool owns_own_in;
    float *xb;                     /* [N, C, h, w] blocked input */
    float *y;                      /* [N, Q + P, h, w]: conv1 then shortcut */
    float *r1, *c2, *r2;           /* [N, Q, R, R] */
    float *c3;                     /* [N, P, R, R] */
    double *mu1, *rs1, *mu2, *rs2, *mu3, *rs3, *mus, *rss;   /* [N * G] */
} fn_layer;

/* per-(sample, channel) coefficient arrays, [N * P] floats each */
enum { K_A3, K_B3, K_AS, K_BS, K_X3A, K_X3B, K_XSA, K_XSB, K_AL, K_KX, K_K0,
       K_ALS, K_KXS, K_K0S, K_COUNT };

struct dhf_fastnet {
    int L, S, B, N, P, Q, R, G;
    double eps;                    /* GroupNorm's */
    int maxw;
    bool training;                 /* activations per layer and backward buffers */
    fn_layer layer[DHF_ENGINE_MAX_LAYERS];
    dhf_dconv *conv2, *conv3;
    dhf_c1x1 *own3;                /* conv3 forward + GN3 sums, backward-data (or NULL) */
    float *desc, *gdesc;           /* [B, P, R, R] blocked */
    float *dbig;                   /* [N, P, R, R] */
    float *dq1, *dq2;              /* [N, Q, R, R] */
    float *dy;                     /* [N, Q + P, hmax, wmax] */
    float *w_in, *dw_in;           /* [(Q + P) * Cmax] */
    float *dw;                     /* [max(Q*Q*9, P*Q)] */
    float *dgb;                    /* [2 * P]: a GroupNorm's dgamma, dbeta */
    double *sa, *sb, *sc;          /* [N * P] per-channel sums */
    double *sy, *qy;               /* [N * (Q + P)] sums of y from the own 1x1 forward */
    float *k[K_COUNT];
    double *dmix_unit;             /* [B * P/16 * S] */
    double *dmix;                  /* [S * L] dloss/dsoftmax(w) */
    float *wsoft;                  /* [S * L] */
    void *arena;                   /* every buffer above, one allocation (ws_table) */
    float *scratch;                /* per thread: row, row2, vt */
    int scratch_threads;
    size_t scratch_per_thread;
    bool have_activations;
#ifdef DHF_PROFILE
    dhf_fastnet_profile prof;      /* of the last forward and backward */
#endif
    char describe[320];
};

/* ---- profiling (DHF_PROFILE builds only: the benches') -------------------------- */

/* the convolutions: forward (a = src, b = w, out = dst), backward-data (a = ddst,
 * b = w, out = dsrc), backward-weights (a = src, b = ddst, out = dw) */
typedef enum { CONV_FWD, CONV_BWD_DATA, CONV_BWD_WEIGHTS } conv_op;

#ifdef DHF_PROFILE
#define PROF_NOW() dhf_now()

const char *const dhf_fastnet_pass_names[DHF_FN_PASS_COUNT] = {
    "pack", "gn1 stats", "r1", "gn2 stats", "r2", "gn3+gns stats", "output",
    "bwd output sums", "bwd output grads", "bwd gn2", "bwd gn1"};

/* adds the time since t0 to the convolution op's total */
static void conv_timed(dhf_fastnet *f, conv_op op, double t0)
{
    const double dt = dhf_now() - t0;
    *(op == CONV_FWD        ? &f->prof.conv_forward_s
      : op == CONV_BWD_DATA ? &f->prof.conv_backward_data_s
                            : &f->prof.conv_backward_weights_s) += dt;
}

/* adds the time since *t to pass `id` and restarts *t */
static void pass_done(dhf_fastnet *f, int id, double *t)
{
    double n = dhf_now();
    f->prof.pass_s[id] += n - *t;
    *t = n;
}

void dhf_fastnet_get_profile(const dhf_fastnet *f, dhf_fastnet_profile *p)
{
    memset(p, 0, sizeof *p);
    if (f)
        *p = f->prof;
}
#else
#define PROF_NOW() 0.0
#define conv_timed(f, op, t0) ((void)(t0))
#define pass_done(f, id, t) ((void)(t))
#endif

static int conv_run(dhf_fastnet *f, conv_op op, dhf_dconv *c, const float *a, const float *b,
                    float *out)
{
    double t = PROF_NOW();
    int rc = op == CONV_FWD        ? dhf_dconv_forward(c, a, b, out)
             : op == CONV_BWD_DATA ? dhf_dconv_backward_data(c, a, b, out)
                                   : dhf_dconv_backward_weights(c, a, b, out);
    conv_timed(f, op, t);
    return rc;
}

/* a 1x1 forward on conv1x1.h (sum/sumsq: the outputs' sums, or NULL) */
static int own_forward(dhf_fastnet *f, dhf_c1x1 *c, const float *src, const float *w,
                       float *dst, double *sum, double *sumsq)
{
    double t = PROF_NOW();
    int rc = dhf_c1x1_forward(c, src, w, dst, sum, sumsq);
    conv_timed(f, CONV_FWD, t);
    return rc;
}

/* a 1x1 backward-data on conv1x1.h */
static int own_bwd_data(dhf_fastnet *f, dhf_c1x1 *c, const float *ddst, const float *w,
                        float *dsrc)
{
    double t = PROF_NOW();
    int rc = dhf_c1x1_backward_data(c, ddst, w, dsrc);
    conv_timed(f, CONV_BWD_DATA, t);
    return rc;
}

/* 64-byte aligned; large buffers 2 MiB aligned and advised to transparent huge pages
 * (the row passes and the convolutions stream through hundreds of MB: with 4 KiB
 * pages a TLB miss every 4 KiB) */
static void *xalloc(size_t n, size_t elem)
{
    size_t bytes = n * elem;
    const size_t huge = (size_t)2 << 20;
    if (bytes >= 2 * huge) {
        bytes = (bytes + huge - 1) / huge * huge;
        void *p = aligned_alloc(huge, bytes);
        if (p)
            (void)madvise(p, bytes, MADV_HUGEPAGE);   /* advice only: ignore failures */
        return p;
    }
    bytes = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, bytes ? bytes : 64);
}

static float *pdata(dhf_tensor t) { return (float *)dhf_data_ptr(t); }

static int ensure_scratch(dhf_fastnet *f)
{
    int t = dhf_omp_max_threads();
    if (t <= f->scratch_threads)
        return 0;
    free(f->scratch);
    f->scratch = xalloc(f->scratch_per_thread * (size_t)t, sizeof(float));
    if (!f->scratch) {
        f->scratch_threads = 0;
        return dhf_err_set("fastnet: out of memory for per-thread rows");
    }
    f->scratch_threads = t;
    return 0;
}

static float *my_scratch(const dhf_fastnet *f)
{
    return f->scratch + f->scratch_per_thread * (size_t)dhf_omp_thread_id();
}

bool dhf_fastnet_fits(const dhf_fastnet *f, const dhf_engine_net *net, const dhf_tensor *feats)
{
    if (!f || f->L != net->num_layers || f->S != net->num_timesteps || f->P != net->proj_dim ||
        f->R != net->out_res || !feats[0] || f->B != dhf_size(feats[0], 0))
        return false;
    for (int l = 0; l < f->L; l++) {
        const fn_layer *ly = &f->layer[l];
        if (!feats[l] || ly->C != dhf_size(feats[l], 2) || ly->h != dhf_size(feats[l], 3) ||
            ly->w != dhf_size(feats[l], 4))
            return false;
    }
    return true;
}

void dhf_fastnet_free(dhf_fastnet *f)
{
    if (!f)
        return;
    for (int l = 0; l < DHF_ENGINE_MAX_LAYERS; l++) {
        fn_layer *ly = &f->layer[l];
        dhf_bilin1d_free(&ly->ty);
        dhf_bilin1d_free(&ly->tx);
        if (ly->owns_conv_in)
            dhf_dconv_free(ly->conv_in);
        if (ly->owns_own_in)
            dhf_c1x1_free(ly->own_in);
    }
    dhf_dconv_free(f->conv2);
    dhf_dconv_free(f->conv3);
    dhf_c1x1_free(f->own3);
    free(f->arena);
    free(f->scratch);
    free(f);
}

const char *dhf_fastnet_describe(const dhf_fastnet *f) { return f ? f->describe : ""; }

bool dhf_fastnet_training(const dhf_fastnet *f) { return f && f->training; }

/* ---- the workspace: one size table, one allocation ------------------------------- */

/* A buffer of the size table: where its pointer goes and how many elements it has. */
typedef struct {
    float **f;
    double **d;
    size_t count;
} ws_entry;

typedef struct {
    ws_entry e[DHF_ENGINE_MAX_LAYERS * 7 + 32];
    int n;
} ws_table;

static void ws_float(ws_table *t, float **p, size_t count)
{
    t->e[t->n++] = (ws_entry){ p, NULL, count };
}

static void ws_double(ws_table *t, double **p, size_t count)
{
    t->e[t->n++] = (ws_entry){ NULL, p, count };
}

/* offsets 64-byte aligned; a buffer of 4 MiB or more starts on a 2 MiB boundary so
 * that it sits on whole transparent huge pages */
static size_t ws_align(size_t off, size_t bytes)
{
    const size_t a = bytes >= ((size_t)4 << 20) ? ((size_t)2 << 20) : 64;
    return (off + a - 1) / a * a;
}

/* The size table of f's shapes (N = B*S samples, Q = P/4, Y = Q + P channels of y):
 *   per layer       xb [N, C_l, h, w] blocked; y [N, Y, h, w]; r1, c2, r2 [N, Q, R, R];
 *                   c3 [N, P, R, R] (inference: layer 0's, sized for the largest layer,
 *                   shared by all); GN statistics mu/rs of GN1, GN2, GN3, GNs [8, N, G]
 *   shared          desc [B, P, R, R]; w_in [Y, Cmax]; sa, sb, sc [N, P]; sy, qy [N, Y];
 *                   k [K_COUNT, N, P]; wsoft [S * L]
 *   training only   gdesc [B, P, R, R]; dbig [N, P, R, R]; dq1, dq2 [N, Q, R, R];
 *                   dy [N, Y, hmax, wmax]; dw_in [Y, Cmax]; dw [max(9 Q^2, P Q)];
 *                   dgb [2, P]; dmix_unit [B, P/16, S]; dmix [S * L]
 * then one allocation carved by it. */
static int workspace_alloc(dhf_fastnet *f, size_t max_xb, size_t max_yhw, size_t max_cin)
{
    const size_t N = (size_t)f->N, P = (size_t)f->P, Q = (size_t)f->Q, Y = Q + P;
    const size_t RR = (size_t)f->R * f->R, G = (size_t)f->G;
    ws_table t = { .n = 0 };
    for (int l = 0; l < f->L; l++) {
        fn_layer *ly = &f->layer[l];
        if (f->training || l == 0) {
            const size_t hw = (size_t)ly->h * ly->w;
            ws_float(&t, &ly->xb,
                     f->training ? dhf_blk_numel(f->N, ly->C, ly->h, ly->w) : max_xb);
            ws_float(&t, &ly->y, N * Y * (f->training ? hw : max_yhw));
            ws_float(&t, &ly->r1, N * Q * RR);
            ws_float(&t, &ly->c2, N * Q * RR);
            ws_float(&t, &ly->r2, N * Q * RR);
            ws_float(&t, &ly->c3, N * P * RR);
        }
        ws_double(&t, &ly->mu1, 8 * N * G);
    }
    ws_float(&t, &f->desc, (size_t)f->B * P * RR);
    ws_float(&t, &f->w_in, Y * max_cin);
    ws_double(&t, &f->sa, N * P);
    ws_double(&t, &f->sb, N * P);
    ws_double(&t, &f->sc, N * P);
    ws_double(&t, &f->sy, N * Y);
    ws_double(&t, &f->qy, N * Y);
    ws_float(&t, &f->k[0], K_COUNT * N * P);
    ws_float(&t, &f->wsoft, (size_t)f->S * f->L);
    if (f->training) {
        ws_float(&t, &f->gdesc, (size_t)f->B * P * RR);
        ws_float(&t, &f->dbig, N * P * RR);
        ws_float(&t, &f->dq1, N * Q * RR);
        ws_float(&t, &f->dq2, N * Q * RR);
        ws_float(&t, &f->dy, N * Y * max_yhw);
        ws_float(&t, &f->dw_in, Y * max_cin);
        ws_float(&t, &f->dw, 9 * Q * Q > P * Q ? 9 * Q * Q : P * Q);
        ws_float(&t, &f->dgb, 2 * P);
        ws_double(&t, &f->dmix_unit, (size_t)f->B * (P / BLK) * (size_t)f->S);
        ws_double(&t, &f->dmix, (size_t)f->S * f->L);
    }
    size_t off[sizeof t.e / sizeof t.e[0]], total = 0;
    for (int i = 0; i < t.n; i++) {
        const size_t bytes = t.e[i].count * (t.e[i].f ? sizeof(float) : sizeof(double));
        off[i] = ws_align(total, bytes);
        total = off[i] + bytes;
    }
    f->arena = xalloc(total, 1);
    if (!f->arena)
        return -1;
    char *base = f->arena;
    for (int i = 0; i < t.n; i++) {
        if (t.e[i].f)
            *t.e[i].f = (float *)(void *)(base + off[i]);
        else
            *t.e[i].d = (double *)(void *)(base + off[i]);
    }
    for (int l = 0; l < f->L; l++) {
        fn_layer *ly = &f->layer[l];
        if (!f->training && l > 0) {   /* inference: the layers run one after the other */
            const fn_layer *l0 = &f->layer[0];
            ly->xb = l0->xb;
            ly->y = l0->y;
            ly->r1 = l0->r1;
            ly->c2 = l0->c2;
            ly->r2 = l0->r2;
            ly->c3 = l0->c3;
        }
        double *st = ly->mu1;
        const size_t ng = N * G;
        ly->rs1 = st + ng;
        ly->mu2 = st + 2 * ng;
        ly->rs2 = st + 3 * ng;
        ly->mu3 = st + 4 * ng;
        ly->rs3 = st + 5 * ng;
        ly->mus = st + 6 * ng;
        ly->rss = st + 7 * ng;
    }
    for (int i = 1; i < K_COUNT; i++)
        f->k[i] = f->k[0] + (size_t)i * N * P;
    return 0;
}

int dhf_fastnet_create(dhf_fastnet **out, const dhf_engine_net *net, const dhf_tensor *feats,
                       bool training, dhf_dconv_algo conv_algo, bool own1x1)
{
    *out = NULL;
    if (!dhf_dconv_available())
        return dhf_err_set("fastnet: dhf was built without oneDNN (libdnnl-dev)");
    const dhf_engine_net *c = net;
    if (c->proj_dim % 128 != 0)
        return dhf_err_set("fastnet: projection_dim %d must be a multiple of 128", c->proj_dim);
    if (own1x1 && !dhf_c1x1_supported())
        return dhf_err_set("fastnet: aggregation_conv1x1 \"own\" needs a CPU with AVX-512F "
                           "(this one has none); use \"auto\" or \"onednn\"");
    dhf_fastnet *f = calloc(1, sizeof *f);
    if (!f)
        return dhf_err_set("fastnet: out of memory");
    f->L = c->num_layers;
    f->S = c->num_timesteps;
    f->P = c->proj_dim;
    f->Q = c->proj_dim / 4;
    f->R = c->out_res;
    f->G = c->gn_groups;
    f->eps = c->gn_eps;
    f->B = (int)dhf_size(feats[0], 0);
    f->N = f->B * f->S;
    f->training = training;
    size_t max_yhw = 0, max_cin = 0, max_xb = 0;
    for (int l = 0; l < f->L; l++)       /* sizes of the shared buffers (inference) */
        if (feats[l] && dhf_ndim(feats[l]) == 5) {
            size_t xb = dhf_blk_numel(f->N, dhf_size(feats[l], 2), dhf_size(feats[l], 3),
                                      dhf_size(feats[l], 4));
            size_t hw = (size_t)dhf_size(feats[l], 3) * (size_t)dhf_size(feats[l], 4);
            max_xb = xb > max_xb ? xb : max_xb;
            max_yhw = hw > max_yhw ? hw : max_yhw;
        }
    for (int l = 0; l < f->L; l++) {
        dhf_tensor x = feats[l];
        if (!x || dhf_ndim(x) != 5 || dhf_get_dtype(x) != DHF_F32 ||
            dhf_get_device(x).type != DHF_CPU || !dhf_is_contiguous(x) ||
            dhf_size(x, 0) != f->B || dhf_size(x, 1) != f->S || dhf_size(x, 2) != c->channels[l]) {
            dhf_fastnet_free(f);
            return dhf_err_set("fastnet: features of layer %d: expected contiguous CPU float32 "
                               "[B=%d, S=%d, C=%d, h, w]", l, f->B, f->S, c->channels[l]);
        }
        fn_layer *ly = &f->layer[l];
        ly->C = c->channels[l];
        ly->h = (int)dhf_size(x, 3);
        ly->w = (int)dhf_size(x, 4);
        if (ly->w > f->maxw)
            f->maxw = ly->w;
        if ((size_t)ly->C > max_cin)
            max_cin = (size_t)ly->C;
        if (dhf_bilin1d_init(&ly->ty, ly->h, f->R) || dhf_bilin1d_init(&ly->tx, ly->w, f->R))
            goto oom;
        /* layers of one shape share their input convolution */
        for (int m = 0; m < l && !ly->conv_in; m++)
            if (f->layer[m].C == ly->C && f->layer[m].h == ly->h && f->layer[m].w == ly->w) {
                ly->conv_in = f->layer[m].conv_in;
                ly->own_in = f->layer[m].own_in;
            }
        if (!ly->conv_in) {
            if (dhf_dconv_create(&ly->conv_in, f->N, ly->C, f->Q + f->P, ly->h, ly->w, 1, false,
                                 DHF_DCONV_DIRECT) ||
                (own1x1 &&
                 dhf_c1x1_create(&ly->own_in, f->N, ly->C, f->Q + f->P, ly->h, ly->w))) {
                ly->owns_conv_in = ly->conv_in != NULL;
                ly->owns_own_in = ly->own_in != NULL;
                dhf_err_wrap("fastnet layer %d: conv1+shortcut", l);
                goto fail;
            }
            ly->owns_conv_in = true;
            ly->owns_own_in = ly->own_in != NULL;
        }
    }
    if (dhf_dconv_create(&f->conv2, f->N, f->Q, f->Q, f->R, f->R, 3, training, conv_algo)) {
        dhf_err_wrap("fastnet: conv2 (3x3)");
        goto fail;
    }
    if (dhf_dconv_create(&f->conv3, f->N, f->Q, f->P, f->R, f->R, 1, training && !own1x1,
                         DHF_DCONV_DIRECT) ||
        (own1x1 && dhf_c1x1_create(&f->own3, f->N, f->Q, f->P, f->R, f->R))) {
        dhf_err_wrap("fastnet: conv3 (1x1)");
        goto fail;
    }
    if (workspace_alloc(f, max_xb, max_yhw, max_cin))
        goto oom;
    f->scratch_per_thread = ((size_t)f->R * BLK * 2 + (size_t)f->maxw * BLK + 15) / 16 * 16;
    if (ensure_scratch(f))
        goto fail;
    if (own1x1)
        snprintf(f->describe, sizeof f->describe,
                 "conv2 %s; 1x1 forwards and conv3 backward-data on dhf's AVX-512 kernels; "
                 "1x1 backward-weights on oneDNN (conv3: %s)", dhf_dconv_impl(f->conv2),
                 dhf_dconv_impl(f->conv3));
    else
        snprintf(f->describe, sizeof f->describe, "conv2 %s; conv3 %s; layer-0 input %s",
                 dhf_dconv_impl(f->conv2), dhf_dconv_impl(f->conv3),
                 dhf_dconv_impl(f->layer[0].conv_in));
    *out = f;
    return 0;
oom:
    dhf_err_set("fastnet: out of memory for the activations (B=%d, S=%d, P=%d, R=%d)", f->B,
                f->S, f->P, f->R);
fail:
    dhf_fastnet_free(f);
    return -1;
}

/* ---- slices: the planes of the blocked tensors (blocked.h) ------------------------ */

/* plane (n, cb) of a blocked [N, Cb * 16, R, R] map: R*R pixels of 16 channels */
static inline size_t rr_off(const dhf_fastnet *f, int n, int Cb, int cb)
{
    return ((size_t)n * Cb + cb) * (size_t)f->R * f->R * BLK;
}

static inline float *rr_plane(const dhf_fastnet *f, float *t, int n, int Cb, int cb)
{
    return t + rr_off(f, n, Cb, cb);
}

/* plane (n, cb) of a layer's y or dy [N, Q + P, h, w] at native resolution: blocks
 * [0, Q/16) are conv1's, [Q/16, (Q + P)/16) the shortcut's */
static inline float *native_plane(const dhf_fastnet *f, const fn_layer *ly, float *t, int n,
                                  int cb)
{
    return t + ((size_t)n * ((f->Q + f->P) / BLK) + cb) * (size_t)ly->h * ly->w * BLK;
}

/* index of channel block cb of sample n in a per-(sample, channel) array [N, C] */
static inline size_t chan(int n, int C, int cb)
{
    return (size_t)n * C + (size_t)cb * BLK;
}

/* ---- GroupNorm bookkeeping (per sample n, group g; per-channel arrays [N * C]) ---- */

/* mean and 1/sqrt(var + eps) of each (n, g) from per-channel sums over `count` pixels */
static void gn_stats(int N, int C, int G, double eps, double count, const double *s,
                     const double *q, double *mu, double *rs)
{
    const int cpg = C / G;
    const double M = (double)cpg * count;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            double S = 0, Q = 0;
            for (int j = 0; j < cpg; j++) {
                S += s[(size_t)n * C + g * cpg + j];
                Q += q[(size_t)n * C + g * cpg + j];
            }
            double mean = S / M, var = Q / M - mean * mean;
            if (var < 0)
                var = 0;
            mu[n * G + g] = mean;
            rs[n * G + g] = 1.0 / sqrt(var + eps);
        }
}

/* forward affine per (n, c): GN(x) = a x + b; normalised x = xa x + xb (xa/xb may be NULL) */
static void gn_coeffs(int N, int C, int G, const double *mu, const double *rs,
                      const float *gamma, const float *beta, float *a, float *b, float *xa,
                      float *xb)
{
    const int cpg = C / G;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double m = mu[n * G + c / cpg], r = rs[n * G + c / cpg];
            size_t i = (size_t)n * C + c;
            a[i] = (float)(gamma[c] * r);
            b[i] = (float)(beta[c] - m * gamma[c] * r);
            if (xa) {
                xa[i] = (float)r;
                xb[i] = (float)(-m * r);
            }
        }
}

/* GroupNorm (gamma, beta) over C channels from the per-channel sums in f->sa, f->sb:
 * mu, rs written, and the forward affine GN(x) = a x + b */
static void gn_forward(const dhf_fastnet *f, dhf_tensor gamma, dhf_tensor beta, int C,
                       double *mu, double *rs, float *a, float *b)
{
    gn_stats(f->N, C, f->G, f->eps, (double)f->R * f->R, f->sa, f->sb, mu, rs);
    gn_coeffs(f->N, C, f->G, mu, rs, pdata(gamma), pdata(beta), a, b, NULL, NULL);
}

static int write_grad(dhf_tensor param, const float *g, size_t n, const char *what)
{
    dhf_tensor gt = NULL;
    if (dhf_grad_buffer(param, &gt) != DHF_OK)
        return dhf_err_set("fastnet: gradient of %s: %s", what, dhf_last_error());
    float *d = pdata(gt);
    if (!d || (size_t)dhf_numel(gt) != n) {
        dhf_free(gt);
        return dhf_err_set("fastnet: gradient of %s is not a contiguous float32 buffer of %zu "
                           "values", what, n);
    }
    memcpy(d, g, sizeof(float) * n);
    dhf_free(gt);
    return 0;
}

/* Backward of GroupNorm `name` (gamma, beta), y = gamma x^ + beta with x^ = (x - mu) r
 * over each (sample, group) of R*R pixels: from the per-channel sums sdy = sum dy and
 * sdyx = sum dy x^ [N * C], the input gradient's coefficients dx = al dy + kx x^ + k0
 * per (n, c), and the parameters' gradients dgamma = sum_n sdyx, dbeta = sum_n sdy
 * written to their .grad. */
static int gn_backward(dhf_fastnet *f, dhf_tensor gamma_t, dhf_tensor beta_t, const char *name,
                       int C,
                       const double *rs, const double *sdy, const double *sdyx, float *al,
                       float *kx, float *k0)
{
    const int N = f->N, G = f->G, cpg = C / G;
    const float *gamma = pdata(gamma_t);
    const double M = (double)cpg * f->R * f->R;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            double A = 0, Bv = 0, r = rs[n * G + g];
            for (int j = 0; j < cpg; j++) {
                int c = g * cpg + j;
                A += gamma[c] * sdy[(size_t)n * C + c];
                Bv += gamma[c] * sdyx[(size_t)n * C + c];
            }
            A /= M;
            Bv /= M;
            for (int j = 0; j < cpg; j++) {
                int c = g * cpg + j;
                size_t i = (size_t)n * C + c;
                al[i] = (float)(r * gamma[c]);
                kx[i] = (float)(-r * Bv);
                k0[i] = (float)(-r * A);
            }
        }
    float *dgamma = f->dgb, *dbeta = f->dgb + C;
    for (int c = 0; c < C; c++) {
        double dg = 0, db = 0;
        for (int n = 0; n < N; n++) {
            dg += sdyx[(size_t)n * C + c];
            db += sdy[(size_t)n * C + c];
        }
        dgamma[c] = (float)dg;
        dbeta[c] = (float)db;
    }
    char what[64];
    snprintf(what, sizeof what, "%s.weight", name);
    if (write_grad(gamma_t, dgamma, (size_t)C, what))
        return -1;
    snprintf(what, sizeof what, "%s.bias", name);
    if (write_grad(beta_t, dbeta, (size_t)C, what))
        return -1;
    return 0;
}

/* per-channel sums of a stored [N, C, R, R] blocked tensor */
static void plane_sums(const dhf_fastnet *f, float *t, int C, double *s, double *q)
{
    const int N = f->N, Cb = C / BLK;
    const int64_t RR = (int64_t)f->R * f->R;
    memset(s, 0, sizeof(double) * (size_t)N * C);
    memset(q, 0, sizeof(double) * (size_t)N * C);
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int cb = 0; cb < Cb; cb++)
            dhf_blk_sums(rr_plane(f, t, n, Cb, cb), RR, s + chan(n, C, cb),
                         q + chan(n, C, cb));
}

/* per-channel sums of resize_R(y block range [cb0, cb0 + Cb)) for every sample */
static void resized_sums(const dhf_fastnet *f, const fn_layer *ly, int cb0, int C, double *s,
                         double *q)
{
    const int N = f->N, Cb = C / BLK, R = f->R;
    memset(s, 0, sizeof(double) * (size_t)N * C);
    memset(q, 0, sizeof(double) * (size_t)N * C);
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int cb = 0; cb < Cb; cb++) {
            float *row = my_scratch(f), *vt = row + 2 * (size_t)R * BLK;
            const float *plane = native_plane(f, ly, ly->y, n, cb0 + cb);
            for (int oy = 0; oy < R; oy++) {
                const float *r = dhf_blk_resize_row(plane, &ly->ty, &ly->tx, oy, row, vt);
                dhf_blk_sums(r, R, s + chan(n, C, cb), q + chan(n, C, cb));
            }
        }
}

/* channels [c0, c0 + C) of the [N * (Q + P)] sums of y into [N * C] arrays */
static void take_sums(const dhf_fastnet *f, int c0, int C, double *s, double *q)
{
    const int Y = f->Q + f->P;
    for (int n = 0; n < f->N; n++)
        for (int c = 0; c < C; c++) {
            s[(size_t)n * C + c] = f->sy[(size_t)n * Y + c0 + c];
            q[(size_t)n * C + c] = f->qy[(size_t)n * Y + c0 + c];
        }
}

/* ---- forward ----------------------------------------------------------------------- */

/* out = relu(a * resize(plane) + b), one plane, row by row */
DHF_HOT static void gn1_relu_forward_plane(const float *restrict plane, const dhf_bilin1d *ty,
                                           const dhf_bilin1d *tx, int R,
                                           const float *restrict a, const float *restrict b,
                                           float *restrict out, float *restrict row,
                                           float *restrict vt)
{
    const v16 va = V16_LOAD(a), vb = V16_LOAD(b);
    for (int oy = 0; oy < R; oy++) {
        const float *r = dhf_blk_resize_row(plane, ty, tx, oy, row, vt);
        float *d = out + (size_t)oy * R * BLK;
        for (int i = 0; i < R; i++) {
            v16 v = va * V16_LOAD(r + i * BLK) + vb;
            V16_STREAM(d + i * BLK, V16_RELU(v));
        }
    }
}

/* d = relu(a * src + b), one plane of RR pixels */
DHF_HOT static void gn2_relu_forward_plane(const float *restrict src, size_t RR,
                                           const float *restrict a, const float *restrict b,
                                           float *restrict d)
{
    const v16 va = V16_LOAD(a), vb = V16_LOAD(b);
    for (size_t i = 0; i < RR; i++) {
        v16 v = va * V16_LOAD(src + i * BLK) + vb;
        V16_STREAM(d + i * BLK, V16_RELU(v));
    }
}

/* The block output of one sample and channel block, weighted into the descriptor:
 * d += ws * relu(a3 c3 + b3 + as resize(ys) + bs) */
DHF_HOT static void output_forward_plane(const float *restrict c3, const float *restrict ys,
                                         const dhf_bilin1d *ty, const dhf_bilin1d *tx, int R,
                                         const float *restrict a3, const float *restrict b3,
                                         const float *restrict as, const float *restrict bs,
                                         float ws, float *restrict d, float *restrict row,
                                         float *restrict vt)
{
    const v16 va3 = V16_LOAD(a3), vas = V16_LOAD(as), vbb = V16_LOAD(b3) + V16_LOAD(bs);
    for (int oy = 0; oy < R; oy++) {
        const float *r = dhf_blk_resize_row(ys, ty, tx, oy, row, vt);
        const float *c = c3 + (size_t)oy * R * BLK;
        float *o = d + (size_t)oy * R * BLK;
        for (int i = 0; i < R; i++) {
            v16 z = va3 * V16_LOAD(c + i * BLK) + vas * V16_LOAD(r + i * BLK) + vbb;
            V16_STORE(o + i * BLK, V16_LOAD(o + i * BLK) + ws * V16_RELU(z));
        }
    }
}

/* ---- the layer's operations, each a forward and a backward ---------------------------
 * One layer, N = B*S samples, Q = P/4, activations channel-blocked (blocked.h):
 *   x [N, C, h, w] -> y = [conv1; shortcut](x) [N, Q + P, h, w]       input_
 *   y1 = y[:, :Q] -> r1 = relu(GN1(U y1)) [N, Q, R, R]                 gn1_relu_
 *   c2 = conv2(r1) [N, Q, R, R]                                        conv2_
 *   r2 = relu(GN2(c2)) [N, Q, R, R]                                    gn2_relu_
 *   c3 = conv3(r2) [N, P, R, R]                                        conv3_
 *   desc[b] += w[s*L + l] relu(GN3(c3) + GNs(U ys)), ys = y[:, Q:]     output_
 * The backward runs them in reverse; the gradients of the activations live in the
 * shared dbig [N, P, R, R], dq1, dq2 [N, Q, R, R] and dy [N, Q + P, h, w]. */

/* conv1+shortcut on the own kernels at native resolution R (no resize) sum y for GN1
 * and GNs as they go */
static bool y_summed(const fn_layer *ly)
{
    return ly->own_in && ly->ty.identity && ly->tx.identity;
}

/* x NCHW [N, C, h, w] -> xb (blocked) -> y [N, Q + P, h, w] */
static int input_forward(dhf_fastnet *f, fn_layer *ly, const dhf_engine_layer *bn,
                         const float *x)
{
    const size_t Q = (size_t)f->Q, P = (size_t)f->P, C = (size_t)ly->C;
    double t = PROF_NOW();
    dhf_blk_pack(x, f->N, ly->C, ly->h, ly->w, ly->xb);
    pass_done(f, DHF_FN_PASS_PACK, &t);
    memcpy(f->w_in, pdata(bn->conv1_w), sizeof(float) * Q * C);
    memcpy(f->w_in + Q * C, pdata(bn->short_w), sizeof(float) * P * C);
    const bool sums = y_summed(ly);
    if (ly->own_in ? own_forward(f, ly->own_in, ly->xb, f->w_in, ly->y, sums ? f->sy : NULL,
                                 sums ? f->qy : NULL)
                   : conv_run(f, CONV_FWD, ly->conv_in, ly->xb, f->w_in, ly->y))
        return dhf_err_wrap("conv1+shortcut");
    return 0;
}

/* y1 [N, Q, h, w] -> r1 = relu(GN1(U y1)) [N, Q, R, R] (U made a row at a time) */
static void gn1_relu_forward(dhf_fastnet *f, fn_layer *ly, const dhf_engine_layer *bn)
{
    const int N = f->N, Q = f->Q, R = f->R, Qb = Q / BLK;
    float *const *k = f->k;
    double t = PROF_NOW();
    if (y_summed(ly))
        take_sums(f, 0, Q, f->sa, f->sb);
    else
        resized_sums(f, ly, 0, Q, f->sa, f->sb);
    gn_forward(f, bn->gn1_w, bn->gn1_b, Q, ly->mu1, ly->rs1, k[K_A3], k[K_B3]);
    pass_done(f, DHF_FN_PASS_GN1_STATS, &t);
    /* r1 and r2 are written with streaming stores (read back by the next convolution,
     * long after they left the caches): no read of the destination before the write */
#pragma omp parallel
    {
#pragma omp for collapse(2) schedule(static) nowait
        for (int n = 0; n < N; n++)
            for (int cb = 0; cb < Qb; cb++) {
                float *row = my_scratch(f), *vt = row + 2 * (size_t)R * BLK;
                const size_t nc = chan(n, Q, cb);
                gn1_relu_forward_plane(native_plane(f, ly, ly->y, n, cb), &ly->ty, &ly->tx, R,
                                       k[K_A3] + nc, k[K_B3] + nc,
                                       rr_plane(f, ly->r1, n, Qb, cb), row, vt);
            }
        V16_STREAM_FENCE();
    }
    pass_done(f, DHF_FN_PASS_R1, &t);
}

/* r1 [N, Q, R, R] -> c2 = conv2(r1) [N, Q, R, R] (3x3) */
static int conv2_forward(dhf_fastnet *f, fn_layer *ly, const dhf_engine_layer *bn)
{
    if (conv_run(f, CONV_FWD, f->conv2, ly->r1, pdata(bn->conv2_w), ly->c2))
        return dhf_err_wrap("conv2");
    return 0;
}

/* c2 [N, Q, R, R] -> r2 = relu(GN2(c2)) [N, Q, R, R] */
static void gn2_relu_forward(dhf_fastnet *f, fn_layer *ly, const dhf_engine_layer *bn)
{
    const int N = f->N, Q = f->Q, Qb = Q / BLK;
    const size_t RR = (size_t)f->R * f->R;
    float *const *k = f->k;
    double t = PROF_NOW();
    plane_sums(f, ly->c2, Q, f->sa, f->sb);
    gn_forward(f, bn->gn2_w, bn->gn2_b, Q, ly->mu2, ly->rs2, k[K_A3], k[K_B3]);
    pass_done(f, DHF_FN_PASS_GN2_STATS, &t);
#pragma omp parallel
    {
#pragma omp for collapse(2) schedule(static) nowait
        for (int n = 0; n < N; n++)
            for (int cb = 0; cb < Qb; cb++) {
                const size_t nc = chan(n, Q, cb);
                const size_t off = rr_off(f, n, Qb, cb);
                gn2_relu_forward_plane(ly->c2 + off, RR, k[K_A3] + nc, k[K_B3] + nc,
                                       ly->r2 + off);
            }
        V16_STREAM_FENCE();
    }
    pass_done(f, DHF_FN_PASS_R2, &t);
}

/* r2 [N, Q, R, R] -> c3 = conv3(r2) [N, P, R, R] (1x1; on the own kernels with c3's
 * per-channel sums into sa, sb) */
static int conv3_forward(dhf_fastnet *f, fn_layer *ly, const dhf_engine_layer *bn)
{
    const float *w3 = pdata(bn->conv3_w);
    if (f->own3 ? own_forward(f, f->own3, ly->r2, w3, ly->c3, f->sa, f->sb)
                : conv_run(f, CONV_FWD, f->conv3, ly->r2, w3, ly->c3))
        return dhf_err_wrap("conv3");
    return 0;
}

/* c3 [N, P, R, R], ys [N, P, h, w] -> desc[b] += w[s*L + l] relu(GN3(c3) + GNs(U ys))
 * [B, P, R, R]; a thread owns a (b, cb) plane of desc */
static void output_forward(dhf_fastnet *f, fn_layer *ly, const dhf_engine_layer *bn, int l)
{
    const int Q = f->Q, P = f->P, R = f->R, S = f->S, L = f->L, Qb = Q / BLK, Pb = P / BLK;
    float *const *k = f->k;
    double t = PROF_NOW();
    if (!f->own3)
        plane_sums(f, ly->c3, P, f->sa, f->sb);
    gn_forward(f, bn->gn3_w, bn->gn3_b, P, ly->mu3, ly->rs3, k[K_A3], k[K_B3]);
    if (y_summed(ly))
        take_sums(f, Q, P, f->sa, f->sb);
    else
        resized_sums(f, ly, Qb, P, f->sa, f->sb);
    gn_forward(f, bn->gns_w, bn->gns_b, P, ly->mus, ly->rss, k[K_AS], k[K_BS]);
    pass_done(f, DHF_FN_PASS_GN3_STATS, &t);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < f->B; b++)
        for (int cb = 0; cb < Pb; cb++) {
            float *row = my_scratch(f), *vt = row + 2 * (size_t)R * BLK;
            for (int s = 0; s < S; s++) {
                const int n = b * S + s;
                const size_t nc = chan(n, P, cb);
                output_forward_plane(rr_plane(f, ly->c3, n, Pb, cb),
                                     native_plane(f, ly, ly->y, n, Qb + cb), &ly->ty, &ly->tx,
                                     R, k[K_A3] + nc, k[K_B3] + nc, k[K_AS] + nc, k[K_BS] + nc,
                                     f->wsoft[s * L + l], rr_plane(f, f->desc, b, Pb, cb), row,
                                     vt);
            }
        }
    pass_done(f, DHF_FN_PASS_OUTPUT, &t);
}

/* Layer l's contribution to the descriptor from its features x (NCHW). */
static int layer_forward(dhf_fastnet *f, const dhf_engine_net *net, int l, const float *x)
{
    fn_layer *ly = &f->layer[l];
    const dhf_engine_layer *bn = &net->layer[l];
    if (input_forward(f, ly, bn, x))
        return -1;
    gn1_relu_forward(f, ly, bn);
    if (conv2_forward(f, ly, bn))
        return -1;
    gn2_relu_forward(f, ly, bn);
    if (conv3_forward(f, ly, bn))
        return -1;
    output_forward(f, ly, bn, l);
    return 0;
}

static int softmax_weights(dhf_fastnet *f, const dhf_engine_net *net)
{
    const float *m = pdata(net->mixing_weights);
    const int n = f->S * f->L;
    if (!m)
        return dhf_err_set("fastnet: mixing_weights is not a contiguous CPU tensor");
    double mx = m[0], z = 0;
    for (int i = 1; i < n; i++)
        if (m[i] > mx)
            mx = m[i];
    for (int i = 0; i < n; i++)
        z += exp((double)m[i] - mx);
    for (int i = 0; i < n; i++)
        f->wsoft[i] = (float)(exp((double)m[i] - mx) / z);
    return 0;
}

int dhf_fastnet_forward(dhf_fastnet *f, const dhf_engine_net *net, const dhf_tensor *feats,
                        bool for_backward, float *desc)
{
    f->have_activations = false;
#ifdef DHF_PROFILE
    const double t0 = dhf_now();
    f->prof.forward_s = f->prof.conv_forward_s = 0;
    for (int i = 0; i < DHF_FN_PASS_B_OUT_SUMS; i++)
        f->prof.pass_s[i] = 0;
#endif
    if (for_backward && !f->training)
        return dhf_err_set("fastnet: made for inference, it keeps no activations for a backward");
    if (!dhf_fastnet_fits(f, net, feats))
        return dhf_err_set("fastnet: the features do not have the shapes it was made for");
    for (int i = 0; i < net->num_params; i++)
        if (!pdata(net->params[i]) || dhf_get_dtype(net->params[i]) != DHF_F32)
            return dhf_err_set("fastnet: parameter %s: expected a contiguous float32 CPU "
                               "tensor", net->param_names[i]);
    if (ensure_scratch(f) || softmax_weights(f, net))
        return -1;
    const size_t RR = (size_t)f->R * f->R;
    memset(f->desc, 0, sizeof(float) * (size_t)f->B * f->P * RR);
    for (int l = 0; l < f->L; l++) {
        const float *x = pdata(feats[l]);
        if (!x)
            return dhf_err_set("fastnet: features of layer %d are not contiguous on the CPU", l);
        if (layer_forward(f, net, l, x))
            return dhf_err_wrap("fastnet forward, layer %d", l);
    }
    dhf_blk_unpack(f->desc, f->B, f->P, f->R, f->R, desc);
    f->have_activations = for_backward;
#ifdef DHF_PROFILE
    f->prof.forward_s = dhf_now() - t0;
#endif
    return 0;
}

/* ---- backward ---------------------------------------------------------------------- */


/* relu mask, then the GN backward's per-channel sums over a run of n pixels:
 * d = mask * d (in place), s1 += sum d, s2 += sum d * (xa x + xb); float partial sums
 * added to double. Inlined into the DHF_HOT callers (compiled per clone). */
static inline void masked_sums_run(float *restrict d, const float *restrict m,
                                   const float *restrict x, size_t n, const float *restrict xa,
                                   const float *restrict xb, double *restrict s1,
                                   double *restrict s2)
{
    const v16 vxa = V16_LOAD(xa), vxb = V16_LOAD(xb);
    v16 f1 = { 0 }, f2 = { 0 };
    for (size_t i = 0; i < n; i++) {
        const v16 dv = V16_WHERE_POS(V16_LOAD(m + i * BLK), V16_LOAD(d + i * BLK));
        V16_STORE(d + i * BLK, dv);
        f1 += dv;
        f2 += dv * (vxa * V16_LOAD(x + i * BLK) + vxb);
    }
    for (int j = 0; j < BLK; j++) {
        s1[j] += f1[j];
        s2[j] += f2[j];
    }
}

/* masked_sums_run over one stored plane of RR pixels: sdy, sdyx written */
DHF_HOT static void gn2_relu_backward_sums_plane(float *restrict g, const float *restrict m,
                                                 const float *restrict v, size_t RR,
                                                 const float *restrict xa,
                                                 const float *restrict xb, double *restrict sdy,
                                                 double *restrict sdyx)
{
    double s1[BLK] = { 0 }, s2[BLK] = { 0 };
    for (size_t i0 = 0; i0 < RR; i0 += 64) {
        const size_t n = i0 + 64 < RR ? 64 : RR - i0;
        masked_sums_run(g + i0 * BLK, m + i0 * BLK, v + i0 * BLK, n, xa, xb, s1, s2);
    }
    for (int j = 0; j < BLK; j++) {
        sdy[j] = s1[j];
        sdyx[j] = s2[j];
    }
}

/* d = al d + kx (xa x + xb) + k0 (the GN input gradient), one plane in place */
DHF_HOT static void gn2_relu_backward_plane(float *restrict d, const float *restrict v,
                                            size_t RR, const float *restrict xa,
                                            const float *restrict xb, const float *restrict al,
                                            const float *restrict kx, const float *restrict k0)
{
    const v16 vkx = V16_LOAD(kx), m = vkx * V16_LOAD(xa);
    const v16 c = vkx * V16_LOAD(xb) + V16_LOAD(k0), val = V16_LOAD(al);
    for (size_t i = 0; i < RR; i++)
        V16_STORE(d + i * BLK, val * V16_LOAD(d + i * BLK) + m * V16_LOAD(v + i * BLK) + c);
}

/* coefficient pointers of one (sample, channel block) of the output stage */
typedef struct {
    const float *a3, *b3, *as, *bs;          /* GN3 / GNs forward affine */
    const float *x3a, *x3b, *xsa, *xsb;      /* normalised c3 / U ys */
    const float *al, *kx, *k0, *als, *kxs, *k0s;   /* GN backward */
} out_coeffs;

static out_coeffs out_coeffs_at(float *const *k, size_t nc)
{
    out_coeffs o = { k[K_A3] + nc, k[K_B3] + nc, k[K_AS] + nc, k[K_BS] + nc,
                     k[K_X3A] + nc, k[K_X3B] + nc, k[K_XSA] + nc, k[K_XSB] + nc,
                     k[K_AL] + nc, k[K_KX] + nc, k[K_K0] + nc,
                     k[K_ALS] + nc, k[K_KXS] + nc, k[K_K0S] + nc };
    return o;
}

/* Output ReLU of one sample and channel block, from G = dloss/ddesc: per-channel
 * sums s_dz = sum dz, s_3 = sum dz c3^, s_s = sum dz (U ys)^ with dz = ws G [z > 0],
 * and returns sum G relu(z) (dloss/dw for this plane) */
DHF_HOT static double output_backward_sums_plane(const float *restrict c3,
                                                 const float *restrict ys,
                                                 const float *restrict gd,
                                                 const dhf_bilin1d *ty, const dhf_bilin1d *tx,
                                                 int R, const out_coeffs *o, float ws,
                                                 double *restrict s_dz, double *restrict s_3,
                                                 double *restrict s_s, float *restrict row,
                                                 float *restrict vt)
{
    double d1[BLK] = { 0 }, d3[BLK] = { 0 }, ds[BLK] = { 0 }, dm[BLK] = { 0 };
    const v16 va3 = V16_LOAD(o->a3), vas = V16_LOAD(o->as);
    const v16 vbb = V16_LOAD(o->b3) + V16_LOAD(o->bs);
    const v16 x3a = V16_LOAD(o->x3a), x3b = V16_LOAD(o->x3b);
    const v16 xsa = V16_LOAD(o->xsa), xsb = V16_LOAD(o->xsb);
    for (int oy = 0; oy < R; oy++) {
        const float *r = dhf_blk_resize_row(ys, ty, tx, oy, row, vt);
        const float *c = c3 + (size_t)oy * R * BLK, *g = gd + (size_t)oy * R * BLK;
        v16 f1 = { 0 }, f3 = { 0 }, fs = { 0 }, fm = { 0 };
        for (int i = 0; i < R; i++) {
            const v16 vc = V16_LOAD(c + i * BLK), vr = V16_LOAD(r + i * BLK);
            const v16 z = va3 * vc + vas * vr + vbb;
            const v16 gz = V16_WHERE_POS(z, V16_LOAD(g + i * BLK));
            fm += gz * z;
            f1 += gz;
            f3 += gz * (x3a * vc + x3b);
            fs += gz * (xsa * vr + xsb);
        }
        for (int j = 0; j < BLK; j++) {
            d1[j] += f1[j];
            d3[j] += f3[j];
            ds[j] += fs[j];
            dm[j] += fm[j];
        }
    }
    double total = 0;
    for (int j = 0; j < BLK; j++) {
        s_dz[j] = ws * d1[j];
        s_3[j] = ws * d3[j];
        s_s[j] = ws * ds[j];
        total += dm[j];
    }
    return total;
}

/* dc3 (written, streamed) and dys (at native resolution: accumulated, or written when
 * the resize is the identity) of one sample and block */
DHF_HOT static void output_backward_plane(const float *restrict c3, const float *restrict ys,
                                          const float *restrict gd, const dhf_bilin1d *ty,
                                          const dhf_bilin1d *tx, int R, const out_coeffs *o,
                                          float ws, float *restrict dc3, float *restrict dys,
                                          float *restrict row, float *restrict row2,
                                          float *restrict vt)
{
    const v16 va3 = V16_LOAD(o->a3), vas = V16_LOAD(o->as);
    const v16 vbb = V16_LOAD(o->b3) + V16_LOAD(o->bs);
    const v16 vkx = V16_LOAD(o->kx), vkxs = V16_LOAD(o->kxs);
    const v16 m3 = vkx * V16_LOAD(o->x3a), c3k = vkx * V16_LOAD(o->x3b) + V16_LOAD(o->k0);
    const v16 ms = vkxs * V16_LOAD(o->xsa), csk = vkxs * V16_LOAD(o->xsb) + V16_LOAD(o->k0s);
    const v16 al = ws * V16_LOAD(o->al), als = ws * V16_LOAD(o->als);
    const bool ident = ty->identity && tx->identity;
    for (int oy = 0; oy < R; oy++) {
        const float *r = dhf_blk_resize_row(ys, ty, tx, oy, row, vt);
        const size_t ro = (size_t)oy * R * BLK;
        float *gs = ident ? dys + ro : row2;
        for (int i = 0; i < R; i++) {
            const size_t e = ro + (size_t)i * BLK;
            const v16 c = V16_LOAD(c3 + e), u = V16_LOAD(r + i * BLK);
            const v16 z = va3 * c + vas * u + vbb;
            const v16 g = V16_WHERE_POS(z, V16_LOAD(gd + e));     /* dz / ws */
            V16_STREAM(dc3 + e, al * g + m3 * c + c3k);
            if (ident)          /* dys at native resolution: written once, streamed */
                V16_STREAM(gs + i * BLK, als * g + ms * u + csk);
            else
                V16_STORE(gs + i * BLK, als * g + ms * u + csk);
        }
        if (!ident)
            dhf_blk_resize_row_adjoint(row2, ty, tx, oy, dys, vt);
    }
}

/* GN1 backward sums over the recomputed U y1, with the r1 > 0 mask applied to d */
DHF_HOT static void gn1_relu_backward_sums_plane(const float *restrict plane,
                                                 const dhf_bilin1d *ty, const dhf_bilin1d *tx,
                                                 int R, float *restrict d,
                                                 const float *restrict m,
                                                 const float *restrict xa,
                                                 const float *restrict xb, double *restrict sdy,
                                                 double *restrict sdyx, float *restrict row,
                                                 float *restrict vt)
{
    double s1[BLK] = { 0 }, s2[BLK] = { 0 };
    for (int oy = 0; oy < R; oy++) {
        const float *r = dhf_blk_resize_row(plane, ty, tx, oy, row, vt);
        const size_t ro = (size_t)oy * R * BLK;
        masked_sums_run(d + ro, m + ro, r, (size_t)R, xa, xb, s1, s2);
    }
    for (int j = 0; j < BLK; j++) {
        sdy[j] = s1[j];
        sdyx[j] = s2[j];
    }
}

/* dy1 (native; accumulated, or written when the resize is the identity)
 * = U^T (al d + kx (U y1)^ + k0) */
DHF_HOT static void gn1_relu_backward_plane(const float *restrict plane, const dhf_bilin1d *ty,
                                            const dhf_bilin1d *tx, int R,
                                            const float *restrict d, const float *restrict xa,
                                            const float *restrict xb, const float *restrict al,
                                            const float *restrict kx, const float *restrict k0,
                                            float *restrict dplane, float *restrict row,
                                            float *restrict row2, float *restrict vt)
{
    const v16 vkx = V16_LOAD(kx), m = vkx * V16_LOAD(xa);
    const v16 c = vkx * V16_LOAD(xb) + V16_LOAD(k0), val = V16_LOAD(al);
    const bool ident = ty->identity && tx->identity;
    for (int oy = 0; oy < R; oy++) {
        const float *r = dhf_blk_resize_row(plane, ty, tx, oy, row, vt);
        const float *dr = d + (size_t)oy * R * BLK;
        if (ident) {        /* written once, streamed */
            float *out = dplane + (size_t)oy * R * BLK;
            for (int i = 0; i < R; i++)
                V16_STREAM(out + i * BLK,
                           val * V16_LOAD(dr + i * BLK) + m * V16_LOAD(r + i * BLK) + c);
        } else {
            for (int i = 0; i < R; i++)
                V16_STORE(row2 + i * BLK,
                          val * V16_LOAD(dr + i * BLK) + m * V16_LOAD(r + i * BLK) + c);
            dhf_blk_resize_row_adjoint(row2, ty, tx, oy, dplane, vt);
        }
    }
}

/* gdesc [B, P, R, R] -> dc3 (dbig) [N, P, R, R] and dys (dy's shortcut blocks)
 * [N, P, h, w], dloss/dw[s*L + l] (dmix), GN3's and GNs's parameter gradients */
static int output_backward(dhf_fastnet *f, fn_layer *ly, const dhf_engine_layer *bn, int l)
{
    const int N = f->N, Q = f->Q, P = f->P, R = f->R, G = f->G, S = f->S, L = f->L;
    const int Qb = Q / BLK, Pb = P / BLK;
    const size_t hw = (size_t)ly->h * ly->w;
    float *const *k = f->k;
    const float *g3 = pdata(bn->gn3_w), *be3 = pdata(bn->gn3_b);
    const float *gs = pdata(bn->gns_w), *bes = pdata(bn->gns_b);

    /* normalised c3 and U ys per (n, c): x^ = xa x + xb */
    gn_coeffs(N, P, G, ly->mu3, ly->rs3, g3, be3, k[K_A3], k[K_B3], k[K_X3A], k[K_X3B]);
    gn_coeffs(N, P, G, ly->mus, ly->rss, gs, bes, k[K_AS], k[K_BS], k[K_XSA], k[K_XSB]);

    /* the output ReLU: sums for GN3 / GNs and dloss/dw[s*L + l] */
    double t = PROF_NOW();
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < f->B; b++)
        for (int cb = 0; cb < Pb; cb++) {
            float *row = my_scratch(f), *vt = row + 2 * (size_t)R * BLK;
            for (int s = 0; s < S; s++) {
                const int n = b * S + s;
                const size_t nc = chan(n, P, cb);
                out_coeffs o = out_coeffs_at(k, nc);
                f->dmix_unit[((size_t)b * Pb + cb) * S + s] = output_backward_sums_plane(
                    rr_plane(f, ly->c3, n, Pb, cb), native_plane(f, ly, ly->y, n, Qb + cb),
                    rr_plane(f, f->gdesc, b, Pb, cb), &ly->ty, &ly->tx, R, &o,
                    f->wsoft[s * L + l], f->sa + nc, f->sb + nc, f->sc + nc, row, vt);
            }
        }
    for (int s = 0; s < S; s++) {
        double sum = 0;
        for (int u = 0; u < f->B * Pb; u++)
            sum += f->dmix_unit[(size_t)u * S + s];
        f->dmix[s * L + l] = sum;
    }
    if (gn_backward(f, bn->gn3_w, bn->gn3_b, "conv3.norm", P, ly->rs3, f->sa, f->sb, k[K_AL],
                    k[K_KX], k[K_K0]) ||
        gn_backward(f, bn->gns_w, bn->gns_b, "shortcut.norm", P, ly->rss, f->sa, f->sc,
                    k[K_ALS], k[K_KXS], k[K_K0S]))
        return -1;
    pass_done(f, DHF_FN_PASS_B_OUT_SUMS, &t);

    /* dc3 (into dbig) and dys (native, into dy's shortcut blocks); at native
     * resolution R every pixel of dy is written once, else the adjoints accumulate.
     * A thread owns a (b, cb) plane of gdesc and runs the S samples of image b over
     * it, so the plane is read from memory once, not S times. */
    if (!(ly->ty.identity && ly->tx.identity))
        memset(f->dy, 0, sizeof(float) * (size_t)N * (Q + P) * hw);
#pragma omp parallel
    {
#pragma omp for collapse(2) schedule(static) nowait
        for (int b = 0; b < f->B; b++)
            for (int cb = 0; cb < Pb; cb++)
                for (int s = 0; s < S; s++) {
                    float *row = my_scratch(f), *row2 = row + (size_t)R * BLK;
                    float *vt = row2 + (size_t)R * BLK;
                    const int n = b * S + s;
                    out_coeffs o = out_coeffs_at(k, chan(n, P, cb));
                    output_backward_plane(rr_plane(f, ly->c3, n, Pb, cb),
                                          native_plane(f, ly, ly->y, n, Qb + cb),
                                          rr_plane(f, f->gdesc, b, Pb, cb), &ly->ty, &ly->tx, R,
                                          &o, f->wsoft[s * L + l],
                                          rr_plane(f, f->dbig, n, Pb, cb),
                                          native_plane(f, ly, f->dy, n, Qb + cb), row, row2, vt);
                }
        V16_STREAM_FENCE();
    }
    pass_done(f, DHF_FN_PASS_B_OUT_GRADS, &t);
    return 0;
}

/* dc3 (dbig) [N, P, R, R] -> dr2 (dq1) [N, Q, R, R], dW3 [P, Q] */
static int conv3_backward(dhf_fastnet *f, fn_layer *ly, const dhf_engine_layer *bn)
{
    const float *w3 = pdata(bn->conv3_w);
    if ((f->own3 ? own_bwd_data(f, f->own3, f->dbig, w3, f->dq1)
                 : conv_run(f, CONV_BWD_DATA, f->conv3, f->dbig, w3, f->dq1)) ||
        conv_run(f, CONV_BWD_WEIGHTS, f->conv3, ly->r2, f->dbig, f->dw))
        return dhf_err_wrap("conv3 backward");
    return write_grad(bn->conv3_w, f->dw, (size_t)f->P * f->Q, "conv3.weight");
}

/* dr2 (dq1) -> dc2, in place [N, Q, R, R]; GN2's parameter gradients */
static int gn2_relu_backward(dhf_fastnet *f, fn_layer *ly, const dhf_engine_layer *bn)
{
    const int N = f->N, Q = f->Q, G = f->G, Qb = Q / BLK;
    const size_t RR = (size_t)f->R * f->R;
    float *const *k = f->k;
    double t = PROF_NOW();
    const float *g2 = pdata(bn->gn2_w), *be2 = pdata(bn->gn2_b);
    gn_coeffs(N, Q, G, ly->mu2, ly->rs2, g2, be2, k[K_A3], k[K_B3], k[K_X3A], k[K_X3B]);
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int cb = 0; cb < Qb; cb++) {
            const size_t nc = chan(n, Q, cb), off = rr_off(f, n, Qb, cb);
            gn2_relu_backward_sums_plane(f->dq1 + off, ly->r2 + off, ly->c2 + off, RR,
                                         k[K_X3A] + nc, k[K_X3B] + nc, f->sa + nc, f->sb + nc);
        }
    if (gn_backward(f, bn->gn2_w, bn->gn2_b, "conv2.norm", Q, ly->rs2, f->sa, f->sb, k[K_AL],
                    k[K_KX], k[K_K0]))
        return -1;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int cb = 0; cb < Qb; cb++) {
            const size_t nc = chan(n, Q, cb), off = rr_off(f, n, Qb, cb);
            gn2_relu_backward_plane(f->dq1 + off, ly->c2 + off, RR, k[K_X3A] + nc,
                                    k[K_X3B] + nc, k[K_AL] + nc, k[K_KX] + nc, k[K_K0] + nc);
        }
    pass_done(f, DHF_FN_PASS_B_GN2, &t);
    return 0;
}

/* dc2 (dq1) -> dr1 (dq2) [N, Q, R, R], dW2 [Q, Q, 3, 3] */
static int conv2_backward(dhf_fastnet *f, fn_layer *ly, const dhf_engine_layer *bn)
{
    if (conv_run(f, CONV_BWD_DATA, f->conv2, f->dq1, pdata(bn->conv2_w), f->dq2) ||
        conv_run(f, CONV_BWD_WEIGHTS, f->conv2, ly->r1, f->dq1, f->dw))
        return dhf_err_wrap("conv2 backward");
    return write_grad(bn->conv2_w, f->dw, (size_t)f->Q * f->Q * 9, "conv2.weight");
}

/* dr1 (dq2) [N, Q, R, R] -> dy1 = U^T (GN1 backward) [N, Q, h, w] into dy's conv1
 * blocks, from sums over the recomputed U y1; GN1's parameter gradients */
static int gn1_relu_backward(dhf_fastnet *f, fn_layer *ly, const dhf_engine_layer *bn)
{
    const int N = f->N, Q = f->Q, R = f->R, G = f->G, Qb = Q / BLK;
    float *const *k = f->k;
    double t = PROF_NOW();
    const float *g1 = pdata(bn->gn1_w), *be1 = pdata(bn->gn1_b);
    gn_coeffs(N, Q, G, ly->mu1, ly->rs1, g1, be1, k[K_A3], k[K_B3], k[K_X3A], k[K_X3B]);
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int cb = 0; cb < Qb; cb++) {
            float *row = my_scratch(f), *vt = row + 2 * (size_t)R * BLK;
            const size_t nc = chan(n, Q, cb), off = rr_off(f, n, Qb, cb);
            gn1_relu_backward_sums_plane(native_plane(f, ly, ly->y, n, cb), &ly->ty, &ly->tx, R,
                                         f->dq2 + off, ly->r1 + off, k[K_X3A] + nc,
                                         k[K_X3B] + nc, f->sa + nc, f->sb + nc, row, vt);
        }
    if (gn_backward(f, bn->gn1_w, bn->gn1_b, "conv1.norm", Q, ly->rs1, f->sa, f->sb, k[K_AL],
                    k[K_KX], k[K_K0]))
        return -1;
#pragma omp parallel
    {
#pragma omp for collapse(2) schedule(static) nowait
        for (int n = 0; n < N; n++)
            for (int cb = 0; cb < Qb; cb++) {
                float *row = my_scratch(f), *row2 = row + (size_t)R * BLK;
                float *vt = row2 + (size_t)R * BLK;
                const size_t nc = chan(n, Q, cb);
                const size_t off = rr_off(f, n, Qb, cb);
                gn1_relu_backward_plane(native_plane(f, ly, ly->y, n, cb), &ly->ty, &ly->tx, R,
                                        f->dq2 + off, k[K_X3A] + nc, k[K_X3B] + nc,
                                        k[K_AL] + nc, k[K_KX] + nc, k[K_K0] + nc,
                                        native_plane(f, ly, f->dy, n, cb), row, row2, vt);
            }
        V16_STREAM_FENCE();
    }
    pass_done(f, DHF_FN_PASS_B_GN1, &t);
    return 0;
}

/* dy [N, Q + P, h, w] -> dW1 [Q, C], dWs [P, C] (the features need no gradient) */
static int input_backward(dhf_fastnet *f, fn_layer *ly, const dhf_engine_layer *bn)
{
    const size_t Q = (size_t)f->Q, P = (size_t)f->P, C = (size_t)ly->C;
    if (conv_run(f, CONV_BWD_WEIGHTS, ly->conv_in, ly->xb, f->dy, f->dw_in))
        return dhf_err_wrap("conv1+shortcut backward");
    if (write_grad(bn->conv1_w, f->dw_in, Q * C, "conv1.weight") ||
        write_grad(bn->short_w, f->dw_in + Q * C, P * C, "shortcut.weight"))
        return -1;
    return 0;
}

/* Layer l's parameter gradients (and its share of dloss/dw) from gdesc. */
static int layer_backward(dhf_fastnet *f, const dhf_engine_net *net, int l)
{
    fn_layer *ly = &f->layer[l];
    const dhf_engine_layer *bn = &net->layer[l];
    if (output_backward(f, ly, bn, l) || conv3_backward(f, ly, bn) ||
        gn2_relu_backward(f, ly, bn) || conv2_backward(f, ly, bn) ||
        gn1_relu_backward(f, ly, bn) || input_backward(f, ly, bn))
        return -1;
    return 0;
}

int dhf_fastnet_backward(dhf_fastnet *f, const dhf_engine_net *net, const float *gdesc)
{
    if (!f->have_activations)
        return dhf_err_set("fastnet backward: no forward with activations kept before it");
    f->have_activations = false;
#ifdef DHF_PROFILE
    const double t0 = dhf_now();
    f->prof.backward_s = f->prof.conv_backward_data_s = f->prof.conv_backward_weights_s = 0;
    for (int i = DHF_FN_PASS_B_OUT_SUMS; i < DHF_FN_PASS_COUNT; i++)
        f->prof.pass_s[i] = 0;
#endif
    if (ensure_scratch(f))
        return -1;
    dhf_blk_pack(gdesc, f->B, f->P, f->R, f->R, f->gdesc);
    for (int l = 0; l < f->L; l++)
        if (layer_backward(f, net, l))
            return dhf_err_wrap("fastnet backward, layer %d", l);
    /* softmax backward: dm_i = w_i (g_i - sum_j w_j g_j) */
    const int n = f->S * f->L;
    double dot = 0;
    for (int i = 0; i < n; i++)
        dot += (double)f->wsoft[i] * f->dmix[i];
    float *gm = f->dw;
    for (int i = 0; i < n; i++)
        gm[i] = (float)((double)f->wsoft[i] * (f->dmix[i] - dot));
    int rc = write_grad(net->mixing_weights, gm, (size_t)n, "mixing_weights");
#ifdef DHF_PROFILE
    f->prof.backward_s = dhf_now() - t0;
#endif
    return rc;
}
