/* cmd_eval.c — `dhf eval`: descriptors from a provider over a pair set, keypoint
 * transfer, PCK, and the reports (predictions.jsonl, results.json, results.md).
 * Providers are a table below: adding one (layer:N, concat, a checkpoint) is one
 * entry with its factory. */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "eval/dataset.h"
#include "eval/evaluate.h"
#include "eval/provider_image.h"
#include "cache/provider_cache.h"
#include "train/hyperfeature_provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *name;            /* before the ':' of --provider */
    dhf_provider_open_fn open;
    const char *help;
} provider_entry;

static const provider_entry providers[] = {
    {"image", dhf_provider_image_open,
     "descriptors from pixels: standardised colour + position (image, image:patch); no model"},
    {"layer", dhf_provider_layer_open, "raw cached diffusion features of one layer: layer:N[@LABEL] (SD-Layer-4 = layer:4)"},
    {"concat", dhf_provider_concat_open, "all cached layers of one step resized + concatenated: concat[:@LABEL] (SD-Concat-All)"},
    {"hyperfeatures", dhf_provider_hyperfeatures_open, "a trained aggregation network over the cached features: --checkpoint CKPT"},
    {"pruned", dhf_provider_pruned_open, "SD-Layer-Pruned: the raw map with the checkpoint's largest mixing weight: --checkpoint CKPT"},
    {"bottleneck", dhf_provider_bottleneck_open, "Ours-Pruned: the checkpoint's bottleneck on one map, bottleneck[:L@LABEL] (default: the largest mixing weight): --checkpoint CKPT"},
    {NULL, NULL, NULL},
};

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
    for (const provider_entry *p = providers; p->name; p++)
        fprintf(f, "  %-10s %s\n", p->name, p->help);
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

    /* Split: SPair trn|val|test; CUB train|test (the config's "trn" means train). */
    bool cub = strcmp(cfg.dataset, "cub") == 0;
    const char *split = split_opt ? split_opt : cfg.split;
    if (cub && strcmp(split, "trn") == 0)
        split = "train";
    if (cub ? !(strcmp(split, "train") == 0 || strcmp(split, "test") == 0)
            : !(strcmp(split, "trn") == 0 || strcmp(split, "val") == 0 || strcmp(split, "test") == 0))
        return dhf_cli_usage_error("eval", "--split: expected %s for %s, got '%s'", cub ? "train|test" : "trn|val|test",
                                   cfg.dataset, split);

    /* Evaluation options from the configuration. */
    dhf_eval_opts opts;
    dhf_eval_opts_default(&opts);
    opts.match.load_size = cfg.load_resolution;
    if (dhf_resize_policy_parse(cfg.resize, &opts.match.resize) != 0 ||
        dhf_matcher_parse(cfg.matcher, &opts.match.matcher) != 0)
        return dhf_cli_fail("eval");
    opts.match.temperature = cfg.softmax_temperature;
    opts.match.window_radius = cfg.window_radius;
    if (cfg.alphas.n > DHF_PCK_MAX_ALPHAS)
        return dhf_cli_usage_error("eval", "eval.alphas: at most %d values", DHF_PCK_MAX_ALPHAS);
    opts.n_alphas = cfg.alphas.n;
    memcpy(opts.alphas, cfg.alphas.v, (size_t)cfg.alphas.n * sizeof(double));
    if (dhf_pck_check_alphas(opts.alphas, opts.n_alphas) != 0)
        return dhf_cli_usage_error("eval", "%s", dhf_err_msg());
    opts.dump_predictions = dump && cfg.dump_predictions;
    opts.progress = !quiet;
    opts.match.mutual = mutual;

    /* Provider: "name[:arg]" looked up in the table. */
    char pname[64];
    /* --checkpoint alone means the trained network; nothing at all, the image baseline. */
    if (!provider_spec)
        provider_spec = checkpoint ? "hyperfeatures" : "image";
    const char *colon = strchr(provider_spec, ':');
    size_t plen = colon ? (size_t)(colon - provider_spec) : strlen(provider_spec);
    if (plen == 0 || plen >= sizeof pname)
        return dhf_cli_usage_error("eval", "--provider: expected NAME[:ARG], got '%s'", provider_spec);
    memcpy(pname, provider_spec, plen);
    pname[plen] = '\0';
    const provider_entry *pe = providers;
    while (pe->name && strcmp(pe->name, pname) != 0)
        pe++;
    if (!pe->name) {
        char known[256] = "";
        for (const provider_entry *p = providers; p->name; p++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", known[0] ? ", " : "", p->name);
        return dhf_cli_usage_error("eval", "--provider: unknown provider '%s' (known: %s)", pname, known);
    }

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
    opts.out_dir = out_dir;

    /* Data. */
    dhf_dataset ds;
    memset(&ds, 0, sizeof ds);
    dhf_dataset_spec spec = {.dataset = cfg.dataset, .root = cfg.data_root, .split = split,
                             .pair_list = cfg.test_path[0] ? cfg.test_path : NULL,
                             .pairs_per_category = cfg.pairs_per_category, .seed = (uint64_t)cfg.subset_seed};
    if (dhf_dataset_open(&spec, &ds) != 0 || dhf_dataset_resolve_images(&ds) != 0) {
        dhf_dataset_free(&ds);
        return dhf_cli_fail("eval");
    }

    dhf_provider prov;
    dhf_provider_args pargs = {.arg = colon ? colon + 1 : NULL, .checkpoint = checkpoint, .cfg = &cfg};
    if (pe->open(&pargs, &prov) != 0) {
        dhf_dataset_free(&ds);
        return dhf_cli_fail("eval");
    }

    /* The resolved configuration goes next to the results and into the protocol. */
    int rc = DHF_EXIT_OK;
    cJSON *extra = cJSON_CreateObject();
    char *cfg_json = dhf_config_to_json(&cfg);
    if (extra && cfg_json)
        cJSON_AddItemToObject(extra, "config", cJSON_Parse(cfg_json));
    free(cfg_json);
    opts.extra_protocol = extra;
    if (dhf_mkdir_p(out_dir) != 0 || dhf_config_write_resolved(&cfg, out_dir) != 0) {
        rc = dhf_cli_fail("eval");
    } else {
        dhf_eval_result res;
        if (dhf_eval_run(&ds, &prov, &opts, &res) != 0) {
            rc = dhf_cli_fail("eval");
        } else {
            printf("%s  [%s %s, %s, %s] -> %s/results.json\n", res.summary, ds.name, ds.split, ds.subset.name,
                   prov.name, out_dir);
            dhf_eval_result_free(&res);
        }
    }
    cJSON_Delete(extra);
    dhf_provider_close(&prov);
    dhf_dataset_free(&ds);
    return rc;
}
