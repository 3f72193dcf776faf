/* bench/train.c — time one training step of the aggregation network (forward of both
 * images, CLIP loss, backward, AdamW) at the real SD-1.5 shapes, in the paper's
 * (straightforward) order and in the fast order, on the same libtorch.
 *
 *   L = 12 layers: 1280 ch x3 @ 8x8, 1280 x3 @ 16x16, 640 x3 @ 32x32, 320 x3 @ 64x64;
 *   S timesteps (11 or 1), P = 384, R = 64, a pair of images (B = 2), K = 20 keypoints,
 *   random features (seeded).
 *
 * Rows (each in its own child process, so its peak RSS is its own):
 *  - straightforward/glibc: the paper's order through libtorch ops and autograd, on
 *    glibc's malloc as configured: the straightforward way, as a plain program runs;
 *  - straightforward: the same on the allocator of --malloc;
 *  - fast (libtorch): the fast order through libtorch autograd;
 *  - fast (oneDNN): the fast order's hand-written step (fastnet.h) as dhf train runs it.
 * Prints median / min / first-step seconds, the phases (forward+loss, backward,
 * AdamW), user and system CPU seconds and minor page faults per step, the analytic
 * FLOP count, achieved GFLOP/s, peak RSS, where the oneDNN step's time goes, and the
 * ratios straightforward / fast.
 *
 * FLOPs = 2 x multiply-adds of the convolutions and of the loss's similarity products,
 * forward and backward, counted exactly from the shapes (direct convolution: Winograd
 * does fewer multiplications for the same count). The backward needs weight gradients
 * everywhere but input gradients only below conv2/conv3 (the features are inputs,
 * conv1/shortcut get no input gradient). Elementwise work (GroupNorm, ReLU, bilinear
 * resize, the S*L mixing scalings, softmax) is not counted (< 2%).
 *
 * Runtime environment (read by the libraries only at start-up, so the bench sets it and
 * re-executes itself once, unless the variable is already set; the header prints what
 * ran):
 *  - OMP_WAIT_POLICY is left alone: libgomp's default (spin briefly at a barrier, then
 *    sleep) is what `dhf train` runs with, and every row runs with the same. Measured
 *    here with PASSIVE (sleep at once): the oneDNN step 2.45-2.54 s instead of
 *    2.28-2.35 s (hundreds of parallel regions a step, each waking the other thread),
 *    AdamW 0.025 s instead of 0.007 s;
 *  - OPENBLAS_CORETYPE=SkylakeX on CPUs with AVX-512: OpenBLAS 0.3.21 does not know
 *    this CPU (AMD family 26) and falls back to its AVX2 (Haswell) kernels; the
 *    matrix products that do not go through oneDNN run ~1.7x faster with AVX-512.
 *
 * usage: bench_train [--steps N] [--warmup N] [--S N] [--threads N]
 *                    [--order fast|straightforward|both] [--malloc cache|tuned|default]
 *                    [--kernels libtorch|onednn|both] [--conv-algo auto|direct|winograd]
 *                    [--conv1x1 auto|own|onednn] [--recompute N] [--device cpu|cuda]
 * --malloc: cache = the shim's caching CPU allocator (what dhf train uses; the
 * default), tuned = glibc with mallopt (no mmap, no trim; memtune.h), default =
 * glibc as configured. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "core/error.h"
#include "shim/torch_shim.h"
#include "train/aggregator.h"
#include "engine/engine.h"
#include "engine/profile.h"
#include "train/loss.h"
#include "memtune.h"
#include "train/optim.h"
#include "train/step.h"
#include "train/train_device.h"

#define L_SD 12
#define P_SD 384
#define R_SD 64
#define B_PAIR 2
#define K_KP 20
#define MAX_STEPS 1000

static const int sd_channels[L_SD] = { 1280, 1280, 1280, 1280, 1280, 1280,
                                       640, 640, 640, 320, 320, 320 };
static const int sd_hw[L_SD] = { 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64 };

typedef struct {
    int steps, warmup, S, threads;
    int orders;          /* bit 0 straightforward, bit 1 fast */
    int tuned_malloc;    /* 0 glibc default, 1 mallopt (memtune.h), 2 shim caching allocator */
    int recompute;       /* fast order: layers recomputed in the backward (step.h) */
    int kernels;         /* fast order: bit 0 libtorch autograd, bit 1 oneDNN (fastnet.h) */
    int conv_algo;       /* oneDNN 3x3: dhf_engine_conv_algo (0 auto, 1 winograd, 2 direct) */
    int conv1x1;         /* dhf_engine_conv1x1: 0 auto, 1 own, 2 onednn */
    dhf_device device;   /* --device: features, network and optimiser live there */
} options;

