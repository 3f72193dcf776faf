/* cmd_match.c — `dhf match IMG_A IMG_B`: dense nearest-neighbour correspondences
 * between two images through any descriptor provider (a trained network over cached
 * inversion or generation features by default), drawn as the paper's figures show
 * them (experiment/pair_drawing.h), with the points as JSON. */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cache/feature_cache.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/image.h"
#include "eval/match.h"
#include "experiment/eval_command.h"
#include "experiment/pair_drawing.h"

#include <cjson/cJSON.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 64

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dhf match [CONFIG.yaml ...] IMG_A IMG_B --checkpoint CKPT -o PAIR.png\n"
            "                 [--provider NAME[:ARG]] [--cache FILE.h5] [--grid N]\n"
            "                 [--set key=value ...] [--threads N]\n\n"
            "Transfers an N x N grid of points of IMG_A (default N = 12) into IMG_B with the\n"
            "evaluation's nearest-neighbour procedure (load_resolution, eval.matcher) and draws\n"
            "both images side by side: each source point coloured by its position, its match\n"
            "in the same colour. Works for generated pairs (dhf generate; --cache its\n"
            "features.h5) and real ones (cached by dhf extract, e.g. with image_list). An image\n"
            "is found in the cache by its key or its path. Writes PAIR.png and PAIR.json (the\n"
            "points and their cosine scores).\n\n"
            "  --checkpoint CKPT      a trained network (an inversion-trained one applies to\n"
            "                         generation features: the flip rule, docs/GENERATION.md)\n"
            "  --provider P           any dhf eval provider (default hyperfeatures)\n"
            "  --cache FILE.h5        the feature cache (same as --set cache_path=FILE.h5)\n");
}

/* The cache key of an image given by key or path (the argument itself when the cache
 * does not hold it). */
static void resolve_key(const char *cache_path, const char *arg, char *key, size_t n)
{
    snprintf(key, n, "%s", arg);
    dhf_feature_cache *c = NULL;
    if (!cache_path[0] || !dhf_path_exists(cache_path) || dhf_cache_open_read(cache_path, 1, &c) != 0) {
        dhf_err_clear();
        return;
    }
    char want[PATH_MAX];
    bool real = realpath(arg, want) != NULL;
    for (int64_t r = 0; r < dhf_cache_num_images(c); r++) {
        const dhf_cache_image *im = dhf_cache_image_at(c, r);
        char have[PATH_MAX];
        if (strcmp(im->key, arg) == 0 ||
            (real && realpath(im->path, have) && strcmp(have, want) == 0)) {
            snprintf(key, n, "%s", im->key);
            break;
        }
    }
    dhf_cache_close(c);
}

static int describe(dhf_provider *p, const dhf_config *cfg, const char *arg, dhf_image *img,
                    dhf_descriptors *d)
{
    char key[DHF_CACHE_KEY_LEN];
    resolve_key(cfg->cache_path, arg, key, sizeof key);
    if (dhf_image_load(arg, img) != 0)
        return -1;
    dhf_provider_input in = {.key = key, .path = arg, .width = img->width, .height = img->height,
                             .image = img, .load_size = cfg->load_resolution,
                             .resize = DHF_RESIZE_STRETCH};
    memset(d, 0, sizeof *d);
    if (p->describe(p->ctx, &in, d) != 0)
        return dhf_err_wrap("%s (key %s)", arg, key);
    return 0;
}

