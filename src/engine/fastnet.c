/* fastnet.c — the hand-written forward and backward of the fast order on the CPU
 * (fastnet.h): buffers made once, oneDNN convolutions, GroupNorm/ReLU/resize/mixing
 * fused into row passes parallelised over (sample, channel block) planes. */
#include "engine/fastnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/clock.h"
#include "core/error.h"
#include "engine/blk_ops.h"
#include "engine/blocked.h"
#include "engine/conv1x1.h"
#include "engine/simd16.h"

#define BLK DHF_BLK

typedef struct {
    int C, h, w;
    dhf_bilin1d ty, tx;
    dhf_dconv *conv_in;            /* shared with other layers of the same shape */
    bool owns_conv_in;
    dhf_c1x1 *own_in;              /* its forward on conv1x1.h (NULL: oneDNN); shared too */
    bool owns_own_in;
    bool owns_acts;                /* xb .. c3 below (inference: layer 0's, shared) */
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
    int maxw;
    bool training;                 /* activations per layer and backward buffers */
    fn_layer layer[DHF_AGG_MAX_LAYERS];
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
    float *scratch;                /* per thread: row, row2, vt */
    int scratch_threads;
    size_t scratch_per_thread;
    bool have_activations;
    dhf_fastnet_profile prof;      /* of the last forward and backward */
    char describe[320];
};

bool dhf_fastnet_available(void) { return dhf_dconv_available(); }

const char *const dhf_fastnet_pass_names[DHF_FN_PASS_COUNT] = {
    "pack", "gn1 stats", "r1", "gn2 stats", "r2", "gn3+gns stats", "output",
    "bwd output sums", "bwd output grads", "bwd gn2", "bwd gn1"};

/* the convolutions, timed into f->prof: forward (a = src, b = w, out = dst),
 * backward-data (a = ddst, b = w, out = dsrc), backward-weights (a = src, b = ddst,
 * out = dw) */
typedef enum { CONV_FWD, CONV_BWD_DATA, CONV_BWD_WEIGHTS } conv_op;

static void conv_timed(dhf_fastnet *f, conv_op op, double t0)
{
    const double dt = dhf_now() - t0;
    *(op == CONV_FWD        ? &f->prof.conv_forward_s
      : op == CONV_BWD_DATA ? &f->prof.conv_backward_data_s
                            : &f->prof.conv_backward_weights_s) += dt;
}

static int conv_run(dhf_fastnet *f, conv_op op, dhf_dconv *c, const float *a, const float *b,
                    float *out)
{
    double t = dhf_now();
    int rc = op == CONV_FWD        ? dhf_dconv_forward(c, a, b, out)
             : op == CONV_BWD_DATA ? dhf_dconv_backward_data(c, a, b, out)
                                   : dhf_dconv_backward_weights(c, a, b, out);
    conv_timed(f, op, t);
    return rc;
}

/* a 1x1 forward on conv1x1.h, timed alike (sum/sumsq: the outputs' sums, or NULL) */
static int own_forward(dhf_fastnet *f, dhf_c1x1 *c, const float *src, const float *w,
                       float *dst, double *sum, double *sumsq)
{
    double t = dhf_now();
    int rc = dhf_c1x1_forward(c, src, w, dst, sum, sumsq);
    conv_timed(f, CONV_FWD, t);
    return rc;
}

/* a 1x1 backward-data on conv1x1.h, timed alike */
static int own_bwd_data(dhf_fastnet *f, dhf_c1x1 *c, const float *ddst, const float *w,
                        float *dsrc)
{
    double t = dhf_now();
    int rc = dhf_c1x1_backward_data(c, ddst, w, dsrc);
    conv_timed(f, CONV_BWD_DATA, t);
    return rc;
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

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
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
    int t = max_threads();
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
    return f->scratch + f->scratch_per_thread * (size_t)thread_id();
}