/* one row of the table: an order, for the fast order who runs it, and whether the
 * row always runs on glibc's malloc as a straightforward program does */
typedef struct {
    dhf_agg_order order;
    dhf_engine_kernels kernels;
    int glibc_malloc;
    const char *name;
} variant;

#define N_VARIANTS 4
static const variant variants[N_VARIANTS] = {
    { DHF_AGG_STRAIGHTFORWARD, DHF_ENGINE_KERNELS_LIBTORCH, 1, "straightforward/glibc" },
    { DHF_AGG_STRAIGHTFORWARD, DHF_ENGINE_KERNELS_LIBTORCH, 0, "straightforward" },
    { DHF_AGG_FAST, DHF_ENGINE_KERNELS_LIBTORCH, 0, "fast (libtorch)" },
    { DHF_AGG_FAST, DHF_ENGINE_KERNELS_ONEDNN, 0, "fast (oneDNN)" },
};

typedef struct {
    double median, min, first;           /* wall seconds per step */
    double fwd, bwd, opt;                /* medians of the phases */
    double user, sys;                    /* CPU seconds per timed step */
    double faults;                       /* minor page faults per timed step */
    int blas_threads;                    /* BLAS pool size set (0 = untouched) */
    double loss_first, loss_last;
#ifdef DHF_PROFILE
    dhf_fastnet_profile prof;            /* oneDNN step: medians of its parts */
#endif
    int ok;
    char err[512];
} result;

static double tv_s(struct timeval t) { return t.tv_sec + t.tv_usec * 1e-6; }

/* Current resident set size in GiB (/proc/self/statm), for the per-step trace. */
static double rss_gib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0 * 1024.0);
}

/* Exact FLOPs of one step (see the header comment). */
static double step_flops(dhf_agg_order order, int S)
{
    const double BS = (double)B_PAIR * S, RR = (double)R_SD * R_SD;
    const double q = P_SD / 4.0, p = P_SD;
    double f = 0;
    for (int l = 0; l < L_SD; l++) {
        double c = sd_channels[l];
        double pix = order == DHF_AGG_FAST ? (double)sd_hw[l] * sd_hw[l] : RR;
        double mac_in = BS * (q + p) * c * pix;              /* conv1 + shortcut */
        double mac_mid = BS * RR * (q * q * 9.0 + q * p);    /* conv2 + conv3 */
        f += 2.0 * (mac_in * 2.0            /* forward + weight gradient */
                    + mac_mid * 3.0);       /* forward + input and weight gradients */
    }
    /* loss: two [K, P] @ [P, R*R] products; backward: gradients of both operands */
    f += 2.0 * 3.0 * (2.0 * K_KP * p * RR);
    return f;
}

static int make_inputs(int S, dhf_tensor *feats, int64_t *src_idx, int64_t *trg_idx)
{
    for (int l = 0; l < L_SD; l++) {
        int64_t shape[5] = { B_PAIR, S, sd_channels[l], sd_hw[l], sd_hw[l] };
        if (dhf_randn(100 + (uint64_t)l, DHF_F32, shape, 5, &feats[l]) != DHF_OK)
            return dhf_err_set("random features: %s", dhf_last_error());
    }
    uint64_t x = 12345;
    for (int k = 0; k < K_KP; k++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        src_idx[k] = (int64_t)((x >> 33) % (R_SD * R_SD));
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        trg_idx[k] = (int64_t)((x >> 33) % (R_SD * R_SD));
    }
    return 0;
}

/* The child's work: build the network and time warmup + steps training steps. */
static int malloc_of(const options *o, const variant *v)
{
    return v->glibc_malloc ? 0 : o->tuned_malloc;
}

