/* cmd_pck.c — `dhf pck`: every PCK metric recomputed from a predictions.jsonl
 * (dhf's own or any method's, same schema), under the same protocol as
 * `dhf eval`; optionally checked bit for bit against a results.json. */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "eval/bootstrap.h"
#include "eval/evaluate.h"
#include "eval/predictions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dhf pck --predictions FILE [-o OUTDIR] [--alphas A,B,...] [--check RESULTS.json]\n"
            "               [--bootstrap B [--versus OTHER.jsonl] [--seed S]] [--threads N]\n\n"
            "Recomputes every metric of `dhf eval` (pooled per keypoint, per image, per category,\n"
            "breakdowns) from a predictions.jsonl: distances and thresholds are recomputed from\n"
            "gt_xy, pred_xy, target_size and target_bbox (docs/EVAL.md).\n\n"
            "  --predictions FILE  the prediction dump (one JSON object per keypoint)\n"
            "  -o OUTDIR           write OUTDIR/results.json and OUTDIR/results.md; without it the\n"
            "                      Markdown report goes to stdout\n"
            "  --alphas A,B,...    PCK thresholds (default: those the file was written with, else\n"
            "                      the configuration default 0.01,0.05,0.1,0.15)\n"
            "  --check FILE        compare the metrics with FILE's \"metrics\" (a results.json);\n"
            "                      exit 1 unless every number is identical\n"
            "  --bootstrap B       95%% intervals of PCK@0.1 (img and bbox, pooled per keypoint)\n"
            "                      from B resamples of whole pairs with replacement\n"
            "  --versus FILE       with --bootstrap: a paired bootstrap of this file's PCK minus\n"
            "                      FILE's, on the same pairs (same pair ids, keypoints, order)\n"
            "  --seed S            the resampling seed (default 0): same seed, same interval\n"
            "  --threads N         accepted for uniformity (nothing here is threaded)\n");
}

static int parse_alphas(const char *s, double *out, int *n)
{
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p || (*end && *end != ','))
            return dhf_err_set("--alphas: expected numbers separated by commas, got '%s'", s);
        if (*n == DHF_PCK_MAX_ALPHAS)
            return dhf_err_set("--alphas: at most %d values", DHF_PCK_MAX_ALPHAS);
        out[(*n)++] = v;
        p = *end ? end + 1 : end;
    }
    return dhf_pck_check_alphas(out, *n);
}

static int check_against(const char *path, const dhf_pck_report *r)
{
    char *text = NULL;
    if (dhf_read_file(path, &text, NULL) != 0)
        return -1;
    cJSON *doc = cJSON_Parse(text);
    free(text);
    if (!doc)
        return dhf_err_set("%s: not valid JSON", path);
    const cJSON *theirs = cJSON_GetObjectItemCaseSensitive(doc, "metrics");
    cJSON *ours = dhf_pck_report_to_json(r);
    int rc;
    if (!theirs)
        rc = dhf_err_set("%s: no \"metrics\" object", path);
    else if (!ours)
        rc = -1;
    else if (dhf_eval_compare_metrics(ours, theirs) != 0)
        rc = dhf_err_wrap("recomputed vs %s", path);
    else
        rc = 0;
    cJSON_Delete(ours);
    cJSON_Delete(doc);
    return rc;
}

/* --bootstrap: intervals of PCK@0.1 (img, bbox), printed and as JSON; with `versus`,
 * the paired difference of the two files on the same pairs. */