bool dhf_fastnet_fits(const dhf_fastnet *f, const dhf_aggregator *a, const dhf_tensor *feats)
{
    const dhf_agg_config *c = &a->cfg;
    if (!f || f->L != c->num_layers || f->S != c->num_timesteps || f->P != c->proj_dim ||
        f->R != c->out_res || !feats[0] || f->B != dhf_size(feats[0], 0))
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
    for (int l = 0; l < DHF_AGG_MAX_LAYERS; l++) {
        fn_layer *ly = &f->layer[l];
        dhf_bilin1d_free(&ly->ty);
        dhf_bilin1d_free(&ly->tx);
        if (ly->owns_conv_in)
            dhf_dconv_free(ly->conv_in);
        if (ly->owns_own_in)
            dhf_c1x1_free(ly->own_in);
        if (ly->owns_acts) {
            free(ly->xb);
            free(ly->y);
            free(ly->r1);
            free(ly->c2);
            free(ly->r2);
            free(ly->c3);
        }
        free(ly->mu1);
    }
    dhf_dconv_free(f->conv2);
    dhf_dconv_free(f->conv3);
    dhf_c1x1_free(f->own3);
    free(f->desc);
    free(f->gdesc);
    free(f->dbig);
    free(f->dq1);
    free(f->dq2);
    free(f->dy);
    free(f->w_in);
    free(f->dw_in);
    free(f->dw);
    free(f->dgb);
    free(f->sa);
    free(f->sb);
    free(f->sc);
    free(f->sy);
    free(f->qy);
    free(f->k[0]);
    free(f->dmix_unit);
    free(f->dmix);
    free(f->wsoft);
    free(f->scratch);
    free(f);
}

const char *dhf_fastnet_describe(const dhf_fastnet *f) { return f ? f->describe : ""; }