int dhf_cmd_match(int argc, char **argv)
{
    const char *files[MAX_ARGS], *sets[MAX_ARGS], *imgs[2];
    int n_files = 0, n_sets = 0, n_imgs = 0, threads = -1, grid = 12;
    const char *ckpt = NULL, *provider = NULL, *out = NULL, *cache = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dhf_cli_is_help(a)) {
            usage(stdout);
            return DHF_EXIT_OK;
        }
        if (a[0] != '-') {
            size_t l = strlen(a);
            bool yaml = (l > 5 && strcmp(a + l - 5, ".yaml") == 0) || (l > 4 && strcmp(a + l - 4, ".yml") == 0);
            if (yaml && n_files < MAX_ARGS)
                files[n_files++] = a;
            else if (!yaml && n_imgs < 2)
                imgs[n_imgs++] = a;
            else
                return dhf_cli_usage_error("match", "unexpected argument '%s'", a);
            continue;
        }
        if (i + 1 >= argc)
            return dhf_cli_usage_error("match", "%s needs a value", a);
        const char *v = argv[++i];
        if (strcmp(a, "--checkpoint") == 0)
            ckpt = v;
        else if (strcmp(a, "--provider") == 0)
            provider = v;
        else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)
            out = v;
        else if (strcmp(a, "--cache") == 0)
            cache = v;
        else if (strcmp(a, "--grid") == 0) {
            char *end = NULL;
            long g = strtol(v, &end, 10);
            if (!*v || *end || g < 1 || g > 64)
                return dhf_cli_usage_error("match", "--grid: expected 1..64, got '%s'", v);
            grid = (int)g;
        } else if (strcmp(a, "--set") == 0 && n_sets < MAX_ARGS)
            sets[n_sets++] = v;
        else if (strcmp(a, "--threads") == 0) {
            if (dhf_cli_parse_threads(v, &threads) != 0)
                return dhf_cli_usage_error("match", "%s", dhf_err_msg());
        } else
            return dhf_cli_usage_error("match", "unknown option '%s'", a);
    }
    if (n_imgs != 2)
        return dhf_cli_usage_error("match", "two images are required (IMG_A IMG_B)");
    if (!out)
        return dhf_cli_usage_error("match", "-o PAIR.png is required");
    size_t ol = strlen(out);
    if (ol < 5 || strcmp(out + ol - 4, ".png") != 0)
        return dhf_cli_usage_error("match", "-o '%s' must end in .png", out);
    dhf_config cfg;
    dhf_config_defaults(&cfg);
    for (int i = 0; i < n_files; i++)
        if (dhf_config_load_file(&cfg, files[i]) != 0)
            return dhf_cli_fail("match");
    for (int i = 0; i < n_sets; i++)
        if (dhf_config_set(&cfg, sets[i]) != 0)
            return dhf_cli_usage_error("match", "%s", dhf_err_msg());
    if (cache)
        snprintf(cfg.cache_path, sizeof cfg.cache_path, "%s", cache);
    if (dhf_config_validate(&cfg) != 0 ||
        dhf_cli_apply_threads(threads >= 0 ? threads : cfg.threads) != 0)
        return dhf_cli_fail("match");
    if (!provider && !ckpt)
        return dhf_cli_usage_error("match", "give --checkpoint CKPT (or --provider)");

    dhf_provider prov;
    int prc = dhf_eval_open_provider(&cfg, provider, ckpt, &prov);
    if (prc == DHF_EVAL_BAD_REQUEST)
        return dhf_cli_usage_error("match", "%s", dhf_err_msg());
    if (prc != 0)
        return dhf_cli_fail("match");
    int rc = DHF_EXIT_USER;
    dhf_image ia = {0}, ib = {0};
    dhf_descriptors da = {0}, db = {0};
    double *src = NULL, *dst = NULL;
    dhf_match_result *res = NULL;
    cJSON *doc = NULL;
    if (describe(&prov, &cfg, imgs[0], &ia, &da) != 0 || describe(&prov, &cfg, imgs[1], &ib, &db) != 0)
        goto done;
    int n = grid * grid;
    src = malloc((size_t)n * 2 * sizeof *src);
    dst = malloc((size_t)n * 2 * sizeof *dst);
    res = malloc((size_t)n * sizeof *res);
    if (!src || !dst || !res) {
        dhf_err_set("out of memory");
        goto done;
    }
    for (int y = 0; y < grid; y++)
        for (int x = 0; x < grid; x++) {
            src[2 * (y * grid + x)] = (x + 0.5) * ia.width / grid - 0.5;
            src[2 * (y * grid + x) + 1] = (y + 0.5) * ia.height / grid - 0.5;
        }
    dhf_match_opts mo;
    dhf_match_opts_default(&mo);
    mo.load_size = cfg.load_resolution;
    if (dhf_matcher_parse(cfg.matcher, &mo.matcher) != 0)
        goto done;
    mo.temperature = cfg.softmax_temperature;
    mo.window_radius = cfg.window_radius;
    dhf_desc_map ma = {da.data, da.c, da.h, da.w, ia.width, ia.height};
    dhf_desc_map mb = {db.data, db.c, db.h, db.w, ib.width, ib.height};
    if (dhf_match_points(&mo, &ma, &mb, src, n, res) != 0)
        goto done;
    double mean = 0;
    doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "source", imgs[0]);
    cJSON_AddStringToObject(doc, "target", imgs[1]);
    cJSON_AddStringToObject(doc, "provider", prov.name);
    cJSON_AddStringToObject(doc, "description", prov.description);
    cJSON *pts = cJSON_AddArrayToObject(doc, "points");
    for (int i = 0; i < n; i++) {
        dst[2 * i] = res[i].x;
        dst[2 * i + 1] = res[i].y;
        mean += res[i].score / n;
        cJSON *p = cJSON_CreateObject();
        double s2[2] = {src[2 * i], src[2 * i + 1]}, d2[2] = {res[i].x, res[i].y};
        cJSON_AddItemToObject(p, "src_xy", cJSON_CreateDoubleArray(s2, 2));
        cJSON_AddItemToObject(p, "dst_xy", cJSON_CreateDoubleArray(d2, 2));
        cJSON_AddNumberToObject(p, "score", res[i].score);
        cJSON_AddItemToArray(pts, p);
    }
    char title[512];
    snprintf(title, sizeof title, "%.150s -> %.150s  [%.100s]", dhf_basename(imgs[0]),
             dhf_basename(imgs[1]), prov.name);
    dhf_pair_drawing dr = {.a = &ia, .b = &ib, .n = n, .a_xy = src, .b_xy = dst, .title = title};
    if (dhf_draw_pair(&dr, out) != 0)
        goto done;
    char json_path[4200];
    snprintf(json_path, sizeof json_path, "%.*s.json", (int)(ol - 4), out);
    char *text = cJSON_Print(doc);
    int wrc = text ? dhf_write_file_atomic(json_path, text, strlen(text)) : dhf_err_set("out of memory");
    free(text);
    if (wrc != 0)
        goto done;
    printf("wrote %s (and %s): %d correspondences, mean cosine %.3f [%s]\n", out, json_path, n,
           mean, prov.name);
    rc = DHF_EXIT_OK;
done:
    if (rc != DHF_EXIT_OK)
        dhf_cli_fail("match");
    cJSON_Delete(doc);
    free(src);
    free(dst);
    free(res);
    free(da.data);
    free(db.data);
    dhf_image_free(&ia);
    dhf_image_free(&ib);
    dhf_provider_close(&prov);
    return rc;
}