static int bootstrap(const dhf_predictions *p, const char *path, const char *versus, int B,
                     unsigned long long seed, cJSON **out)
{
    dhf_predictions q = { 0 };
    dhf_boot_pair *a = calloc((size_t)p->n_pairs, sizeof *a);
    dhf_boot_pair *b = calloc((size_t)p->n_pairs, sizeof *b);
    cJSON *o = cJSON_CreateObject();
    int rc = -1;
    if (!a || !b || !o) {
        dhf_err_set("out of memory");
        goto done;
    }
    if (versus) {
        if (dhf_predictions_load(versus, &q) != 0)
            goto done;
        bool same = q.n_pairs == p->n_pairs && q.n_kps == p->n_kps;
        for (size_t k = 0; same && k < p->n_kps; k++)
            same = q.kps[k].pair == p->kps[k].pair && q.kps[k].gt[0] == p->kps[k].gt[0] &&
                   q.kps[k].gt[1] == p->kps[k].gt[1];
        if (!same) {
            dhf_err_set("%s and %s: not the same pairs and keypoints in the same order (a "
                        "paired bootstrap needs both methods on one pair set)", path, versus);
            goto done;
        }
    }
    cJSON_AddNumberToObject(o, "resamples", B);
    cJSON_AddNumberToObject(o, "seed", (double)seed);
    cJSON_AddNumberToObject(o, "level", 0.95);
    cJSON_AddNumberToObject(o, "alpha", 0.1);
    cJSON_AddStringToObject(o, "unit", "pairs resampled with replacement; PCK pooled per keypoint");
    for (int kind = 0; kind < DHF_PCK_NKINDS; kind++) {
        dhf_boot_interval ci;
        dhf_boot_pairs_from_kps(p->kps, p->n_kps, p->n_pairs, kind, 0.1, a);
        if (dhf_bootstrap_pck(a, p->n_pairs, B, 0.95, seed, &ci) != 0)
            goto done;
        printf("PCK@0.1 %-4s %6.2f  95%% interval [%.2f, %.2f] (%d pair resamples)\n",
               dhf_pck_kind_names[kind], 100 * ci.estimate, 100 * ci.lo, 100 * ci.hi, B);
        cJSON *k = cJSON_AddObjectToObject(o, dhf_pck_kind_names[kind]);
        if (!k) {
            dhf_err_set("out of memory");
            goto done;
        }
        dhf_json_add_exact(k, "pck", ci.estimate);
        dhf_json_add_exact(k, "lo", ci.lo);
        dhf_json_add_exact(k, "hi", ci.hi);
        if (versus) {
            double le0 = 0;
            dhf_boot_pairs_from_kps(q.kps, q.n_kps, q.n_pairs, kind, 0.1, b);
            if (dhf_bootstrap_pck_diff(a, b, p->n_pairs, B, 0.95, seed, &ci, &le0) != 0)
                goto done;
            printf("  minus %s: %+.2f  95%% interval [%+.2f, %+.2f], %.4f of resamples <= 0\n",
                   versus, 100 * ci.estimate, 100 * ci.lo, 100 * ci.hi, le0);
            cJSON *d = cJSON_AddObjectToObject(k, "difference");
            if (!d) {
                dhf_err_set("out of memory");
                goto done;
            }
            cJSON_AddStringToObject(d, "versus", versus);
            dhf_json_add_exact(d, "estimate", ci.estimate);
            dhf_json_add_exact(d, "lo", ci.lo);
            dhf_json_add_exact(d, "hi", ci.hi);
            dhf_json_add_exact(d, "fraction_le_0", le0);
        }
    }
    *out = o;
    o = NULL;
    rc = 0;
done:
    cJSON_Delete(o);
    if (versus)
        dhf_predictions_free(&q);
    free(a);
    free(b);
    return rc;
}

