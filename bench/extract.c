/* extract.c — benchmark of the extractor's UNet at Stable Diffusion shapes (seeded
 * random weights built in memory from the sd15-shapes / sd21-shapes presets, or a
 * model folder): median seconds per UNet call, the analytic FLOP count, achieved
 * GFLOP/s and peak RSS for each latent size x batch, and the time of a full DHF
 * inversion (num_timesteps UNet calls with the 12 features of every saved step
 * handed to a callback) per image, and the VAE encoder's call at --vae-res.
 *
  * Usage: bench_extract [--preset sd15-shapes|sd21-shapes|tiny-sd15|...] [--model DIR]
 *        [--res 256,512] [--batch 1,2] [--reps 3] [--inversion-res 256]
 *        [--steps 50] [--vae-res 512] [--chunk-mb 8] [--threads N] [--json FILE]
 *        [--dtype float32,bfloat16] [--kernels onednn,libtorch] [--device cpu|cuda]
 *        [--malloc-default | --malloc-cache]
 * Every row also gives the page faults and system seconds per call (the churn a
 * call causes); --malloc-cache runs on the shim's caching allocator as `dhf extract`
 * does (the default keeps glibc's freed memory in its heap instead).
 * Each dtype in --dtype builds its own UNet and runs every row (bfloat16 needs
 * AVX512-BF16 on the CPU; skipped with a message otherwise); within a row the two
 * --kernels alternate call by call (extract/unet_kernels.h), so their ratio is
 * measured side by side (with both, every convolution's OIHW weights are kept beside
 * the packed ones, so the peak RSS is the product's only with one --kernels). The
 * float32 FMA and bf16 dot-product peaks are measured at
 * the start and every row says which fraction of its dtype's peak it reached. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench_util.h"
#include "fma_peak.h"
#include "core/error.h"
#include "core/progress.h"
#include "extract/attention.h"
#include "extract/init_model.h"
#include "extract/inversion.h"
#include "extract/sd_model.h"
#include "extract/unet.h"
#include "extract/vae.h"
#include "extract/diffusers_config.h"
#include "extract/unet_kernels.h"
#include "shim/torch_shim.h"
#include "memtune.h"

static double peak_rss_gb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / (1024.0 * 1024.0);   /* ru_maxrss is in KiB */
}

static int parse_list(const char *s, int *v, int max)
{
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < max;
         t = strtok_r(NULL, ",", &save))
        v[n++] = atoi(t);
    return n;
}

static int count_cb(void *user, const dhf_saved_step *s)
{
    (void)s;
    ++*(int *)user;
    return 0;
}

typedef struct {
    const char *preset, *model;
    const int *res, *batch;
    int n_res, n_batch, reps, inv_res, steps, vae_res;
    dhf_extract_kernels kern[2];
    int n_kern;
    double peak;        /* measured peak of this dtype, GFLOP/s (0: unknown) */
    bool cuda;          /* --device cuda: calls end with a device synchronisation */
    FILE *jf;
} bench_opts;

static int build_unet(const bench_opts *o, const dhf_model_placement pl, dhf_unet **u,
                      dhf_sd_model **m)
{
    *u = NULL;
    *m = NULL;
    if (o->model) {
        dhf_sd_load_opts lo = dhf_sd_load_opts_default();
        lo.placement = pl;
        lo.load_text_encoder = false;
        if (dhf_sd_model_load(o->model, &lo, m) != 0)
            return -1;
        *u = (*m)->unet;
        return 0;
    }
    dhf_unet_config cfg;
    dhf_params p;
    if (dhf_init_model_unet_config(o->preset, &cfg) != 0)
        return -1;
    dhf_params_init_random(&p, 1234, o->preset, NULL);
    p.device = pl.device;
    p.dtype = pl.dtype;
    int rc = dhf_unet_build(&cfg, &p, u);
    dhf_params_close(&p);
    return rc;
}

/* One UNet call; seconds. */
static double time_call(dhf_unet *u, dhf_tensor x, const float *t, dhf_tensor ctx, bool cuda)
{
    dhf_tensor eps = NULL, feats[64] = {0};
    double s = dhf_now();
    if (dhf_unet_forward(u, x, t, ctx, &eps, feats, NULL) != 0)
        return -1;
    if (cuda && dhf_cuda_synchronize() != DHF_OK)
        return dhf_err_set("cuda synchronize: %s", dhf_last_error());
    double e = dhf_now() - s;
    dhf_free(eps);
    for (int k = 0; k < dhf_unet_n_features(u); k++)
        dhf_free(feats[k]);
    return e;
}