static void run_order(const options *o, const variant *v, result *r)
{
    const dhf_agg_order order = v->order;
    const int mal = malloc_of(o, v);
    memset(r, 0, sizeof *r);
    if (mal == 1 && dhf_memtune_keep_freed_memory())
        goto fail;
    if (mal == 2 && dhf_cpu_caching_allocator(true) != DHF_OK) {
        dhf_err_set("caching allocator: %s", dhf_last_error());
        goto fail;
    }
    /* as the CLI: torch's threads, and BLAS's own pool by the shim's default policy */
    if (dhf_set_num_threads(o->threads) != DHF_OK ||
        dhf_set_blas_threads(0, &r->blas_threads) != DHF_OK) {
        dhf_err_set("threads: %s", dhf_last_error());
        goto fail;
    }
    dhf_tensor feats[L_SD] = { 0 };
    int64_t si[K_KP], ti[K_KP];
    dhf_agg_config cfg = { .num_layers = L_SD, .num_timesteps = o->S, .proj_dim = P_SD,
                           .out_res = R_SD, .order = order,
                           .recompute_layers = order == DHF_AGG_FAST ? o->recompute : 0 };
    memcpy(cfg.channels, sd_channels, sizeof sd_channels);
    const dhf_engine_options eo = { .kernels = v->kernels,
                                    .conv_algo = (dhf_engine_conv_algo)o->conv_algo,
                                    .conv1x1 = (dhf_engine_conv1x1)o->conv1x1 };
    dhf_runner *run = NULL;
    if (dhf_runner_create(&run, &eo))
        goto fail;
    dhf_aggregator a;
    dhf_agg_adamw opt;
    dhf_adamw_hparams hp = dhf_adamw_defaults();
    hp.weight_decay = 0.0;
    if (make_inputs(o->S, feats, si, ti) || dhf_aggregator_init(&a, &cfg, 7) ||
        dhf_agg_adamw_init(&opt, &a, &hp))
        goto fail;
    const bool cuda = o->device.type == DHF_CUDA;
    if (cuda) {
        for (int l = 0; l < L_SD; l++) {
            dhf_tensor moved = NULL;
            if (dhf_to(feats[l], DHF_F32, o->device, &moved) != DHF_OK) {
                dhf_err_set("features to the device: %s", dhf_last_error());
                goto fail;
            }
            dhf_free(feats[l]);
            feats[l] = moved;
        }
        if (dhf_train_to_device(&a, &opt, o->device) != 0)
            goto fail;
    }

    int n = o->warmup + o->steps;
    double wall[MAX_STEPS], fwd[MAX_STEPS], bwd[MAX_STEPS], upd[MAX_STEPS];
#ifdef DHF_PROFILE
    static double pf[5 + DHF_FN_PASS_COUNT][MAX_STEPS];
#endif
    struct rusage ru0, ru1;
    for (int i = 0; i < n; i++) {
        if (i == o->warmup)
            getrusage(RUSAGE_SELF, &ru0);
        dhf_step_stats st;
        double t0 = dhf_now();
        if (dhf_pair_backward(&a, run, order, feats, si, ti, K_KP, &st))
            goto fail;
        if (cuda && dhf_cuda_synchronize() != DHF_OK) {
            dhf_err_set("cuda synchronize: %s", dhf_last_error());
            goto fail;
        }
        double t1 = t0 + st.seconds_forward;
        double rss_fwd = rss_gib();
        double loss = st.loss;
        double t2 = dhf_now();
        if (dhf_agg_adamw_step(&opt, &a))
            goto fail;
        if (cuda && dhf_cuda_synchronize() != DHF_OK) {
            dhf_err_set("cuda synchronize: %s", dhf_last_error());
            goto fail;
        }
        double t3 = dhf_now();
#ifdef DHF_PROFILE
        dhf_fastnet_profile fp;
        dhf_runner_get_profile(run, &fp);
        pf[0][i] = fp.forward_s;
        pf[1][i] = fp.conv_forward_s;
        pf[2][i] = fp.backward_s;
        pf[3][i] = fp.conv_backward_data_s;
        pf[4][i] = fp.conv_backward_weights_s;
        for (int j = 0; j < DHF_FN_PASS_COUNT; j++)
            pf[5 + j][i] = fp.pass_s[j];
#endif
        wall[i] = t3 - t0;
        fwd[i] = t1 - t0;
        bwd[i] = t2 - t1;
        upd[i] = t3 - t2;
        if (i == 0)
            r->loss_first = loss;
        r->loss_last = loss;
        fprintf(stderr, "  %s step %d/%d: %.2f s (fwd %.2f, bwd %.2f, adamw %.3f) loss %.4f, "
                "RSS after forward %.2f GiB, after step %.2f GiB\n", v->name,
                i + 1, n, wall[i], fwd[i], bwd[i], upd[i], loss, rss_fwd, rss_gib());
    }
    getrusage(RUSAGE_SELF, &ru1);
    r->first = wall[0];
    r->user = (tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime)) / o->steps;
    r->sys = (tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime)) / o->steps;
    r->faults = (double)(ru1.ru_minflt - ru0.ru_minflt) / o->steps;
    r->min = INFINITY;
    for (int i = o->warmup; i < n; i++)
        if (wall[i] < r->min)
            r->min = wall[i];
    r->median = bench_median(wall + o->warmup, o->steps);
    r->fwd = bench_median(fwd + o->warmup, o->steps);
    r->bwd = bench_median(bwd + o->warmup, o->steps);
    r->opt = bench_median(upd + o->warmup, o->steps);
