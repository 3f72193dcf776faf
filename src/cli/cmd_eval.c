/* cmd_eval.c — `dhf eval`: the command line over experiment/eval_command.h
 * (descriptors from a provider over a pair set, keypoint transfer, PCK, and the
 * reports: predictions.jsonl, results.json, results.md). */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "experiment/eval_command.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dhf eval [CONFIG.yaml ...] [--data DIR] [--dataset spair|cub] [--split S]\n"
            "                [--pairs FILE] [--pairs-per-category N] [--seed S]\n"
            "                [--provider NAME[:ARG]] [--checkpoint CKPT] [--set key=value ...]\n"
            "                [-o OUTDIR] [--no-predictions] [--mutual] [--quiet] [--threads N]\n\n"
            "Transfers every keypoint of every pair with the paper's nearest-neighbour\n"
            "procedure and reports PCK@alpha (docs/EVAL.md). Writes OUTDIR/results.json,\n"
            "OUTDIR/results.md, OUTDIR/predictions.jsonl and OUTDIR/config.resolved.yaml,\n"
            "and prints a one-line summary.\n\n"
            "  CONFIG.yaml             configuration files (defaults < files < options/--set)\n"
            "  --data DIR              dataset folder (data_root)\n"
            "  --dataset spair|cub     dataset format (dataset)\n"
            "  --split S               spair: trn|val|test; cub: train|test (split)\n"
            "  --pairs FILE            pair list: the paper's JSON or a text list of pair ids\n"
            "                          (spair), 'src trg' lines (cub) (test_path)\n"
            "  --pairs-per-category N  draw N pairs per category (pairs_per_category)\n"
            "  --seed S                seed of that draw (subset_seed)\n"
            "  --provider NAME[:ARG]   descriptor source (default: hyperfeatures with\n"
            "                          --checkpoint, else image)\n"
            "  --checkpoint CKPT       checkpoint for providers that take one\n"
            "  --set key=value         any configuration key, e.g. eval.alphas=[0.05,0.1]\n"
            "                          load_resolution=224 eval.resize=pad eval.matcher=soft_argmax\n"
            "  -o OUTDIR               output folder (default <output_dir>/eval-<dataset>-<split>-<time>)\n"
            "  --no-predictions        do not write predictions.jsonl\n"
            "  --mutual                mark mutual nearest neighbours (within 1 load pixel) in\n"
            "                          predictions.jsonl, for visualisation; PCK is unchanged\n"
            "  --quiet                 no progress bar\n"
            "  --threads N             threads (default: all cores)\n\n"
            "Providers:\n");
    dhf_eval_providers_help(f);
}

/* Options without a value. */
static bool is_flag(const char *a)
{
    return strcmp(a, "--no-predictions") == 0 || strcmp(a, "--quiet") == 0 || strcmp(a, "--mutual") == 0;
}

/* "--opt value" with the value present. */
static int need_value(int argc, char **argv, int i)
{
    if (i + 1 >= argc)
        return dhf_cli_usage_error("eval", "%s needs a value", argv[i]);
    return 0;
}

static int set_key(dhf_config *cfg, const char *key, const char *value)
{
    char buf[DHF_CFG_STR * 2 + 128];
    /* Quote strings so YAML never reinterprets a path ("no", "1e3", "[x]"). */
    const dhf_cfg_key *k = dhf_config_find_key(key);
    if (k && k->type == DHF_CFG_T_STRING) {
        char esc[DHF_CFG_STR * 2];
        size_t j = 0;
        for (const char *s = value; *s && j + 2 < sizeof esc; s++) {
            if (*s == '"' || *s == '\\')
                esc[j++] = '\\';
            esc[j++] = *s;
        }
        esc[j] = '\0';
        snprintf(buf, sizeof buf, "%s=\"%s\"", key, esc);
    } else {
        snprintf(buf, sizeof buf, "%s=%s", key, value);
    }
    return dhf_config_set(cfg, buf);
}

