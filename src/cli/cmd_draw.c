/* cmd_draw.c — `dhf draw PREDICTIONS.jsonl --pair ID`: one evaluated pair drawn (its
 * source keypoints, the predicted and the true targets; experiment/pair_drawing.h), so
 * a user can see why a pair failed. The images come from the dataset the evaluation
 * read (its results.json and config.resolved.yaml beside the predictions). */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/image.h"
#include "eval/dataset.h"
#include "experiment/pair_drawing.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dhf draw PREDICTIONS.jsonl --pair ID -o PAIR.png [--alpha A] [--data DIR]\n\n"
            "Draws one pair of a dhf eval run: the source image with its keypoints, the target\n"
            "with each prediction (dot) and true position (ring) in the keypoint's colour,\n"
            "joined by a line, green when the prediction is within the PCK@A img threshold\n"
            "(default A = 0.1), red otherwise. ID is the pair_id of predictions.jsonl (or its\n"
            "0-based index). The dataset is the evaluation's (results.json beside the file);\n"
            "--data points at another copy of it.\n");
}

/* "dir/of/file" -> the file's folder */
static void folder_of(const char *path, char *out, size_t n)
{
    snprintf(out, n, "%s", path);
    char *s = strrchr(out, '/');
    if (s)
        *s = '\0';
    else
        snprintf(out, n, ".");
}