int dhf_fastnet_create(dhf_fastnet **out, const dhf_aggregator *a, const dhf_tensor *feats,
                       bool training, dhf_dconv_algo conv_algo)
{
    *out = NULL;
    if (!dhf_dconv_available())
        return dhf_err_set("fastnet: dhf was built without oneDNN (libdnnl-dev)");
    const dhf_agg_config *c = &a->cfg;
    if (c->proj_dim % 128 != 0)
        return dhf_err_set("fastnet: projection_dim %d must be a multiple of 128", c->proj_dim);
    const bool own1x1 = c->conv1x1 == DHF_AGG_1X1_OWN ||
                        (c->conv1x1 == DHF_AGG_1X1_AUTO && dhf_c1x1_supported());
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
    f->G = DHF_BNECK_GN_GROUPS;
    f->B = (int)dhf_size(feats[0], 0);
    f->N = f->B * f->S;
    f->training = training;
    const size_t N = (size_t)f->N, P = (size_t)f->P, Q = (size_t)f->Q, RR = (size_t)f->R * f->R;
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
        size_t hw = (size_t)ly->h * ly->w;
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
        if (training || l == 0) {
            ly->owns_acts = true;
            ly->xb = xalloc(training ? dhf_blk_numel(f->N, ly->C, ly->h, ly->w) : max_xb,
                            sizeof(float));
            ly->y = xalloc(N * (Q + P) * (training ? hw : max_yhw), sizeof(float));
            ly->r1 = xalloc(N * Q * RR, sizeof(float));
            ly->c2 = xalloc(N * Q * RR, sizeof(float));
            ly->r2 = xalloc(N * Q * RR, sizeof(float));
            ly->c3 = xalloc(N * P * RR, sizeof(float));
        } else {
            /* inference: the layers run one after the other on layer 0's buffers */
            const fn_layer *l0 = &f->layer[0];
            ly->xb = l0->xb;
            ly->y = l0->y;
            ly->r1 = l0->r1;
            ly->c2 = l0->c2;
            ly->r2 = l0->r2;
            ly->c3 = l0->c3;
        }
        ly->mu1 = xalloc(N * (size_t)f->G * 8, sizeof(double));
        if (!ly->xb || !ly->y || !ly->r1 || !ly->c2 || !ly->r2 || !ly->c3 || !ly->mu1)
            goto oom;
        double *st = ly->mu1;
        ly->rs1 = st + N * f->G;
        ly->mu2 = st + 2 * N * f->G;
        ly->rs2 = st + 3 * N * f->G;
        ly->mu3 = st + 4 * N * f->G;
        ly->rs3 = st + 5 * N * f->G;
        ly->mus = st + 6 * N * f->G;
        ly->rss = st + 7 * N * f->G;
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
    f->desc = xalloc((size_t)f->B * P * RR, sizeof(float));
    f->w_in = xalloc((Q + P) * max_cin, sizeof(float));
    f->sa = xalloc(N * P, sizeof(double));
    f->sb = xalloc(N * P, sizeof(double));
    f->sc = xalloc(N * P, sizeof(double));
    f->sy = xalloc(N * (Q + P), sizeof(double));
    f->qy = xalloc(N * (Q + P), sizeof(double));
    f->k[0] = xalloc(N * P * K_COUNT, sizeof(float));
    f->wsoft = xalloc((size_t)f->S * f->L, sizeof(float));
    if (!f->desc || !f->w_in || !f->sa || !f->sb || !f->sc || !f->sy || !f->qy || !f->k[0] ||
        !f->wsoft)
        goto oom;
    if (training) {
        f->gdesc = xalloc((size_t)f->B * P * RR, sizeof(float));
        f->dbig = xalloc(N * P * RR, sizeof(float));
        f->dq1 = xalloc(N * Q * RR, sizeof(float));
        f->dq2 = xalloc(N * Q * RR, sizeof(float));
        f->dy = xalloc(N * (Q + P) * max_yhw, sizeof(float));
        f->dw_in = xalloc((Q + P) * max_cin, sizeof(float));
        f->dw = xalloc(Q * Q * 9 > P * Q ? Q * Q * 9 : P * Q, sizeof(float));
        f->dgb = xalloc(2 * P, sizeof(float));
        f->dmix_unit = xalloc((size_t)f->B * (P / BLK) * (size_t)f->S, sizeof(double));
        f->dmix = xalloc((size_t)f->S * f->L, sizeof(double));
        if (!f->gdesc || !f->dbig || !f->dq1 || !f->dq2 || !f->dy || !f->dw_in || !f->dw ||
            !f->dgb ||
            !f->dmix_unit || !f->dmix)
            goto oom;
    }
    for (int i = 1; i < K_COUNT; i++)
        f->k[i] = f->k[0] + (size_t)i * N * P;
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

/* ---- GroupNorm bookkeeping (per sample n, group g; per-channel arrays [N * C]) ---- */

/* mean and 1/sqrt(var + eps) of each (n, g) from per-channel sums over `count` pixels */
static void gn_stats(int N, int C, int G, double count, const double *s, const double *q,
                     double *mu, double *rs)
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
            rs[n * G + g] = 1.0 / sqrt(var + DHF_BNECK_GN_EPS);
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

/* GroupNorm gn_w of bn (weight; bias at gn_w + 1) over C channels from the per-channel
 * sums in f->sa, f->sb: mu, rs written, and the forward affine GN(x) = a x + b */
static void gn_fit(const dhf_fastnet *f, const dhf_bottleneck *bn, int gn_w, int C, double *mu,
                   double *rs, float *a, float *b)
{
    gn_stats(f->N, C, f->G, (double)f->R * f->R, f->sa, f->sb, mu, rs);
    gn_coeffs(f->N, C, f->G, mu, rs, pdata(bn->p[gn_w]), pdata(bn->p[gn_w + 1]), a, b, NULL,
              NULL);
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

/* Backward of GroupNorm gn_w (the bottleneck's "<conv>.norm.weight" index; bias at
 * gn_w + 1), y = gamma x^ + beta with x^ = (x - mu) r over each (sample, group) of R*R
 * pixels: from the per-channel sums sdy = sum dy and sdyx = sum dy x^ [N * C], the input
 * gradient's coefficients dx = al dy + kx x^ + k0 per (n, c), and the parameters'
 * gradients dgamma = sum_n sdyx, dbeta = sum_n sdy written to their .grad. */
static int gn_backward(dhf_fastnet *f, const dhf_bottleneck *bn, int gn_w, int C,
                       const double *rs, const double *sdy, const double *sdyx, float *al,
                       float *kx, float *k0)
{
    const int N = f->N, G = f->G, cpg = C / G;
    const float *gamma = pdata(bn->p[gn_w]);
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
    if (write_grad(bn->p[gn_w], dgamma, (size_t)C, dhf_bottleneck_param_names[gn_w]) ||
        write_grad(bn->p[gn_w + 1], dbeta, (size_t)C, dhf_bottleneck_param_names[gn_w + 1]))
        return -1;
    return 0;
}

/* per-channel sums of a stored [N, C, R, R] blocked tensor */
static void plane_sums(const dhf_fastnet *f, const float *t, int C, double *s, double *q)
{
    const int N = f->N, Cb = C / BLK;
    const int64_t RR = (int64_t)f->R * f->R;
    memset(s, 0, sizeof(double) * (size_t)N * C);
    memset(q, 0, sizeof(double) * (size_t)N * C);
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int cb = 0; cb < Cb; cb++)
            dhf_blk_sums(t + ((size_t)n * Cb + cb) * RR * BLK, RR, s + (size_t)n * C + cb * BLK,
                         q + (size_t)n * C + cb * BLK);
}

/* per-channel sums of resize_R(y block range [cb0, cb0 + Cb)) for every sample */
static void resized_sums(const dhf_fastnet *f, const fn_layer *ly, int cb0, int C, double *s,
                         double *q)
{
    const int N = f->N, Cb = C / BLK, Yb = (f->Q + f->P) / BLK, R = f->R;
    const size_t hw = (size_t)ly->h * ly->w;
    memset(s, 0, sizeof(double) * (size_t)N * C);
    memset(q, 0, sizeof(double) * (size_t)N * C);
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int cb = 0; cb < Cb; cb++) {
            float *row = my_scratch(f), *vt = row + 2 * (size_t)R * BLK;
            const float *plane = ly->y + ((size_t)n * Yb + cb0 + cb) * hw * BLK;
            for (int oy = 0; oy < R; oy++) {
                const float *r = dhf_blk_resize_row(plane, &ly->ty, &ly->tx, oy, row, vt);
                dhf_blk_sums(r, R, s + (size_t)n * C + cb * BLK, q + (size_t)n * C + cb * BLK);
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
DHF_HOT static void plane_resize_affine_relu(const float *restrict plane, const dhf_bilin1d *ty,
                                             const dhf_bilin1d *tx, int R, const float *restrict a,
                                             const float *restrict b, float *restrict out,
                                             float *restrict row, float *restrict vt)
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
DHF_HOT static void plane_affine_relu(const float *restrict src, size_t RR,
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
DHF_HOT static void plane_output(const float *restrict c3, const float *restrict ys,
                                 const dhf_bilin1d *ty, const dhf_bilin1d *tx, int R,
                                 const float *restrict a3, const float *restrict b3,
                                 const float *restrict as, const float *restrict bs, float ws,
                                 float *restrict d, float *restrict row, float *restrict vt)
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

static int forward_layer(dhf_fastnet *f, const dhf_aggregator *a, int l, const float *x)
{
    fn_layer *ly = &f->layer[l];
    const dhf_bottleneck *bn = &a->bneck[l];
    const int N = f->N, Q = f->Q, P = f->P, R = f->R, S = f->S, L = f->L;
    const int Qb = Q / BLK, Pb = P / BLK, Yb = Qb + Pb;
    const size_t RR = (size_t)R * R, hw = (size_t)ly->h * ly->w, C = (size_t)ly->C;
    float *const *k = f->k;

    double t = dhf_now();
    dhf_blk_pack(x, N, ly->C, ly->h, ly->w, ly->xb);
    pass_done(f, DHF_FN_PASS_PACK, &t);
    memcpy(f->w_in, pdata(bn->p[DHF_BN_CONV1_W]), sizeof(float) * Q * C);
    memcpy(f->w_in + Q * C, pdata(bn->p[DHF_BN_SHORT_W]), sizeof(float) * P * C);
    /* at native resolution R (U = 1) the own kernels sum y for GN1 and GNs as they go */
    const bool y_sums = ly->own_in && ly->ty.identity && ly->tx.identity;
    if (ly->own_in ? own_forward(f, ly->own_in, ly->xb, f->w_in, ly->y, y_sums ? f->sy : NULL,
                                 y_sums ? f->qy : NULL)
                   : conv_run(f, CONV_FWD, ly->conv_in, ly->xb, f->w_in, ly->y))
        return dhf_err_wrap("conv1+shortcut");

    /* r1 = relu(GN1(U y1)) */
    t = dhf_now();
    if (y_sums)
        take_sums(f, 0, Q, f->sa, f->sb);
    else
        resized_sums(f, ly, 0, Q, f->sa, f->sb);
    gn_fit(f, bn, DHF_BN_CONV1_GN_W, Q, ly->mu1, ly->rs1, k[K_A3], k[K_B3]);
    pass_done(f, DHF_FN_PASS_GN1_STATS, &t);
    /* r1 and r2 are written with streaming stores (read back by the next convolution,
     * long after they left the caches): no read of the destination before the write */
#pragma omp parallel
    {
#pragma omp for collapse(2) schedule(static) nowait
        for (int n = 0; n < N; n++)
            for (int cb = 0; cb < Qb; cb++) {
                float *row = my_scratch(f), *vt = row + 2 * (size_t)R * BLK;
                const size_t nc = (size_t)n * Q + cb * BLK;
                plane_resize_affine_relu(ly->y + ((size_t)n * Yb + cb) * hw * BLK, &ly->ty,
                                         &ly->tx, R, k[K_A3] + nc, k[K_B3] + nc,
                                         ly->r1 + ((size_t)n * Qb + cb) * RR * BLK, row, vt);
            }
        V16_STREAM_FENCE();
    }
    pass_done(f, DHF_FN_PASS_R1, &t);

    /* r2 = relu(GN2(conv2(r1))) */
    if (conv_run(f, CONV_FWD, f->conv2, ly->r1, pdata(bn->p[DHF_BN_CONV2_W]), ly->c2))
        return dhf_err_wrap("conv2");
    t = dhf_now();
    plane_sums(f, ly->c2, Q, f->sa, f->sb);
    gn_fit(f, bn, DHF_BN_CONV2_GN_W, Q, ly->mu2, ly->rs2, k[K_A3], k[K_B3]);
    pass_done(f, DHF_FN_PASS_GN2_STATS, &t);
#pragma omp parallel
    {
#pragma omp for collapse(2) schedule(static) nowait
        for (int n = 0; n < N; n++)
            for (int cb = 0; cb < Qb; cb++) {
                const size_t nc = (size_t)n * Q + cb * BLK;
                const size_t off = ((size_t)n * Qb + cb) * RR * BLK;
                plane_affine_relu(ly->c2 + off, RR, k[K_A3] + nc, k[K_B3] + nc, ly->r2 + off);
            }
        V16_STREAM_FENCE();
    }
    pass_done(f, DHF_FN_PASS_R2, &t);

    /* c3 = conv3(r2); statistics of c3 (with it on the own kernels) and of U ys */
    const float *w3 = pdata(bn->p[DHF_BN_CONV3_W]);
    if (f->own3 ? own_forward(f, f->own3, ly->r2, w3, ly->c3, f->sa, f->sb)
                : conv_run(f, CONV_FWD, f->conv3, ly->r2, w3, ly->c3))
        return dhf_err_wrap("conv3");
    t = dhf_now();
    if (!f->own3)
        plane_sums(f, ly->c3, P, f->sa, f->sb);
    gn_fit(f, bn, DHF_BN_CONV3_GN_W, P, ly->mu3, ly->rs3, k[K_A3], k[K_B3]);
    if (y_sums)
        take_sums(f, Q, P, f->sa, f->sb);
    else
        resized_sums(f, ly, Qb, P, f->sa, f->sb);
    gn_fit(f, bn, DHF_BN_SHORT_GN_W, P, ly->mus, ly->rss, k[K_AS], k[K_BS]);
    pass_done(f, DHF_FN_PASS_GN3_STATS, &t);

    /* desc[b] += w[s*L + l] * relu(GN3(c3) + GNs(U ys)); a thread owns a (b, cb) plane */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < f->B; b++)
        for (int cb = 0; cb < Pb; cb++) {
            float *row = my_scratch(f), *vt = row + 2 * (size_t)R * BLK;
            for (int s = 0; s < S; s++) {
                const int n = b * S + s;
                const size_t nc = (size_t)n * P + cb * BLK;
                plane_output(ly->c3 + ((size_t)n * Pb + cb) * RR * BLK,
                             ly->y + ((size_t)n * Yb + Qb + cb) * hw * BLK, &ly->ty, &ly->tx, R,
                             k[K_A3] + nc, k[K_B3] + nc, k[K_AS] + nc, k[K_BS] + nc,
                             f->wsoft[s * L + l],
                             f->desc + ((size_t)b * Pb + cb) * RR * BLK, row, vt);
            }
        }
    pass_done(f, DHF_FN_PASS_OUTPUT, &t);
    return 0;
}

static int softmax_weights(dhf_fastnet *f, const dhf_aggregator *a)
{
    const float *m = pdata(a->mixing_weights);
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

int dhf_fastnet_forward(dhf_fastnet *f, const dhf_aggregator *a, const dhf_tensor *feats,
                        bool for_backward, float *desc)
{
    f->have_activations = false;
    const double t0 = dhf_now();
    f->prof.forward_s = f->prof.conv_forward_s = 0;
    for (int i = 0; i < DHF_FN_PASS_B_OUT_SUMS; i++)
        f->prof.pass_s[i] = 0;
    if (for_backward && !f->training)
        return dhf_err_set("fastnet: made for inference, it keeps no activations for a backward");
    if (!dhf_fastnet_fits(f, a, feats))
        return dhf_err_set("fastnet: the features do not have the shapes it was made for");
    for (int i = 0; i < a->num_params; i++)
        if (!pdata(a->params[i]) || dhf_get_dtype(a->params[i]) != DHF_F32)
            return dhf_err_set("fastnet: parameter %s: expected a contiguous float32 CPU "
                               "tensor", a->names[i]);
    if (ensure_scratch(f) || softmax_weights(f, a))
        return -1;
    const size_t RR = (size_t)f->R * f->R;
    memset(f->desc, 0, sizeof(float) * (size_t)f->B * f->P * RR);
    for (int l = 0; l < f->L; l++) {
        const float *x = pdata(feats[l]);
        if (!x)
            return dhf_err_set("fastnet: features of layer %d are not contiguous on the CPU", l);
        if (forward_layer(f, a, l, x))
            return dhf_err_wrap("fastnet forward, layer %d", l);
    }
    dhf_blk_unpack(f->desc, f->B, f->P, f->R, f->R, desc);
    f->have_activations = for_backward;
    f->prof.forward_s = dhf_now() - t0;
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
DHF_HOT static void plane_masked_sums(float *restrict g, const float *restrict m,
                                      const float *restrict v, size_t RR,
                                      const float *restrict xa, const float *restrict xb,
                                      double *restrict sdy, double *restrict sdyx)
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
DHF_HOT static void plane_gn_grad(float *restrict d, const float *restrict v, size_t RR,
                                  const float *restrict xa, const float *restrict xb,
                                  const float *restrict al, const float *restrict kx,
                                  const float *restrict k0)
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
DHF_HOT static double plane_out_sums(const float *restrict c3, const float *restrict ys,
                                     const float *restrict gd, const dhf_bilin1d *ty,
                                     const dhf_bilin1d *tx, int R, const out_coeffs *o, float ws,
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
DHF_HOT static void plane_out_grads(const float *restrict c3, const float *restrict ys,
                                    const float *restrict gd, const dhf_bilin1d *ty,
                                    const dhf_bilin1d *tx, int R, const out_coeffs *o, float ws,
                                    float *restrict dc3, float *restrict dys, float *restrict row,
                                    float *restrict row2, float *restrict vt)
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
DHF_HOT static void plane_gn1_sums(const float *restrict plane, const dhf_bilin1d *ty,
                                   const dhf_bilin1d *tx, int R, float *restrict d,
                                   const float *restrict m, const float *restrict xa,
                                   const float *restrict xb, double *restrict sdy,
                                   double *restrict sdyx, float *restrict row, float *restrict vt)
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
DHF_HOT static void plane_gn1_grad(const float *restrict plane, const dhf_bilin1d *ty,
                                   const dhf_bilin1d *tx, int R, const float *restrict d,
                                   const float *restrict xa, const float *restrict xb,
                                   const float *restrict al, const float *restrict kx,
                                   const float *restrict k0, float *restrict dplane,
                                   float *restrict row, float *restrict row2, float *restrict vt)
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

static int backward_layer(dhf_fastnet *f, dhf_aggregator *a, int l)
{
    fn_layer *ly = &f->layer[l];
    const dhf_bottleneck *bn = &a->bneck[l];
    const int N = f->N, Q = f->Q, P = f->P, R = f->R, G = f->G, S = f->S, L = f->L;
    const int Qb = Q / BLK, Pb = P / BLK, Yb = Qb + Pb;
    const size_t RR = (size_t)R * R, hw = (size_t)ly->h * ly->w, C = (size_t)ly->C;
    float *const *k = f->k;
    const float *g3 = pdata(bn->p[DHF_BN_CONV3_GN_W]), *be3 = pdata(bn->p[DHF_BN_CONV3_GN_B]);
    const float *gs = pdata(bn->p[DHF_BN_SHORT_GN_W]), *bes = pdata(bn->p[DHF_BN_SHORT_GN_B]);

    /* normalised c3 and U ys per (n, c): x^ = xa x + xb */
    gn_coeffs(N, P, G, ly->mu3, ly->rs3, g3, be3, k[K_A3], k[K_B3], k[K_X3A], k[K_X3B]);
    gn_coeffs(N, P, G, ly->mus, ly->rss, gs, bes, k[K_AS], k[K_BS], k[K_XSA], k[K_XSB]);

    /* 1. the output ReLU: sums for GN3 / GNs and dloss/dw[s*L + l] */
    double t = dhf_now();
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < f->B; b++)
        for (int cb = 0; cb < Pb; cb++) {
            float *row = my_scratch(f), *vt = row + 2 * (size_t)R * BLK;
            for (int s = 0; s < S; s++) {
                const int n = b * S + s;
                const size_t nc = (size_t)n * P + cb * BLK;
                out_coeffs o = out_coeffs_at(k, nc);
                f->dmix_unit[((size_t)b * Pb + cb) * S + s] = plane_out_sums(
                    ly->c3 + ((size_t)n * Pb + cb) * RR * BLK,
                    ly->y + ((size_t)n * Yb + Qb + cb) * hw * BLK,
                    f->gdesc + ((size_t)b * Pb + cb) * RR * BLK, &ly->ty, &ly->tx, R, &o,
                    f->wsoft[s * L + l], f->sa + nc, f->sb + nc, f->sc + nc, row, vt);
            }
        }
    for (int s = 0; s < S; s++) {
        double t = 0;
        for (int u = 0; u < f->B * Pb; u++)
            t += f->dmix_unit[(size_t)u * S + s];
        f->dmix[s * L + l] = t;
    }
    if (gn_backward(f, bn, DHF_BN_CONV3_GN_W, P, ly->rs3, f->sa, f->sb, k[K_AL], k[K_KX],
                    k[K_K0]) ||
        gn_backward(f, bn, DHF_BN_SHORT_GN_W, P, ly->rss, f->sa, f->sc, k[K_ALS], k[K_KXS],
                    k[K_K0S]))
        return -1;
    pass_done(f, DHF_FN_PASS_B_OUT_SUMS, &t);

    /* 2. dc3 (into dbig) and dys (native, into dy's shortcut blocks); at native
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
                out_coeffs o = out_coeffs_at(k, (size_t)n * P + cb * BLK);
                plane_out_grads(ly->c3 + ((size_t)n * Pb + cb) * RR * BLK,
                                ly->y + ((size_t)n * Yb + Qb + cb) * hw * BLK,
                                f->gdesc + ((size_t)b * Pb + cb) * RR * BLK, &ly->ty, &ly->tx,
                                R, &o, f->wsoft[s * L + l],
                                f->dbig + ((size_t)n * Pb + cb) * RR * BLK,
                                f->dy + ((size_t)n * Yb + Qb + cb) * hw * BLK, row, row2, vt);
            }
    V16_STREAM_FENCE();
    }
    pass_done(f, DHF_FN_PASS_B_OUT_GRADS, &t);

    /* 3. conv3 backward: dr2 -> dq1, dW3 */
    const float *w3 = pdata(bn->p[DHF_BN_CONV3_W]);
    if ((f->own3 ? own_bwd_data(f, f->own3, f->dbig, w3, f->dq1)
                 : conv_run(f, CONV_BWD_DATA, f->conv3, f->dbig, w3, f->dq1)) ||
        conv_run(f, CONV_BWD_WEIGHTS, f->conv3, ly->r2, f->dbig, f->dw))
        return dhf_err_wrap("conv3 backward");
    if (write_grad(bn->p[DHF_BN_CONV3_W], f->dw, (size_t)P * Q, "conv3.weight"))
        return -1;

    /* 4. through relu(GN2): dc2 in place in dq1 */
    t = dhf_now();
    const float *g2 = pdata(bn->p[DHF_BN_CONV2_GN_W]), *be2 = pdata(bn->p[DHF_BN_CONV2_GN_B]);
    gn_coeffs(N, Q, G, ly->mu2, ly->rs2, g2, be2, k[K_A3], k[K_B3], k[K_X3A], k[K_X3B]);
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int cb = 0; cb < Qb; cb++) {
            const size_t nc = (size_t)n * Q + cb * BLK, off = ((size_t)n * Qb + cb) * RR * BLK;
            plane_masked_sums(f->dq1 + off, ly->r2 + off, ly->c2 + off, RR, k[K_X3A] + nc,
                              k[K_X3B] + nc, f->sa + nc, f->sb + nc);
        }
    if (gn_backward(f, bn, DHF_BN_CONV2_GN_W, Q, ly->rs2, f->sa, f->sb, k[K_AL], k[K_KX],
                    k[K_K0]))
        return -1;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int cb = 0; cb < Qb; cb++) {
            const size_t nc = (size_t)n * Q + cb * BLK, off = ((size_t)n * Qb + cb) * RR * BLK;
            plane_gn_grad(f->dq1 + off, ly->c2 + off, RR, k[K_X3A] + nc, k[K_X3B] + nc,
                          k[K_AL] + nc, k[K_KX] + nc, k[K_K0] + nc);
        }
    pass_done(f, DHF_FN_PASS_B_GN2, &t);

    /* 5. conv2 backward: dr1 -> dq2, dW2 */
    if (conv_run(f, CONV_BWD_DATA, f->conv2, f->dq1, pdata(bn->p[DHF_BN_CONV2_W]), f->dq2) ||
        conv_run(f, CONV_BWD_WEIGHTS, f->conv2, ly->r1, f->dq1, f->dw))
        return dhf_err_wrap("conv2 backward");
    if (write_grad(bn->p[DHF_BN_CONV2_W], f->dw, (size_t)Q * Q * 9, "conv2.weight"))
        return -1;

    /* 6. through relu(GN1(U y1)): sums over the recomputed U y1, then dy1 = U^T du1 */
    t = dhf_now();
    const float *g1 = pdata(bn->p[DHF_BN_CONV1_GN_W]), *be1 = pdata(bn->p[DHF_BN_CONV1_GN_B]);
    gn_coeffs(N, Q, G, ly->mu1, ly->rs1, g1, be1, k[K_A3], k[K_B3], k[K_X3A], k[K_X3B]);
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int cb = 0; cb < Qb; cb++) {
            float *row = my_scratch(f), *vt = row + 2 * (size_t)R * BLK;
            const size_t nc = (size_t)n * Q + cb * BLK, off = ((size_t)n * Qb + cb) * RR * BLK;
            plane_gn1_sums(ly->y + ((size_t)n * Yb + cb) * hw * BLK, &ly->ty, &ly->tx, R,
                           f->dq2 + off, ly->r1 + off, k[K_X3A] + nc, k[K_X3B] + nc,
                           f->sa + nc, f->sb + nc, row, vt);
        }
    if (gn_backward(f, bn, DHF_BN_CONV1_GN_W, Q, ly->rs1, f->sa, f->sb, k[K_AL], k[K_KX],
                    k[K_K0]))
        return -1;
#pragma omp parallel
    {
#pragma omp for collapse(2) schedule(static) nowait
        for (int n = 0; n < N; n++)
            for (int cb = 0; cb < Qb; cb++) {
                float *row = my_scratch(f), *row2 = row + (size_t)R * BLK;
                float *vt = row2 + (size_t)R * BLK;
                const size_t nc = (size_t)n * Q + cb * BLK;
                const size_t off = ((size_t)n * Qb + cb) * RR * BLK;
                plane_gn1_grad(ly->y + ((size_t)n * Yb + cb) * hw * BLK, &ly->ty, &ly->tx, R,
                               f->dq2 + off, k[K_X3A] + nc, k[K_X3B] + nc, k[K_AL] + nc,
                               k[K_KX] + nc, k[K_K0] + nc,
                               f->dy + ((size_t)n * Yb + cb) * hw * BLK, row, row2, vt);
            }
        V16_STREAM_FENCE();
    }
    pass_done(f, DHF_FN_PASS_B_GN1, &t);

    /* 7. conv1 and shortcut weights from dy and the input */
    if (conv_run(f, CONV_BWD_WEIGHTS, ly->conv_in, ly->xb, f->dy, f->dw_in))
        return dhf_err_wrap("conv1+shortcut backward");
    if (write_grad(bn->p[DHF_BN_CONV1_W], f->dw_in, (size_t)Q * C, "conv1.weight") ||
        write_grad(bn->p[DHF_BN_SHORT_W], f->dw_in + (size_t)Q * C, (size_t)P * C,
                   "shortcut.weight"))
        return -1;
    return 0;
}

int dhf_fastnet_backward(dhf_fastnet *f, dhf_aggregator *a, const float *gdesc)
{
    if (!f->have_activations)
        return dhf_err_set("fastnet backward: no forward with activations kept before it");
    f->have_activations = false;
    const double t0 = dhf_now();
    f->prof.backward_s = f->prof.conv_backward_data_s = f->prof.conv_backward_weights_s = 0;
    for (int i = DHF_FN_PASS_B_OUT_SUMS; i < DHF_FN_PASS_COUNT; i++)
        f->prof.pass_s[i] = 0;
    if (ensure_scratch(f))
        return -1;
    dhf_blk_pack(gdesc, f->B, f->P, f->R, f->R, f->gdesc);
    for (int l = 0; l < f->L; l++)
        if (backward_layer(f, a, l))
            return dhf_err_wrap("fastnet backward, layer %d", l);
    /* softmax backward: dm_i = w_i (g_i - sum_j w_j g_j) */
    const int n = f->S * f->L;
    double dot = 0;
    for (int i = 0; i < n; i++)
        dot += (double)f->wsoft[i] * f->dmix[i];
    float *gm = f->dw;
    for (int i = 0; i < n; i++)
        gm[i] = (float)((double)f->wsoft[i] * (f->dmix[i] - dot));
    int rc = write_grad(a->mixing_weights, gm, (size_t)n, "mixing_weights");
    f->prof.backward_s = dhf_now() - t0;
    return rc;
}