#ifdef DHF_PROFILE
    r->prof.forward_s = bench_median(pf[0] + o->warmup, o->steps);
    r->prof.conv_forward_s = bench_median(pf[1] + o->warmup, o->steps);
    r->prof.backward_s = bench_median(pf[2] + o->warmup, o->steps);
    r->prof.conv_backward_data_s = bench_median(pf[3] + o->warmup, o->steps);
    r->prof.conv_backward_weights_s = bench_median(pf[4] + o->warmup, o->steps);
    for (int j = 0; j < DHF_FN_PASS_COUNT; j++)
        r->prof.pass_s[j] = bench_median(pf[5 + j] + o->warmup, o->steps);
#endif
    r->ok = 1;
    return;
fail:
    snprintf(r->err, sizeof r->err, "%s", dhf_err_msg());
}

/* Runs one order in a child process; the parent never touches libtorch, so forking
 * is safe, and the child's ru_maxrss is that order's peak RSS alone. */
static int run_child(const options *o, const variant *v, result *r, long long *peak_rss)
{
    int fd[2];
    if (pipe(fd) != 0)
        return dhf_err_set("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        return dhf_err_set("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fd[0]);
        result mine;
        run_order(o, v, &mine);
        ssize_t w = write(fd[1], &mine, sizeof mine);
        _exit(w == (ssize_t)sizeof mine ? 0 : 1);
    }
    close(fd[1]);
    ssize_t got = 0;
    while (got < (ssize_t)sizeof *r) {
        ssize_t k = read(fd[0], (char *)r + got, sizeof *r - (size_t)got);
        if (k <= 0)
            break;
        got += k;
    }
    close(fd[0]);
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0)
        return dhf_err_set("wait4: %s", strerror(errno));
    *peak_rss = (long long)ru.ru_maxrss * 1024;
    if (got != (ssize_t)sizeof *r)
        return dhf_err_set("%s: child ended without a result (status %d%s)", v->name, status,
                           WIFSIGNALED(status) ? ", killed by a signal: out of memory?" : "");
    if (!r->ok)
        return dhf_err_set("%s: %s", v->name, r->err);
    return 0;
}