/* page faults and system seconds of this process so far (the churn a call causes) */
static void usage_now(double *faults, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *faults = (double)ru.ru_minflt + (double)ru.ru_majflt;
    *sys = (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

/* Every (image, batch) row: the kernels alternate call by call, so drift in the
 * machine's speed hits both alike; one line per kernel, and their ratio. */
static int bench_calls(const bench_opts *o, const char *dtype, dhf_unet *u, int *first)
{
    const dhf_unet_config *c = dhf_unet_config_of(u);
    for (int ri = 0; ri < o->n_res; ri++)
        for (int bi = 0; bi < o->n_batch; bi++) {
            int64_t lat = o->res[ri] / 8, B = o->batch[bi];
            int64_t xs[4] = {B, c->in_channels, lat, lat}, cs[3] = {1, 77, c->cross_attention_dim};
            dhf_tensor x = NULL, ctx = NULL;
            dhf_randn(1, DHF_F32, xs, 4, &x);
            dhf_randn(2, DHF_F32, cs, 3, &ctx);
            float t[16];
            for (int b = 0; b < 16; b++)
                t[b] = 500.0f;
            double times[2][64], flt[2] = {0, 0}, sys[2] = {0, 0};
            int n = o->reps < 64 ? o->reps : 64;
            for (int r = -1; r < n; r++)   /* r = -1: warm-up */
                for (int k = 0; k < o->n_kern; k++) {
                    dhf_kernels_set(o->kern[k]);
                    double f0, s0, f1, s1;
                    usage_now(&f0, &s0);
                    double e = time_call(u, x, t, ctx, o->cuda);
                    if (e < 0)
                        return -1;
                    usage_now(&f1, &s1);
                    if (r >= 0) {
                        times[k][r] = e;
                        flt[k] += (f1 - f0) / n;
                        sys[k] += (s1 - s0) / n;
                    }
                }
            double gf = dhf_unet_flops(c, B, lat, lat, 77) / 1e9, med[2];
            for (int k = 0; k < o->n_kern; k++) {
                med[k] = bench_median(times[k], n);     /* sorts: times[k][0] is the min */
                printf("%-9s %-9s %-6d %-5lld %-9.3f %-9.3f %-8.1f %-8.1f %-6.1f %-8.2f %-8.0f "
                       "%-6.2f\n", dtype,
                       dhf_kernels_name(o->kern[k]), o->res[ri], (long long)B, med[k],
                       times[k][0], gf, gf / med[k], o->peak > 0 ? 100 * gf / med[k] / o->peak : 0,
                       peak_rss_gb(), flt[k], sys[k]);
                if (o->jf)
                    fprintf(o->jf, "%s{\"dtype\": \"%s\", \"kernels\": \"%s\", \"image\": %d, "
                                   "\"batch\": %lld, \"median_s\": %.4f, \"min_s\": %.4f, "
                                   "\"gflop\": %.2f, \"gflops\": %.2f, \"peak_fraction\": %.4f, "
                                   "\"peak_rss_gb\": %.3f, \"page_faults_per_call\": %.0f, "
                                   "\"sys_s_per_call\": %.3f}", *first ? "" : ", ", dtype,
                            dhf_kernels_name(o->kern[k]), o->res[ri], (long long)B, med[k],
                            times[k][0], gf, gf / med[k], o->peak > 0 ? gf / med[k] / o->peak : 0,
                            peak_rss_gb(), flt[k], sys[k]);
                *first = 0;
            }
            if (o->n_kern == 2)
                printf("%-9s %s/%s: %.2fx\n", dtype, dhf_kernels_name(o->kern[1]),
                       dhf_kernels_name(o->kern[0]), med[1] / med[0]);
            fflush(stdout);
            dhf_free(x);
            dhf_free(ctx);
        }
    return 0;
}

/* A full DHF inversion per kernel (num_timesteps calls, every saved step delivered). */
static int bench_inversion(const bench_opts *o, const char *dtype, dhf_unet *u, int *first)
{
    const dhf_unet_config *c = dhf_unet_config_of(u);
    int64_t lat = o->inv_res / 8;
    int64_t xs[4] = {1, c->in_channels, lat, lat}, cs[3] = {1, 77, c->cross_attention_dim};
    int64_t labels[64];
    int n_save = 0;
    for (int l = o->steps - 1; l >= 0 && n_save < 64; l -= (o->steps >= 10 ? 5 : 1))
        labels[n_save++] = l;
    if (o->steps >= 10 && labels[n_save - 1] != 0 && n_save < 64)
        labels[n_save++] = 0;
    for (int k = 0; k < o->n_kern; k++) {
        dhf_kernels_set(o->kern[k]);
        dhf_tensor x = NULL, ctx = NULL;
        dhf_randn(3, DHF_F32, xs, 4, &x);
        dhf_randn(4, DHF_F32, cs, 3, &ctx);
        int delivered = 0;
        dhf_inversion_opts io = {.num_timesteps = o->steps, .save_timestep = labels,
                                 .n_save = n_save};
        double s = dhf_now();
        if (dhf_ddim_invert(u, x, ctx, &io, count_cb, &delivered) != 0)
            return -1;
        if (o->cuda && dhf_cuda_synchronize() != DHF_OK)
            return dhf_err_set("cuda synchronize: %s", dhf_last_error());
        double e = dhf_now() - s;
        double gf = o->steps * dhf_unet_flops(c, 1, lat, lat, 77) / 1e9;
        printf("%s %s inversion: %d steps at %d^2 (latent %lld^2), %d saved steps: %.2f s per "
               "image (%.2f s per UNet call, %.1f GFLOP/s), peak RSS %.2f GB\n", dtype,
               dhf_kernels_name(o->kern[k]), o->steps, o->inv_res, (long long)lat, delivered, e,
               e / o->steps, gf / e, peak_rss_gb());
        if (o->jf)
            fprintf(o->jf, "%s{\"dtype\": \"%s\", \"kernels\": \"%s\", \"inversion_image\": %d, "
                           "\"steps\": %d, \"saved\": %d, \"seconds\": %.3f, \"gflops\": %.2f}",
                    *first ? "" : ", ", dtype, dhf_kernels_name(o->kern[k]), o->inv_res, o->steps,
                    delivered, e, gf / e);
        *first = 0;
        dhf_free(x);
        dhf_free(ctx);
    }
    return 0;
}

/* The VAE encoder at vae_res^2 (the preset's VAE, seeded random weights), the kernels
 * alternating call by call as in bench_calls. */
static int bench_vae(const bench_opts *o, const char *dtype, const dhf_model_placement pl,
                     int *first)
{
    char *vae_json = NULL;
    dhf_vae_config vc;
    dhf_params p;
    dhf_vae *v = NULL;
    const char *preset = o->model ? "sd15-shapes" : o->preset;
    if (dhf_init_model_configs(preset, NULL, &vae_json, NULL, NULL) != 0 ||
        dhf_vae_config_parse(vae_json, preset, &vc) != 0) {
        free(vae_json);
        return -1;
    }
    free(vae_json);
    dhf_params_init_random(&p, 4321, preset, NULL);
    p.device = pl.device;
    p.dtype = pl.dtype;
    int rc = dhf_vae_build(&vc, &p, false, &v);
    dhf_params_close(&p);
    if (rc != 0)
        return -1;
    int64_t xs[4] = {1, 3, o->vae_res, o->vae_res};
    dhf_tensor x = NULL;
    dhf_rand(5, DHF_F32, xs, 4, &x);
    double times[2][64], flt[2] = {0, 0}, sys[2] = {0, 0};
    int n = o->reps < 64 ? o->reps : 64;
    for (int r = -1; r < n && rc == 0; r++)
        for (int k = 0; k < o->n_kern && rc == 0; k++) {
            dhf_kernels_set(o->kern[k]);
            dhf_vae_posterior post = {0};
            double f0, s0, f1, s1;
            usage_now(&f0, &s0);
            double s = dhf_now();
            rc = dhf_vae_encode(v, x, &post);
            if (rc == 0 && o->cuda && dhf_cuda_synchronize() != DHF_OK)
                rc = dhf_err_set("cuda synchronize: %s", dhf_last_error());
            if (r >= 0) {
                times[k][r] = dhf_now() - s;
                usage_now(&f1, &s1);
                flt[k] += (f1 - f0) / n;
                sys[k] += (s1 - s0) / n;
            }
            dhf_vae_posterior_free(&post);
        }
    double med[2] = {0, 0};
    for (int k = 0; rc == 0 && k < o->n_kern; k++) {
        med[k] = bench_median(times[k], n);
        printf("%-9s %-9s vae-enc %-6d median %.3f s, min %.3f s, peak RSS %.2f GB, %.0f page "
               "faults and %.2f s system time a call\n", dtype, dhf_kernels_name(o->kern[k]),
               o->vae_res, med[k], times[k][0], peak_rss_gb(), flt[k], sys[k]);
        if (o->jf)
            fprintf(o->jf, "%s{\"dtype\": \"%s\", \"kernels\": \"%s\", \"vae_encoder_image\": "
                           "%d, \"median_s\": %.4f, \"min_s\": %.4f}", *first ? "" : ", ", dtype,
                    dhf_kernels_name(o->kern[k]), o->vae_res, med[k], times[k][0]);
        *first = 0;
    }
    if (rc == 0 && o->n_kern == 2)
        printf("%-9s vae-enc %s/%s: %.2fx\n", dtype, dhf_kernels_name(o->kern[1]),
               dhf_kernels_name(o->kern[0]), med[1] / med[0]);
    dhf_free(x);
    dhf_vae_free(v);
    return rc;
}

int main(int argc, char **argv)
{
    const char *preset = "sd15-shapes", *model = NULL, *json_path = NULL;
    int res[8] = {256, 512}, n_res = 2, batch[8] = {1, 2}, n_batch = 2, reps = 3;
    int inv_res = 256, steps = 50, threads = 0, vae_res = 512;
    double chunk_mb = 8;
    bool tune_malloc = true, cache_alloc = false;
    const char *dtypes = "float32", *kernels = "onednn,libtorch", *device = "cpu";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--preset") && v) preset = argv[++i];
        else if (!strcmp(a, "--model") && v) model = argv[++i];
        else if (!strcmp(a, "--res") && v) n_res = parse_list(argv[++i], res, 8);
        else if (!strcmp(a, "--batch") && v) n_batch = parse_list(argv[++i], batch, 8);
        else if (!strcmp(a, "--reps") && v) reps = atoi(argv[++i]);
        else if (!strcmp(a, "--inversion-res") && v) inv_res = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && v) steps = atoi(argv[++i]);
        else if (!strcmp(a, "--vae-res") && v) vae_res = atoi(argv[++i]);
        else if (!strcmp(a, "--chunk-mb") && v) chunk_mb = atof(argv[++i]);
        else if (!strcmp(a, "--threads") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--json") && v) json_path = argv[++i];
        else if (!strcmp(a, "--dtype") && v) dtypes = argv[++i];
        else if (!strcmp(a, "--kernels") && v) kernels = argv[++i];
        else if (!strcmp(a, "--device") && v) device = argv[++i];
        else if (!strcmp(a, "--malloc-default")) tune_malloc = false;
        else if (!strcmp(a, "--malloc-cache")) cache_alloc = true;
        else {
            fprintf(stderr, "usage: %s [--preset P | --model DIR] [--res 256,512] [--batch 1,2] "
                            "[--reps 3] [--inversion-res 256 (0: skip)] [--steps 50] [--vae-res 512 (0: skip)] "
                            "[--chunk-mb 8] [--threads N] [--json FILE] [--malloc-default | --malloc-cache] "
                            "[--dtype float32,bfloat16] [--kernels onednn,libtorch] [--device cpu|cuda]\n",
                    argv[0]);
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;
    /* keep freed tensor buffers in the heap: no mmap/munmap + page faults per call */
    if (cache_alloc) {
        /* what `dhf extract` runs on: the shim's caching allocator (freed blocks kept
         * in exact-size lists) */
        tune_malloc = false;
        if (dhf_cpu_caching_allocator(true) != DHF_OK)
            fprintf(stderr, "bench_extract: caching allocator: %s\n", dhf_last_error());
    }
    if (tune_malloc && dhf_memtune_keep_freed_memory() != 0)
        fprintf(stderr, "bench_extract: %s\n", dhf_err_msg());
    dhf_set_num_threads(threads);
    /* as the CLI does: BLAS's own pool by the shim's policy (DHF_BLAS_THREADS) */
    int blas_threads = 0;
    if (dhf_set_blas_threads(0, &blas_threads) != DHF_OK)
        fprintf(stderr, "bench_extract: %s\n", dhf_last_error());
    dhf_attention_set_chunk_bytes((size_t)(chunk_mb * 1048576.0));

    bench_opts bo = {.preset = preset, .model = model, .res = res, .batch = batch,
                     .n_res = n_res, .n_batch = n_batch, .reps = reps, .inv_res = inv_res,
                     .steps = steps, .vae_res = vae_res, .cuda = strncmp(device, "cuda", 4) == 0};
    char klist[64];
    snprintf(klist, sizeof klist, "%s", kernels);
    for (char *save = NULL, *k = strtok_r(klist, ",", &save); k && bo.n_kern < 2;
         k = strtok_r(NULL, ",", &save))
        if (dhf_kernels_parse(k, &bo.kern[bo.n_kern++]) != 0) {
            fprintf(stderr, "bench_extract: --kernels: %s\n", dhf_err_msg());
            return 2;
        }
    /* alternating both paths in one process needs every conv's OIHW weights beside the
     * packed ones (the peak RSS of a two-path run counts the conv weights twice; run
     * one --kernels alone for the product's footprint) */
    dhf_kernels_keep_oihw(bo.n_kern > 1);
    /* the CPU's peaks; on CUDA the rows give GFLOP/s only */
    const double peak32 = bo.cuda ? 0 : fma_peak_gflops(),
                 peak16 = bo.cuda ? 0 : bf16_peak_gflops();
    printf("# bench_extract: %s, torch %s, %d threads, BLAS threads %d, attention chunk "
           "%.1f MiB, malloc %s; measured peak: float32 FMA %.0f GFLOP/s, bf16 dot %.0f "
           "GFLOP/s\n", model ? model : preset, dhf_torch_version(), dhf_get_num_threads(),
           blas_threads, chunk_mb, cache_alloc ? "caching allocator" : tune_malloc ? "tuned" : "default",
           peak32, peak16);
    printf("%-9s %-9s %-6s %-5s %-9s %-9s %-8s %-8s %-6s %-8s %-8s %-6s\n", "dtype", "kernels", "image",
           "batch", "median_s", "min_s", "GFLOP", "GFLOP/s", "%peak", "peakRSS", "faults", "sys_s");
    FILE *jf = json_path ? fopen(json_path, "w") : NULL;
    bo.jf = jf;
    if (jf)
        fprintf(jf, "{\"model\": \"%s\", \"threads\": %d, \"peak_f32_gflops\": %.1f, "
                    "\"peak_bf16_gflops\": %.1f, \"rows\": [", model ? model : preset,
                dhf_get_num_threads(), peak32, peak16);
    dhf_inference_begin();
    char list[128];
    snprintf(list, sizeof list, "%s", dtypes);
    int first = 1;
    for (char *save = NULL, *d = strtok_r(list, ",", &save); d; d = strtok_r(NULL, ",", &save)) {
        dhf_model_placement pl;
        if (dhf_sd_placement_parse(device, d, &pl) != 0) {
            printf("# %s: skipped: %s\n", d, dhf_err_msg());
            continue;
        }
        bo.peak = pl.dtype == DHF_BF16 ? peak16 : peak32;
        double t0 = dhf_now();
        dhf_unet *u = NULL;
        dhf_sd_model *m = NULL;
        int rc = build_unet(&bo, pl, &u, &m);
        if (rc == 0) {
            printf("# %s: UNet %.1f M parameters (built in %.1f s)\n", d,
                   dhf_unet_param_count(u) / 1e6, dhf_now() - t0);
            rc = bench_calls(&bo, d, u, &first);
            if (rc == 0 && inv_res > 0 && steps > 0)
                rc = bench_inversion(&bo, d, u, &first);
            if (rc == 0 && vae_res > 0)
                rc = bench_vae(&bo, d, pl, &first);
        }
        if (m)
            dhf_sd_model_free(m);
        else
            dhf_unet_free(u);
        if (rc != 0) {
            fprintf(stderr, "bench_extract: %s\n", dhf_err_msg());
            return 1;
        }
    }
    dhf_inference_end();
    if (jf) {
        fprintf(jf, "], \"peak_rss_gb\": %.3f}\n", peak_rss_gb());
        fclose(jf);
    }
    return 0;
}
