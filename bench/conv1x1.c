/* bench/conv1x1.c — the 1x1 convolutions of the oneDNN training step at SD-1.5 shapes
 * (N = 22: a pair of images x 11 timesteps), on dhf's AVX-512 kernels (conv1x1.h) and
 * on oneDNN's jit_1x1 (dnnl_conv.h), same blocked buffers, same libdnnl the rest of the
 * step uses: seconds per call (median), GFLOP/s, the ratio, and the fraction of the
 * machine's float32 FMA peak (measured here: 2 x 16-lane FMA chains per core, all cores).
 *
 *   conv1 + shortcut forward  C -> 480 at the layer's native size (4 shapes)
 *   conv3 forward             96 -> 384 at 64x64, with GroupNorm's sums (as the step
 *                             runs it; oneDNN's row has no sums: the step adds a pass)
 *   conv3 backward-data       384 -> 96 at 64x64
 *
 * usage: bench_conv1x1 [--reps N (5)] [--n N (22)] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench_util.h"
#include "fma_peak.h"
#include "core/error.h"
#include "engine/conv1x1.h"
#include "engine/dnnl_conv.h"

#define MAX_REPS 50

typedef struct {
    const char *what;
    int C, O, hw;        /* in, out channels; side of the square map */
    int op;              /* 0 forward, 1 forward with sums, 2 backward-data */
} shape;

static const shape shapes[] = {
    { "conv1+shortcut fwd  320->480 @64^2", 320, 480, 64, 0 },
    { "conv1+shortcut fwd  640->480 @32^2", 640, 480, 32, 0 },
    { "conv1+shortcut fwd 1280->480 @16^2", 1280, 480, 16, 0 },
    { "conv1+shortcut fwd 1280->480 @8^2", 1280, 480, 8, 0 },
    { "conv3 fwd + GN sums  96->384 @64^2", 96, 384, 64, 1 },
    { "conv3 bwd-data      384->96  @64^2", 96, 384, 64, 2 },
};

static float *filled(size_t n, unsigned seed)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p)
        return NULL;
    unsigned x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (float)(x >> 8) / 16777216.f - 0.5f;
    }
    return p;
}

int main(int argc, char **argv)
{
    int reps = 5, N = 22;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: bench_conv1x1 [--reps N (5)] [--n N (22)]\n");
            return 0;
        }
        if (i + 1 < argc && !strcmp(argv[i], "--reps"))
            reps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--n"))
            N = atoi(argv[++i]);
        else {
            fprintf(stderr, "bench_conv1x1: unknown option %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS || N < 1) {
        fprintf(stderr, "bench_conv1x1: --reps 1..%d, --n >= 1\n", MAX_REPS);
        return 2;
    }
    if (!dhf_c1x1_supported()) {
        printf("bench_conv1x1: this CPU has no AVX-512F: dhf's 1x1 kernels do not run here "
               "(the training step uses oneDNN's)\n");
        return 0;
    }
    const bool dnnl = dhf_dconv_available();
    const double peak = fma_peak_gflops();
    printf("bench/conv1x1: N=%d images, %d timed calls after 1 warm-up (median); float32 FMA "
           "peak measured here %.0f GFLOP/s\n", N, reps, peak);
    printf("%-36s %10s %8s %6s %10s %8s %6s %7s\n", "convolution", "ours_s", "GFLOP/s",
           "%peak", "oneDNN_s", "GFLOP/s", "%peak", "ratio");
    int rc = 0;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const shape *s = &shapes[k];
        const size_t px = (size_t)s->hw * s->hw;
        const size_t nin = (size_t)N * s->C * px, nout = (size_t)N * s->O * px;
        float *x = filled(nin, 1), *y = filled(nout, 2), *w = filled((size_t)s->O * s->C, 3);
        float *y2 = filled(s->op == 2 ? nin : nout, 4);
        double *sum = calloc((size_t)N * s->O, sizeof(double));
        double *sq = calloc((size_t)N * s->O, sizeof(double));
        dhf_c1x1 *own = NULL;
        dhf_dconv *dc = NULL;
        if (!x || !y || !w || !y2 || !sum || !sq ||
            dhf_c1x1_create(&own, N, s->C, s->O, s->hw, s->hw) ||
            (dnnl && dhf_dconv_create(&dc, N, s->C, s->O, s->hw, s->hw, 1, s->op == 2,
                                      DHF_DCONV_DIRECT))) {
            fprintf(stderr, "bench_conv1x1: %s: %s\n", s->what, dhf_err_msg());
            rc = 1;
        }
        double t_own[MAX_REPS], t_dnnl[MAX_REPS];
        for (int r = 0; rc == 0 && r <= reps; r++) {
            double t0 = dhf_now();
            int e = s->op == 2 ? dhf_c1x1_backward_data(own, y, w, x)
                               : dhf_c1x1_forward(own, x, w, y, s->op == 1 ? sum : NULL,
                                                  s->op == 1 ? sq : NULL);
            double t1 = dhf_now();
            if (dc)
                e |= s->op == 2 ? dhf_dconv_backward_data(dc, y, w, y2)
                                : dhf_dconv_forward(dc, x, w, y2);
            double t2 = dhf_now();
            if (e) {
                fprintf(stderr, "bench_conv1x1: %s: %s\n", s->what, dhf_err_msg());
                rc = 1;
            }
            if (r > 0) {
                t_own[r - 1] = t1 - t0;
                t_dnnl[r - 1] = t2 - t1;
            }
        }
        if (rc == 0) {
            /* the two agree (a guard on the figures, not a test: test_conv1x1 is that) */
            const float *a = s->op == 2 ? x : y;
            double dmax = 0, vmax = 0;
            for (size_t i = 0; dc && i < (s->op == 2 ? nin : nout); i += 97) {
                dmax = fmax(dmax, fabs((double)a[i] - y2[i]));
                vmax = fmax(vmax, fabs((double)y2[i]));
            }
            const double fl = 2.0 * N * (double)px * s->C * s->O;
            const double mo = bench_median(t_own, reps), md = dc ? bench_median(t_dnnl, reps) : 0;
            printf("%-36s %10.4f %8.0f %5.0f%% ", s->what, mo, fl / mo / 1e9,
                   peak > 0 ? 100 * fl / mo / 1e9 / peak : 0);
            if (dc)
                printf("%10.4f %8.0f %5.0f%% %6.2fx%s\n", md, fl / md / 1e9,
                       peak > 0 ? 100 * fl / md / 1e9 / peak : 0, md / mo,
                       dmax > 1e-4 * (1 + vmax) ? "  (outputs DIFFER)" : "");
            else
                printf("%10s\n", "(no oneDNN in this build)");
            if (dc && dmax > 1e-4 * (1 + vmax))
                rc = 1;
        }
        dhf_c1x1_free(own);
        dhf_dconv_free(dc);
        free(x);
        free(y);
        free(w);
        free(y2);
        free(sum);
        free(sq);
        if (rc)
            break;
    }
    return rc;
}