static int usage(const char *msg)
{
    if (msg)
        fprintf(stderr, "bench_train: %s\n", msg);
    fprintf(stderr, "usage: bench_train [--steps N (4)] [--warmup N (2)] [--S N (11)] "
                    "[--threads N (0 = all cores)]\n"
                    "                   [--order fast|straightforward|both] "
                    "[--malloc cache|tuned|default]\n"
                    "                   [--kernels libtorch|onednn|both (both): who runs the "
                    "fast order]\n"
                    "                   [--conv-algo auto|direct|winograd (auto): oneDNN 3x3 "
                    "convolutions]\n"
                    "                   [--conv1x1 auto|own|onednn (auto): 1x1 convolutions of "
                    "the oneDNN step]\n"
                    "                   [--recompute N (0): fast order on libtorch, layers whose "
                    "graph is rebuilt in the backward]\n"
                    "                   [--device cpu|cuda[:N] (cpu): on CUDA the libtorch rows "
                    "only]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int reexec = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    if (!getenv("OPENBLAS_CORETYPE") && __builtin_cpu_supports("avx512f")) {
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
        reexec = 1;
    }
#endif
    if (reexec)
        execv("/proc/self/exe", argv);   /* on failure: go on with the inherited setup */
    options o = { .steps = 4, .warmup = 2, .S = 11, .threads = 0, .orders = 3,
                  .tuned_malloc = 2, .recompute = 0, .kernels = 3, .conv_algo = 0,
                  .conv1x1 = 0, .device = { DHF_CPU, 0 } };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return usage(NULL), 0;
        if (!v)
            return usage("missing value after an option");
        i++;
        if (!strcmp(a, "--steps"))
            o.steps = atoi(v);
        else if (!strcmp(a, "--warmup"))
            o.warmup = atoi(v);
        else if (!strcmp(a, "--S"))
            o.S = atoi(v);
        else if (!strcmp(a, "--threads"))
            o.threads = atoi(v);
        else if (!strcmp(a, "--recompute"))
            o.recompute = atoi(v);
        else if (!strcmp(a, "--device")) {
            if (dhf_train_parse_device(v, "--device", &o.device) != 0) {
                fprintf(stderr, "bench_train: %s\n", dhf_err_msg());
                return 2;
            }
        }
        else if (!strcmp(a, "--order"))
            o.orders = !strcmp(v, "fast") ? 2 : !strcmp(v, "straightforward") ? 1
                     : !strcmp(v, "both") ? 3 : 0;
        else if (!strcmp(a, "--kernels"))
            o.kernels = !strcmp(v, "libtorch") ? 1 : !strcmp(v, "onednn") ? 2
                      : !strcmp(v, "both") ? 3 : 0;
        else if (!strcmp(a, "--conv-algo"))
            o.conv_algo = dhf_config_choice("aggregation_conv_algorithm", v);
        else if (!strcmp(a, "--conv1x1")) {
            o.conv1x1 = dhf_config_choice("aggregation_conv1x1", v);
            if (o.conv1x1 < 0)
                return usage("--conv1x1: expected auto, own or onednn");
        } else if (!strcmp(a, "--malloc")) {
            o.tuned_malloc = !strcmp(v, "tuned") ? 1 : !strcmp(v, "default") ? 0
                           : !strcmp(v, "cache") ? 2 : -1;
            if (o.tuned_malloc < 0)
                return usage("--malloc: expected cache, tuned or default");
        } else
            return usage("unknown option");
    }
    if (o.steps < 1 || o.warmup < 0 || o.steps + o.warmup > MAX_STEPS || o.S < 1 ||
        o.threads < 0 || !o.orders || !o.kernels || o.conv_algo < 0 || o.recompute < 0)
        return usage("bad option value");
    if ((o.kernels & 2) && o.device.type == DHF_CUDA) {
        fprintf(stderr, "bench_train: on CUDA the fast order runs on libtorch only\n");
        o.kernels &= 1;
        if (!o.kernels)
            return 1;
    }
    if ((o.kernels & 2) && !dhf_engine_available()) {
        fprintf(stderr,
                "bench_train: built without oneDNN: the fast order runs on libtorch only\n");
        o.kernels &= 1;
        if (!o.kernels)
            return 1;
    }

    printf("bench/train: one training step (forward of source+target, CLIP loss, backward, "
           "AdamW)\n");
    printf("  SD-1.5 shapes: L=12 (1280x3@8^2, 1280x3@16^2, 640x3@32^2, 320x3@64^2), S=%d, "
           "P=%d, R=%d, K=%d, random features\n", o.S, P_SD, R_SD, K_KP);
    static const char *const malloc_name[3] = { "glibc default", "glibc tuned (no mmap, no trim)",
                                                "shim caching allocator" };
    printf("  libtorch %s, threads %d (0 = all cores), OMP_WAIT_POLICY=%s, OPENBLAS_CORETYPE=%s\n",
           dhf_torch_version(), o.threads,
           getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "unset (libgomp default)",
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "-");
    printf("  memory: %s (the row straightforward/glibc: glibc's malloc as a plain program)\n",
           malloc_name[o.tuned_malloc]);
    static const char *const algo_name[3] = { "auto", "winograd", "direct" };
    static const char *const c1_name[3] = { "auto", "own", "onednn" };
    printf("  %d warm-up + %d timed steps per row; fast (libtorch) recomputes %d layer(s) in the "
           "backward; oneDNN step: 3x3 %s, 1x1 %s\n", o.warmup, o.steps, o.recompute,
           algo_name[o.conv_algo], c1_name[o.conv1x1]);
    fflush(stdout);

    result res[N_VARIANTS];
    long long rss[N_VARIANTS] = { 0 };
    int done[N_VARIANTS] = { 0 };
    for (int k = 0; k < N_VARIANTS; k++) {
        const variant *v = &variants[k];
        bool wanted = v->order == DHF_AGG_STRAIGHTFORWARD
                          ? (o.orders & 1)
                          : (o.orders & 2) &&
                                (o.kernels & (v->kernels == DHF_ENGINE_KERNELS_LIBTORCH ? 1 : 2));
        if (!wanted)
            continue;
        if (run_child(&o, v, &res[k], &rss[k])) {
            fprintf(stderr, "bench_train: %s\n", dhf_err_msg());
            return 1;
        }
        done[k] = 1;
    }

    printf("\n%-21s %9s %7s %7s %7s %7s %7s %8s %8s %9s %10s %8s %9s\n", "order", "median_s",
           "min_s", "first_s", "fwd_s", "bwd_s", "adamw_s", "user_s", "sys_s", "faults",
           "GFLOP/step", "GFLOP/s", "peak_GiB");
    for (int k = 0; k < N_VARIANTS; k++) {
        if (!done[k])
            continue;
        double fl = step_flops(variants[k].order, o.S) / 1e9;
        printf("%-21s %9.3f %7.3f %7.3f %7.3f %7.3f %7.3f %8.3f %8.3f %9.0f %10.1f %8.1f %9.2f\n",
               variants[k].name, res[k].median, res[k].min, res[k].first, res[k].fwd,
               res[k].bwd, res[k].opt, res[k].user, res[k].sys, res[k].faults, fl,
               fl / res[k].median, rss[k] / (1024.0 * 1024.0 * 1024.0));
    }
    for (int k = 0; k < N_VARIANTS; k++)
        if (done[k])
            printf("%s: BLAS threads set to %d (0 = left alone), memory: %s\n", variants[k].name,
                   res[k].blas_threads, malloc_name[malloc_of(&o, &variants[k])]);
