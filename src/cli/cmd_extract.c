/* cmd_extract.c — `dhf extract CONFIG.yaml`: cache the diffusion features of a
 * dataset's images (or an image list) in the HDF5 feature cache, resumably, with
 * optional sharding; the work is done by extract/extract_run.h. */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "shim/torch_shim.h"
#include "core/config.h"
#include "core/error.h"
#include "extract/extract_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dhf extract CONFIG.yaml [CONFIG.yaml ...] [--set key=value ...]\n"
            "                   [--shard K/N] [--threads N] [--device cpu|cuda[:N]]\n\n"
            "Runs the paper's feature extraction (VAE latent, DDIM inversion, the 12 decoder\n"
            "ResNet features of every saved step) for every selected image not yet in the\n"
            "cache, and stores them in cache_path (HDF5). Re-running resumes: finished\n"
            "images are skipped. config.resolved.yaml is written next to the cache.\n\n"
            "Keys used: model_id, prompt_embeds (or the text encoder on prompt \"\"),\n"
            "  diffusion_resolution, num_timesteps, save_timestep, vae_latent, seed, dtype,\n"
            "  device, cache_path, cache_dtype, cache_compression; images from image_list\n"
            "  (one path per line) or dataset, data_root, split (trn|val|test) with its pair\n"
            "  list (train_path|val_path|test_path) and subset (pairs_per_category or\n"
            "  val_pairs_per_category, subset_seed). Run once per split to cache them all\n"
            "  in one file.\n\n"
            "Options:\n"
            "  --set key=value  override a config key (repeatable)\n"
            "  --shard K/N      process images K, K+N, K+2N, ... (0 <= K < N) of the sorted\n"
            "                   image list into <cache stem>.shardKofN<ext>; join the shard\n"
            "                   files with `dhf cache merge`\n"
            "  --threads N      CPU threads (0 = all cores; default: the threads key)\n"
            "  --device D       compute device (same as --set device=D)\n\n"
            "Environment: DHF_TEST_ABORT_AFTER=k exits with status %d right after the k-th\n"
            "image is committed, as a crash would (for the resume test).\n",
            DHF_EXTRACT_TEST_ABORT_STATUS);
}

static void human_bytes(double b, char *out, size_t n)
{
    const char *unit[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (b >= 1000 && u < 4) {
        b /= 1000;
        u++;
    }
    snprintf(out, n, u ? "%.2f %s" : "%.0f %s", b, unit[u]);
}

int dhf_cmd_extract(int argc, char **argv)
{
    dhf_config cfg;
    dhf_config_defaults(&cfg);
    dhf_extract_options opt = {.shard = {0, 1}};
    int files = 0, threads = -1, n_sets = 0;
    /* Overrides apply after every file, whatever their position on the line. */
    const char *sets[256];
    char device_set[128] = "";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dhf_cli_is_help(a)) {
            usage(stdout);
            return DHF_EXIT_OK;
        } else if (strcmp(a, "--set") == 0 || strcmp(a, "--shard") == 0 ||
                   strcmp(a, "--threads") == 0 || strcmp(a, "--device") == 0) {
            if (i + 1 >= argc)
                return dhf_cli_usage_error("extract", "%s needs a value", a);
            const char *v = argv[++i];
            if (strcmp(a, "--set") == 0) {
                if (n_sets == (int)(sizeof sets / sizeof sets[0]))
                    return dhf_cli_usage_error("extract", "too many --set options");
                sets[n_sets++] = v;
            } else if (strcmp(a, "--shard") == 0) {
                if (dhf_shard_parse(v, &opt.shard) != 0)
                    return dhf_cli_usage_error("extract", "%s", dhf_err_msg());
            } else if (strcmp(a, "--threads") == 0) {
                if (dhf_cli_parse_threads(v, &threads) != 0)
                    return dhf_cli_usage_error("extract", "%s", dhf_err_msg());
            } else {
                snprintf(device_set, sizeof device_set, "device=%s", v);
            }
        } else if (a[0] == '-') {
            return dhf_cli_usage_error("extract", "unknown option '%s'", a);
        } else {
            if (dhf_config_load_file(&cfg, a) != 0)
                return dhf_cli_fail("extract");
            files++;
        }
    }
    if (files == 0)
        return dhf_cli_usage_error("extract", "a CONFIG.yaml is required");
    for (int i = 0; i < n_sets; i++)
        if (dhf_config_set(&cfg, sets[i]) != 0)
            return dhf_cli_fail("extract");
    if (device_set[0] && dhf_config_set(&cfg, device_set) != 0)
        return dhf_cli_fail("extract");
    if (dhf_config_validate(&cfg) != 0)
        return dhf_cli_fail("extract");
    /* the UNet allocates the same large temporaries every call: keep freed
     * blocks instead of page-faulting them in again */
    if (dhf_cpu_caching_allocator(true) != DHF_OK) {
        dhf_err_set("%s", dhf_last_error());
        return dhf_cli_fail("extract");
    }
    if (dhf_cli_apply_threads(threads >= 0 ? threads : cfg.threads) != 0)
        return dhf_cli_fail("extract");
    const char *abort_env = getenv("DHF_TEST_ABORT_AFTER");
    if (abort_env && abort_env[0])
        opt.abort_after = atoi(abort_env);

    dhf_extract_summary s;
    if (dhf_extract_run(&cfg, &opt, &s) != 0)
        return dhf_cli_fail("extract");
    char per_image[32], stored[32], file[32];
    human_bytes((double)s.stats.bytes_per_image, per_image, sizeof per_image);
    human_bytes(s.stats.stored_maps ? (double)s.stats.stored_bytes / (double)s.cache_committed
                                    : 0,
                stored, sizeof stored);
    human_bytes((double)s.stats.file_bytes, file, sizeof file);
    printf("extracted %lld image(s) in %.1f s (%.3g img/s); %lld already cached; %lld "
           "selected from %s%s\n",
           (long long)s.extracted, s.seconds,
           s.seconds > 0 ? (double)s.extracted / s.seconds : 0.0, (long long)s.already_done,
           (long long)s.selected, s.source,
           opt.shard.count > 1 ? " (this shard)" : "");
    if (s.weights[0])
        printf("model %s: UNet weights %s\n", cfg.model_id, s.weights);
    printf("cache %s: %lld/%lld images done, %s per image (%s stored, compression %.2fx), "
           "file %s\n",
           s.cache_path, (long long)s.cache_committed, (long long)s.cache_images, per_image,
           stored, s.stats.compression_ratio, file);
    return DHF_EXIT_OK;
}