int dhf_cmd_pck(int argc, char **argv)
{
    const char *pred_path = NULL, *out_dir = NULL, *check = NULL, *versus = NULL;
    int boot = 0;
    unsigned long long seed = 0;
    double alphas[DHF_PCK_MAX_ALPHAS];
    int n_alphas = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dhf_cli_is_help(a)) {
            usage(stdout);
            return DHF_EXIT_OK;
        }
        if (i + 1 >= argc)
            return dhf_cli_usage_error("pck", a[0] == '-' ? "%s needs a value" : "unexpected argument '%s'", a);
        const char *v = argv[++i];
        if (strcmp(a, "--predictions") == 0)
            pred_path = v;
        else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0)
            out_dir = v;
        else if (strcmp(a, "--check") == 0)
            check = v;
        else if (strcmp(a, "--versus") == 0)
            versus = v;
        else if (strcmp(a, "--bootstrap") == 0 || strcmp(a, "--seed") == 0) {
            char *end = NULL;
            unsigned long long x = strtoull(v, &end, 10);
            if (end == v || *end || (a[2] == 'b' && (x < 1 || x > 10000000)))
                return dhf_cli_usage_error("pck", "%s: expected %s, got '%s'", a,
                                           a[2] == 'b' ? "a number of resamples 1..10000000"
                                                       : "a non-negative integer",
                                           v);
            if (a[2] == 'b')
                boot = (int)x;
            else
                seed = x;
        }
        else if (strcmp(a, "--alphas") == 0) {
            if (parse_alphas(v, alphas, &n_alphas) != 0)
                return dhf_cli_usage_error("pck", "%s", dhf_err_msg());
        } else if (strcmp(a, "--threads") == 0) {
            if (dhf_cli_parse_threads(v, &threads) != 0)
                return dhf_cli_usage_error("pck", "%s", dhf_err_msg());
        } else
            return dhf_cli_usage_error("pck", "unknown option '%s'", a);
    }
    if (!pred_path)
        return dhf_cli_usage_error("pck", "--predictions FILE is required");
    if (versus && !boot)
        return dhf_cli_usage_error("pck", "--versus needs --bootstrap B");

    dhf_predictions preds;
    if (dhf_predictions_load(pred_path, &preds) != 0)
        return dhf_cli_fail("pck");
    if (n_alphas == 0 && preds.n_alphas > 0) {
        n_alphas = preds.n_alphas;
        memcpy(alphas, preds.alphas, (size_t)n_alphas * sizeof *alphas);
    }
    if (n_alphas == 0) {
        dhf_config cfg;
        dhf_config_defaults(&cfg);
        n_alphas = cfg.alphas.n < DHF_PCK_MAX_ALPHAS ? cfg.alphas.n : DHF_PCK_MAX_ALPHAS;
        memcpy(alphas, cfg.alphas.v, (size_t)n_alphas * sizeof *alphas);
    }

    dhf_pck_report rep;
    if (dhf_pck_compute(preds.kps, preds.n_kps, preds.n_pairs, (const char *const *)preds.categories,
                        preds.n_categories, alphas, n_alphas, &rep) != 0) {
        dhf_err_wrap("%s", pred_path);
        dhf_predictions_free(&preds);
        return dhf_cli_fail("pck");
    }
    cJSON *boot_json = NULL;
    if (boot && bootstrap(&preds, pred_path, versus, boot, seed, &boot_json) != 0) {
        dhf_predictions_free(&preds);
        dhf_pck_report_free(&rep);
        return dhf_cli_fail("pck");
    }
    dhf_predictions_free(&preds);

    int rc = DHF_EXIT_OK;
    char summary[512];
    dhf_eval_summary_line(&rep, summary, sizeof summary);
    if (out_dir) {
        cJSON *protocol = dhf_eval_protocol_common(alphas, n_alphas);
        if (protocol) {
            cJSON_AddStringToObject(protocol, "recomputed_from", pred_path);
            cJSON_AddStringToObject(protocol, "keypoints", "every line of the predictions file");
        }
        if (protocol && boot_json) {
            cJSON_AddItemToObject(protocol, "bootstrap", boot_json);
            boot_json = NULL;
        }
        if (!protocol || dhf_eval_write_results(out_dir, &rep, protocol, NULL, "dhf pck — recomputed from predictions") != 0)
            rc = dhf_cli_fail("pck");
        else
            printf("%s -> %s/results.json\n", summary, out_dir);
        cJSON_Delete(protocol);
    } else {
        printf("%s\n\n", summary);
        if (dhf_pck_report_write_md(&rep, 0.1, stdout) != 0)
            rc = dhf_cli_fail("pck");
    }
    if (rc == DHF_EXIT_OK && check) {
        if (check_against(check, &rep) != 0)
            rc = dhf_cli_fail("pck");
        else
            printf("metrics identical to %s\n", check);
    }
    cJSON_Delete(boot_json);
    dhf_pck_report_free(&rep);
    return rc;
}
