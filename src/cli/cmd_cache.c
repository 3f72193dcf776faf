/* cmd_cache.c — `dhf cache info|verify|export|merge`: inspect, check, export (to
 * safetensors, for Python users) and join HDF5 feature caches (extract/
 * feature_cache.h). */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "cache/cache_export.h"
#include "cache/feature_cache.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dhf cache info FILE [--keys]\n"
            "       dhf cache verify FILE\n"
            "       dhf cache export FILE KEY -o OUT.safetensors\n"
            "       dhf cache merge OUT IN [IN ...]\n\n"
            "info    summary: images done/total, model, dtype, saved steps and their UNet\n"
            "        timesteps, layers and shapes, bytes per image, compression ratio;\n"
            "        --keys: instead one line per image: key, done|pending, WxH, path\n"
            "verify  reads every finished image and checks that all values are finite;\n"
            "        exit 1 if one is not\n"
            "export  one image (KEY as listed by the dataset, e.g. cat/2008_000033.jpg)\n"
            "        as float32 tensors t{k}/layer{ll} [1, C, H, W], k = position in\n"
            "        save_timestep (0-based), ll = 01..L; metadata: unet_timesteps,\n"
            "        save_timestep, key, source_path, model, config\n"
            "merge   joins caches of the same extraction (e.g. --shard outputs) into a new\n"
            "        file OUT; the first input holding an image wins; files extracted with\n"
            "        different settings or models are refused\n\n"
            "Every sub-command accepts --threads N (unused: cache work is I/O).\n");
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

static void print_i64_list(const int64_t *v, int n)
{
    printf("[");
    for (int i = 0; i < n; i++)
        printf("%s%lld", i ? ", " : "", (long long)v[i]);
    printf("]");
}

static void print_f64_list(const double *v, int n)
{
    printf("[");
    for (int i = 0; i < n; i++)
        printf("%s%g", i ? ", " : "", v[i]);
    printf("]");
}

static int cmd_keys(const char *path)
{
    dhf_feature_cache *c = NULL;
    if (dhf_cache_open_read(path, 1, &c) != 0)
        return dhf_cli_fail("cache info");
    for (int64_t r = 0; r < dhf_cache_num_images(c); r++) {
        const dhf_cache_image *im = dhf_cache_image_at(c, r);
        printf("%s\t%s\t%dx%d\t%s\n", im->key, dhf_cache_is_committed(c, r) ? "done" : "pending",
               im->width, im->height, im->path);
    }
    dhf_cache_close(c);
    return DHF_EXIT_OK;
}

static int cmd_info(const char *path)
{
    dhf_feature_cache *c = NULL;
    if (dhf_cache_open_read(path, 1, &c) != 0)
        return dhf_cli_fail("cache info");
    const dhf_cache_layout *l = dhf_cache_get_layout(c);
    dhf_cache_stats st;
    if (dhf_cache_get_stats(c, &st) != 0) {
        dhf_cache_close(c);
        return dhf_cli_fail("cache info");
    }
    int64_t total = dhf_cache_num_images(c), done = dhf_cache_num_committed(c);
    char b1[32], b2[32], b3[32];
    printf("file:         %s\n", path);
    printf("images:       %lld done / %lld total (%lld pending)\n", (long long)done,
           (long long)total, (long long)(total - done));
    printf("model:        %s (%s)\n", l->model_name, l->model_hash);
    if (l->compression > 0)
        printf("dtype:        %s, shuffle + deflate level %d\n", dhf_cache_dtype_name(l->dtype),
               l->compression);
    else
        printf("dtype:        %s, uncompressed\n", dhf_cache_dtype_name(l->dtype));
    printf("steps:        %d, save_timestep ", l->num_steps);
    print_i64_list(l->save_label, l->num_steps);
    printf("\n              UNet timesteps ");
    print_f64_list(l->unet_timestep, l->num_steps);
    printf("\nlayers:       %d\n", l->num_layers);
    for (int i = 0; i < l->num_layers; i++)
        printf("  layer%02d     %-24s [%lld, %lld, %lld]\n", i + 1, l->layer_name[i],
               (long long)l->layer_chw[i][0], (long long)l->layer_chw[i][1],
               (long long)l->layer_chw[i][2]);
    human_bytes((double)st.bytes_per_image, b1, sizeof b1);
    human_bytes(done ? (double)st.stored_bytes / (double)done : 0, b2, sizeof b2);
    human_bytes((double)st.file_bytes, b3, sizeof b3);
    printf("per image:    %lld values (%lld per step), %s uncompressed\n",
           (long long)st.values_per_image, (long long)(st.values_per_image / l->num_steps), b1);
    if (st.stored_maps > 0)
        printf("stored:       %s per finished image, compression ratio %.2fx\n", b2,
               st.compression_ratio);
    else
        printf("stored:       nothing yet\n");
    printf("file size:    %s\n", b3);
    cJSON *id = cJSON_Parse(l->identity_json);
    char *compact = id ? cJSON_PrintUnformatted(id) : NULL;
    printf("extraction:   %s\n", compact ? compact : l->identity_json);
    free(compact);
    cJSON_Delete(id);
    dhf_cache_close(c);
    return DHF_EXIT_OK;
}