int dhf_cmd_eval(int argc, char **argv)
{
    dhf_config cfg;
    dhf_config_defaults(&cfg);
    const char *provider_spec = NULL, *checkpoint = NULL, *out_dir = NULL, *split_opt = NULL;
    int threads = -1;
    bool dump = true, quiet = false, mutual = false;

    /* Pass 1: configuration files, so options and --set override them in order. */
    for (int i = 1; i < argc; i++) {
        if (dhf_cli_is_help(argv[i])) {
            usage(stdout);
            return DHF_EXIT_OK;
        }
        if (argv[i][0] == '-') {
            if (!is_flag(argv[i]))
                i++;   /* skip the option's value */
            continue;
        }
        if (dhf_config_load_file(&cfg, argv[i]) != 0)
            return dhf_cli_fail("eval");
    }
    /* Pass 2: options. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-')
            continue;
        if (strcmp(a, "--no-predictions") == 0) {
            dump = false;
            continue;
        }
        if (strcmp(a, "--mutual") == 0) {
            mutual = true;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            quiet = true;
            setenv("DHF_PROGRESS", "0", 1); /* the dataset loaders report progress too */
            continue;
        }
        static const char *const with_value[] = {"--data", "--dataset", "--split", "--pairs",
                                                 "--pairs-per-category", "--seed", "--provider",
                                                 "--checkpoint", "--set", "-o", "--out",
                                                 "--threads", NULL};
        bool known = false;
        for (int k = 0; with_value[k] && !known; k++)
            known = strcmp(a, with_value[k]) == 0;
        if (!known)
            return dhf_cli_usage_error("eval", "unknown option '%s'", a);
        if (need_value(argc, argv, i))
            return DHF_EXIT_USAGE;
        const char *v = argv[++i];
        int rc = 0;
        if (strcmp(a, "--data") == 0)
            rc = set_key(&cfg, "data_root", v);
        else if (strcmp(a, "--dataset") == 0)
            rc = set_key(&cfg, "dataset", v);
        else if (strcmp(a, "--split") == 0)
            split_opt = v;   /* CUB's train|test are not config values: checked below */
        else if (strcmp(a, "--pairs") == 0)
            rc = set_key(&cfg, "test_path", v);
        else if (strcmp(a, "--pairs-per-category") == 0)
            rc = set_key(&cfg, "pairs_per_category", v);
        else if (strcmp(a, "--seed") == 0)
            rc = set_key(&cfg, "subset_seed", v);
        else if (strcmp(a, "--provider") == 0)
            provider_spec = v;
        else if (strcmp(a, "--checkpoint") == 0)
            checkpoint = v;
        else if (strcmp(a, "--set") == 0)
            rc = dhf_config_set(&cfg, v);
        else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0)
            out_dir = v;
        else if (strcmp(a, "--threads") == 0) {
            if (dhf_cli_parse_threads(v, &threads) != 0)
                return dhf_cli_usage_error("eval", "%s", dhf_err_msg());
        } else
            return dhf_cli_usage_error("eval", "unknown option '%s'", a);
        if (rc != 0)
            return dhf_cli_usage_error("eval", "%s: %s", a, dhf_err_msg());
    }
    if (dhf_config_validate(&cfg) != 0)
        return dhf_cli_fail("eval");
    if (dhf_cli_apply_threads(threads >= 0 ? threads : cfg.threads) != 0)
        return dhf_cli_fail("eval");

    const char *split = dhf_eval_split(&cfg, split_opt);
    if (!split)
        return dhf_cli_usage_error("eval", "%s", dhf_err_msg());

    /* Output folder. */
    char out_buf[4096];
    if (!out_dir) {
        char stamp[32];
        time_t now = time(NULL);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
        char leaf[DHF_CFG_STR + 128];
        if (cfg.run_name[0])
            snprintf(leaf, sizeof leaf, "%s", cfg.run_name);
        else
            snprintf(leaf, sizeof leaf, "eval-%s-%s-%s", cfg.dataset, split, stamp);
        if (dhf_path_join(out_buf, sizeof out_buf, cfg.output_dir, leaf) != 0)
            return dhf_cli_fail("eval");
        out_dir = out_buf;
    }
    dhf_eval_request rq = {.provider = provider_spec, .checkpoint = checkpoint, .split = split,
                           .out_dir = out_dir, .dump_predictions = dump, .mutual = mutual,
                           .progress = !quiet};
    dhf_eval_result res;
    char label[512];
    int rc = dhf_eval_command(&cfg, &rq, &res, label, sizeof label);
    if (rc == DHF_EVAL_BAD_REQUEST)
        return dhf_cli_usage_error("eval", "%s", dhf_err_msg());
    if (rc != 0)
        return dhf_cli_fail("eval");
    printf("%s  [%s] -> %s/results.json\n", res.summary, label, out_dir);
    dhf_eval_result_free(&res);
    return DHF_EXIT_OK;
}