#ifndef DHF_PROFILE
    if (done[3])
        printf("\nfast (oneDNN): where the time goes is measured in a DHF_PROFILE build "
               "(make bench)\n");
#else
    if (done[3]) {
        const dhf_fastnet_profile *p = &res[3].prof;
        double conv = p->conv_forward_s + p->conv_backward_data_s + p->conv_backward_weights_s;
        printf("\nfast (oneDNN), where the time goes (medians, s): network forward %.3f (of it "
               "convolutions %.3f), network backward %.3f (convolutions: backward-data %.3f, "
               "backward-weights %.3f); convolutions %.3f s = %.0f%% of the step; the rest of "
               "the step (loss forward and backward in libtorch, AdamW, feature copies) %.3f\n",
               p->forward_s, p->conv_forward_s, p->backward_s, p->conv_backward_data_s,
               p->conv_backward_weights_s, conv, 100.0 * conv / res[3].median,
               res[3].median - p->forward_s - p->backward_s);
        printf("  row passes (medians, s, summed over the layers):");
        double rows = 0;
        for (int j = 0; j < DHF_FN_PASS_COUNT; j++) {
            printf("%s %s %.3f", j ? "," : "", dhf_fastnet_pass_names[j], p->pass_s[j]);
            rows += p->pass_s[j];
        }
        printf("; in all %.3f\n", rows);
    }
#endif
    bool any = false;
    for (int b = 0; b < 2; b++)
        for (int k = 2; k < N_VARIANTS; k++)
            if (done[b] && done[k]) {
                if (!any)
                    printf("\nratios (median s/step; loss at the first step, same init and "
                           "data):\n");
                any = true;
                printf("  %-21s / %-16s %5.2fx   (loss %.6f vs %.6f)\n", variants[b].name,
                       variants[k].name, res[b].median / res[k].median, res[b].loss_first,
                       res[k].loss_first);
            }
    return 0;
}