int dhf_cmd_draw(int argc, char **argv)
{
    const char *pred = NULL, *pair = NULL, *out = NULL, *data = NULL;
    double alpha = 0.1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dhf_cli_is_help(a)) {
            usage(stdout);
            return DHF_EXIT_OK;
        }
        if (a[0] != '-') {
            if (pred)
                return dhf_cli_usage_error("draw", "unexpected argument '%s'", a);
            pred = a;
            continue;
        }
        if (i + 1 >= argc)
            return dhf_cli_usage_error("draw", "%s needs a value", a);
        const char *v = argv[++i];
        if (strcmp(a, "--pair") == 0)
            pair = v;
        else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)
            out = v;
        else if (strcmp(a, "--data") == 0)
            data = v;
        else if (strcmp(a, "--alpha") == 0) {
            char *end = NULL;
            alpha = strtod(v, &end);
            if (!*v || *end || !(alpha > 0 && alpha <= 1))
                return dhf_cli_usage_error("draw", "--alpha: expected a number in (0, 1], got '%s'", v);
        } else
            return dhf_cli_usage_error("draw", "unknown option '%s'", a);
    }
    if (!pred || !pair || !out)
        return dhf_cli_usage_error("draw", "PREDICTIONS.jsonl, --pair ID and -o PAIR.png are required");

    /* the evaluation's dataset */
    char dir[4096], path[4300];
    folder_of(pred, dir, sizeof dir);
    dhf_config cfg;
    dhf_config_defaults(&cfg);
    snprintf(path, sizeof path, "%s/config.resolved.yaml", dir);
    if (dhf_config_load_file(&cfg, path) != 0)
        return dhf_cli_fail("draw");
    snprintf(path, sizeof path, "%s/results.json", dir);
    char *text = NULL;
    size_t len = 0;
    if (dhf_read_file(path, &text, &len) != 0)
        return dhf_cli_fail("draw");
    cJSON *res = cJSON_Parse(text);
    free(text);
    const cJSON *split = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(res, "protocol"), "split");
    char split_s[16];
    snprintf(split_s, sizeof split_s, "%s", cJSON_IsString(split) ? split->valuestring : cfg.split);
    cJSON_Delete(res);
    dhf_dataset ds;
    memset(&ds, 0, sizeof ds);
    dhf_dataset_spec spec = {.dataset = cfg.dataset, .root = data ? data : cfg.data_root,
                             .split = split_s, .pair_list = cfg.test_path[0] ? cfg.test_path : NULL,
                             .pairs_per_category = cfg.pairs_per_category,
                             .seed = (uint64_t)cfg.subset_seed};
    if (dhf_dataset_open(&spec, &ds) != 0) {
        dhf_dataset_free(&ds);
        return dhf_cli_fail("draw");
    }
    /* the pair's predictions */
    FILE *f = fopen(pred, "r");
    if (!f) {
        dhf_dataset_free(&ds);
        dhf_err_set("%s: cannot open", pred);
        return dhf_cli_fail("draw");
    }
    int cap = 256, n = 0, rc = DHF_EXIT_USER;
    double *src = malloc((size_t)cap * 2 * sizeof *src), *prd = malloc((size_t)cap * 2 * sizeof *prd);
    double *gt = malloc((size_t)cap * 2 * sizeof *gt);
    int *ok = malloc((size_t)cap * sizeof *ok);
    char pair_id[512] = "", akey[32];
    snprintf(akey, sizeof akey, "%g", alpha);
    char *line = NULL;
    size_t lcap = 0;
    dhf_image ia = {0}, ib = {0};
    char *endp = NULL;
    long index = strtol(pair, &endp, 10);
    bool by_index = *pair && !*endp;
    while (getline(&line, &lcap, f) > 0 && n < cap) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "pair_id");
        const cJSON *pi = cJSON_GetObjectItemCaseSensitive(o, "pair");
        bool mine = cJSON_IsString(id) && (by_index ? cJSON_IsNumber(pi) && pi->valueint == index
                                                    : strcmp(id->valuestring, pair) == 0);
        if (mine) {
            snprintf(pair_id, sizeof pair_id, "%s", id->valuestring);
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "src_xy");
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pred_xy");
            const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "gt_xy");
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "distance");
            const cJSON *th = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(o, "threshold_img"), akey);
            if (cJSON_GetArraySize(s) == 2 && cJSON_GetArraySize(p) == 2 && cJSON_GetArraySize(g) == 2) {
                for (int k = 0; k < 2; k++) {
                    src[2 * n + k] = cJSON_GetArrayItem(s, k)->valuedouble;
                    prd[2 * n + k] = cJSON_GetArrayItem(p, k)->valuedouble;
                    gt[2 * n + k] = cJSON_GetArrayItem(g, k)->valuedouble;
                }
                ok[n] = cJSON_IsNumber(d) && cJSON_IsNumber(th) && d->valuedouble <= th->valuedouble;
                n++;
            }
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    if (n == 0) {
        dhf_err_set("%s: no keypoints of pair '%s'%s", pred, pair,
                    akey[0] ? "" : "");
        goto done;
    }
    const dhf_pair *pp = NULL;
    for (size_t i = 0; i < ds.n_pairs && !pp; i++)
        if (strcmp(ds.pairs[i].id, pair_id) == 0)
            pp = &ds.pairs[i];
    if (!pp) {
        dhf_err_set("pair '%s' is not in %s (%s, split %s)", pair_id, spec.root, cfg.dataset, split_s);
        goto done;
    }
    if (dhf_image_load(pp->src_path, &ia) != 0 || dhf_image_load(pp->trg_path, &ib) != 0)
        goto done;
    int correct = 0;
    for (int i = 0; i < n; i++)
        correct += ok[i];
    char title[700];
    snprintf(title, sizeof title, "%.300s: %d of %d keypoints within PCK@%g img", pair_id, correct,
             n, alpha);
    dhf_pair_drawing dr = {.a = &ia, .b = &ib, .n = n, .a_xy = src, .b_xy = prd, .b_true_xy = gt,
                           .correct = ok, .title = title};
    if (dhf_draw_pair(&dr, out) != 0)
        goto done;
    printf("wrote %s: %s, %d of %d keypoints within PCK@%g img\n", out, pair_id, correct, n, alpha);
    rc = DHF_EXIT_OK;
done:
    if (rc != DHF_EXIT_OK)
        dhf_cli_fail("draw");
    free(src);
    free(prd);
    free(gt);
    free(ok);
    dhf_image_free(&ia);
    dhf_image_free(&ib);
    dhf_dataset_free(&ds);
    return rc;
}
