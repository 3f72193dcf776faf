/* extract.c — benchmark of the extractor's UNet at Stable Diffusion shapes (seeded
 * random weights built in memory from the sd15-shapes / sd21-shapes presets, or a
 * model folder): median seconds per UNet call, the analytic FLOP count, achieved
 * GFLOP/s and peak RSS for each latent size x batch, and the time of a full DHF
 * inversion (num_timesteps UNet calls with the 12 features of every saved step
 * handed to a callback) per image.
 *
  * Usage: bench_extract [--preset sd15-shapes|sd21-shapes|tiny-sd15|...] [--model DIR]
 *        [--res 256,512] [--batch 1,2] [--reps 3] [--inversion-res 256]
 *        [--steps 50] [--chunk-mb 8] [--threads N] [--json FILE] */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench_util.h"
#include "core/error.h"
#include "core/progress.h"
#include "extract/attention.h"
#include "extract/init_model.h"
#include "extract/inversion.h"
#include "extract/sd_model.h"
#include "extract/unet.h"
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

int main(int argc, char **argv)
{
    const char *preset = "sd15-shapes", *model = NULL, *json_path = NULL;
    int res[8] = {256, 512}, n_res = 2, batch[8] = {1, 2}, n_batch = 2, reps = 3;
    int inv_res = 256, steps = 50, threads = 0;
    double chunk_mb = 8;
    bool tune_malloc = true;
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
        else if (!strcmp(a, "--chunk-mb") && v) chunk_mb = atof(argv[++i]);
        else if (!strcmp(a, "--threads") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--json") && v) json_path = argv[++i];
        else if (!strcmp(a, "--malloc-default")) tune_malloc = false;
        else {
            fprintf(stderr, "usage: %s [--preset P | --model DIR] [--res 256,512] [--batch 1,2] "
                            "[--reps 3] [--inversion-res 256 (0: skip)] [--steps 50] "
                            "[--chunk-mb 8] [--threads N] [--json FILE] [--malloc-default]\n",
                    argv[0]);
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;
    /* keep freed tensor buffers in the heap: no mmap/munmap + page faults per call */
    if (tune_malloc && dhf_memtune_keep_freed_memory() != 0)
        fprintf(stderr, "bench_extract: %s\n", dhf_err_msg());
    dhf_set_num_threads(threads);
    /* as the CLI does: BLAS's own pool by the shim's policy (DHF_BLAS_THREADS) */
    int blas_threads = 0;
    if (dhf_set_blas_threads(0, &blas_threads) != DHF_OK)
        fprintf(stderr, "bench_extract: %s\n", dhf_last_error());
    dhf_attention_set_chunk_bytes((size_t)(chunk_mb * 1048576.0));

    double t0 = dhf_now();
    dhf_unet *u = NULL;
    dhf_sd_model *m = NULL;
    if (model) {
        dhf_sd_load_opts o = dhf_sd_load_opts_default();
        o.load_text_encoder = false;
        if (dhf_sd_model_load(model, &o, &m) != 0) {
            fprintf(stderr, "bench_extract: %s\n", dhf_err_msg());
            return 1;
        }
        u = m->unet;
    } else {
        dhf_unet_config cfg;
        dhf_params p;
        if (dhf_init_model_unet_config(preset, &cfg) != 0) {
            fprintf(stderr, "bench_extract: %s\n", dhf_err_msg());
            return 1;
        }
        dhf_params_init_random(&p, 1234, preset, NULL);
        if (dhf_unet_build(&cfg, &p, &u) != 0) {
            fprintf(stderr, "bench_extract: %s\n", dhf_err_msg());
            return 1;
        }
        dhf_params_close(&p);
    }
    const dhf_unet_config *c = dhf_unet_config_of(u);
    printf("# bench_extract: %s, UNet %.1f M parameters (built in %.1f s), torch %s, %d "
           "threads, BLAS threads %d, attention chunk %.1f MiB, malloc %s\n",
           model ? model : preset, dhf_unet_param_count(u) / 1e6, dhf_now() - t0,
           dhf_torch_version(), dhf_get_num_threads(), blas_threads, chunk_mb,
           tune_malloc ? "tuned" : "default");
    printf("%-8s %-5s %-10s %-10s %-10s %-9s %-8s\n", "image", "batch", "median_s", "min_s",
           "GFLOP", "GFLOP/s", "peakRSS");

    FILE *jf = json_path ? fopen(json_path, "w") : NULL;
    if (jf)
        fprintf(jf, "{\"model\": \"%s\", \"threads\": %d, \"calls\": [", model ? model : preset,
                dhf_get_num_threads());
    int first = 1;
    dhf_inference_begin();
    for (int ri = 0; ri < n_res; ri++)
        for (int bi = 0; bi < n_batch; bi++) {
            int64_t lat = res[ri] / 8, B = batch[bi];
            int64_t xs[4] = {B, c->in_channels, lat, lat}, cs[3] = {1, 77, c->cross_attention_dim};
            dhf_tensor x = NULL, ctx = NULL;
            dhf_randn(1, DHF_F32, xs, 4, &x);
            dhf_randn(2, DHF_F32, cs, 3, &ctx);
            float t[16];
            for (int b = 0; b < 16; b++)
                t[b] = 500.0f;
            double times[64];
            int n = reps < 64 ? reps : 64;
            for (int r = -1; r < n; r++) {   /* r = -1: warm-up */
                dhf_tensor eps = NULL, feats[64] = {0};
                double s = dhf_now();
                if (dhf_unet_forward(u, x, t, ctx, &eps, feats, NULL) != 0) {
                    fprintf(stderr, "bench_extract: %s\n", dhf_err_msg());
                    return 1;
                }
                double e = dhf_now() - s;
                if (r >= 0)
                    times[r] = e;
                dhf_free(eps);
                for (int k = 0; k < dhf_unet_n_features(u); k++)
                    dhf_free(feats[k]);
            }
            double med = bench_median(times, n);     /* sorts: times[0] is the min */
            double gf = dhf_unet_flops(c, B, lat, lat, 77) / 1e9;
            printf("%-8d %-5lld %-10.3f %-10.3f %-10.1f %-9.1f %-8.2f\n", res[ri], (long long)B,
                   med, times[0], gf, gf / med, peak_rss_gb());
            fflush(stdout);
            if (jf)
                fprintf(jf, "%s{\"image\": %d, \"batch\": %lld, \"median_s\": %.4f, "
                            "\"min_s\": %.4f, \"gflop\": %.2f, \"gflops\": %.2f, "
                            "\"peak_rss_gb\": %.3f}", first ? "" : ", ", res[ri], (long long)B,
                        med, times[0], gf, gf / med, peak_rss_gb());
            first = 0;
            dhf_free(x);
            dhf_free(ctx);
        }
    if (jf)
        fprintf(jf, "]");
    if (inv_res > 0 && steps > 0) {
        int64_t lat = inv_res / 8;
        int64_t xs[4] = {1, c->in_channels, lat, lat}, cs[3] = {1, 77, c->cross_attention_dim};
        dhf_tensor x = NULL, ctx = NULL;
        dhf_randn(3, DHF_F32, xs, 4, &x);
        dhf_randn(4, DHF_F32, cs, 3, &ctx);
        int64_t labels[64];
        int n_save = 0;
        for (int l = steps - 1; l >= 0 && n_save < 64; l -= (steps >= 10 ? 5 : 1))
            labels[n_save++] = l;
        if (steps >= 10 && labels[n_save - 1] != 0 && n_save < 64)
            labels[n_save++] = 0;
        int delivered = 0;
        dhf_inversion_opts o = {.num_timesteps = steps, .save_timestep = labels,
                                .n_save = n_save};
        double s = dhf_now();
        if (dhf_ddim_invert(u, x, ctx, &o, count_cb, &delivered) != 0) {
            fprintf(stderr, "bench_extract: %s\n", dhf_err_msg());
            return 1;
        }
        double e = dhf_now() - s;
        double gf = steps * dhf_unet_flops(c, 1, lat, lat, 77) / 1e9;
        printf("inversion: %d steps at %d^2 (latent %lld^2), %d saved steps: %.2f s per image "
               "(%.2f s per UNet call, %.1f GFLOP/s), peak RSS %.2f GB\n", steps, inv_res,
               (long long)lat, delivered, e, e / steps, gf / e, peak_rss_gb());
        if (jf)
            fprintf(jf, ", \"inversion\": {\"image\": %d, \"steps\": %d, \"saved\": %d, "
                        "\"seconds\": %.3f, \"gflops\": %.2f}", inv_res, steps, delivered, e,
                    gf / e);
        dhf_free(x);
        dhf_free(ctx);
    }
    dhf_inference_end();
    if (jf) {
        fprintf(jf, ", \"peak_rss_gb\": %.3f}\n", peak_rss_gb());
        fclose(jf);
    }
    if (m)
        dhf_sd_model_free(m);
    else
        dhf_unet_free(u);
    return 0;
}