static int cmd_verify(const char *path)
{
    dhf_feature_cache *c = NULL;
    if (dhf_cache_open_read(path, 1, &c) != 0)
        return dhf_cli_fail("cache verify");
    int64_t n = dhf_cache_num_images(c), bad = 0, errors = 0, checked = 0;
    dhf_progress p;
    dhf_progress_begin(&p, "verify", dhf_cache_num_committed(c));
    dhf_progress_set_unit(&p, "img");
    for (int64_t r = 0; r < n; r++) {
        if (!dhf_cache_is_committed(c, r))
            continue;
        int64_t nonfinite = 0;
        const char *key = dhf_cache_image_at(c, r)->key;
        if (dhf_cache_check_row(c, r, &nonfinite) != 0) {
            fprintf(stderr, "dhf cache verify: %s\n", dhf_err_msg());
            errors++;
        } else if (nonfinite > 0) {
            fprintf(stderr, "dhf cache verify: %s: image '%s' has %lld non-finite values\n",
                    path, key, (long long)nonfinite);
            bad++;
        }
        checked++;
        dhf_progress_step(&p, 1, key);
    }
    dhf_progress_end(&p);
    int64_t pending = n - dhf_cache_num_committed(c);
    dhf_cache_close(c);
    if (bad || errors) {
        fprintf(stderr, "dhf cache verify: %s: %lld of %lld finished images failed (%lld "
                        "unreadable, %lld with NaN/inf)\n",
                path, (long long)(bad + errors), (long long)checked, (long long)errors,
                (long long)bad);
        return DHF_EXIT_USER;
    }
    printf("%s: %lld finished image(s) readable and finite", path, (long long)checked);
    if (pending)
        printf("; %lld unfinished (re-run dhf extract to complete them)", (long long)pending);
    printf("\n");
    return DHF_EXIT_OK;
}

static int cmd_export(const char *path, const char *key, const char *out)
{
    dhf_feature_cache *c = NULL;
    if (dhf_cache_open_read(path, 1, &c) != 0)
        return dhf_cli_fail("cache export");
    int n = 0;
    int rc = dhf_cache_export_image(c, key, out, &n);
    const dhf_cache_layout *l = dhf_cache_get_layout(c);
    if (rc == 0)
        printf("%s: %d tensors of image '%s' (%d steps x %d layers, float32)\n", out, n, key,
               l->num_steps, l->num_layers);
    dhf_cache_close(c);
    return rc == 0 ? DHF_EXIT_OK : dhf_cli_fail("cache export");
}

static void merge_progress(void *user, int64_t done, int64_t total)
{
    dhf_progress *p = user;
    if (p->total != total)
        p->total = total;
    dhf_progress_step(p, 1, NULL);
    (void)done;
}

static int cmd_merge(const char *out, const char *const *inputs, int n)
{
    dhf_progress p;
    dhf_progress_begin(&p, "merge", 0);
    dhf_progress_set_unit(&p, "img");
    int64_t merged = 0;
    int rc = dhf_cache_merge(out, inputs, n, merge_progress, &p, &merged);
    dhf_progress_end(&p);
    if (rc != 0)
        return dhf_cli_fail("cache merge");
    printf("%s: %lld image(s) from %d file(s)\n", out, (long long)merged, n);
    return DHF_EXIT_OK;
}

int dhf_cmd_cache(int argc, char **argv)
{
    if (argc < 2 || dhf_cli_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? DHF_EXIT_USAGE : DHF_EXIT_OK;
    }
    const char *sub = argv[1];
    /* Positional arguments and -o, with --threads accepted and ignored. */
    const char *pos[256];
    int npos = 0;
    const char *out = NULL;
    bool keys = false;
    for (int i = 2; i < argc; i++) {
        if (dhf_cli_is_help(argv[i])) {
            usage(stdout);
            return DHF_EXIT_OK;
        } else if (strcmp(argv[i], "--keys") == 0 && strcmp(sub, "info") == 0) {
            keys = true;
        } else if (strcmp(argv[i], "--threads") == 0 || strcmp(argv[i], "-o") == 0) {
            if (i + 1 >= argc)
                return dhf_cli_usage_error("cache", "%s needs a value", argv[i]);
            int threads;
            if (argv[i][1] == 'o')
                out = argv[++i];
            else if (dhf_cli_parse_threads(argv[++i], &threads) != 0)
                return dhf_cli_usage_error("cache", "%s", dhf_err_msg());
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return dhf_cli_usage_error("cache", "unknown option '%s'", argv[i]);
        } else if (npos < (int)(sizeof pos / sizeof pos[0])) {
            pos[npos++] = argv[i];
        } else {
            return dhf_cli_usage_error("cache", "too many arguments");
        }
    }
    if (strcmp(sub, "info") == 0 || strcmp(sub, "verify") == 0) {
        if (npos != 1 || out)
            return dhf_cli_usage_error("cache", "'%s' takes exactly one FILE", sub);
        if (sub[0] == 'i')
            return keys ? cmd_keys(pos[0]) : cmd_info(pos[0]);
        return cmd_verify(pos[0]);
    }
    if (strcmp(sub, "export") == 0) {
        if (npos != 2 || !out)
            return dhf_cli_usage_error("cache", "usage: dhf cache export FILE KEY -o OUT");
        return cmd_export(pos[0], pos[1], out);
    }
    if (strcmp(sub, "merge") == 0) {
        if (npos < 2 || out)
            return dhf_cli_usage_error("cache", "usage: dhf cache merge OUT IN [IN ...]");
        return cmd_merge(pos[0], pos + 1, npos - 1);
    }
    return dhf_cli_usage_error("cache", "unknown sub-command '%s'", sub);
}
