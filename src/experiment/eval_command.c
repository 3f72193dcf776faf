/* eval_command.c — `dhf eval` as a library call (eval_command.h). Providers are a
 * table below: adding one (layer:N, concat, a checkpoint) is one entry with its
 * factory. */
#include "experiment/eval_command.h"

#include "core/error.h"
#include "core/fsutil.h"
#include "eval/dataset.h"
#include "eval/provider_image.h"
#include "cache/provider_cache.h"
#include "extract/vit_provider.h"
#include "train/hyperfeature_provider.h"

#include <stdlib.h>
#include <string.h>

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
    {"dino", dhf_provider_dino_open, "DINO baseline: keys of blocks[vit.dino_layer] at stride vit.dino_stride, dino[:PRESET_OR_DIR] (weights: vit.dino_weights)"},
    {"dinov2", dhf_provider_dinov2_open, "DINOv2 baseline: tokens of blocks[vit.dinov2_layer], dinov2[:PRESET_OR_DIR] (weights: vit.dinov2_weights)"},
    {NULL, NULL, NULL},
};

void dhf_eval_providers_help(FILE *f)
{
    for (const provider_entry *p = providers; p->name; p++)
        fprintf(f, "  %-10s %s\n", p->name, p->help);
}

const char *dhf_eval_split(const dhf_config *cfg, const char *split)
{
    bool cub = strcmp(cfg->dataset, "cub") == 0;
    if (!split)
        split = cfg->split;
    if (cub && strcmp(split, "trn") == 0)
        split = "train";
    if (cub ? !(strcmp(split, "train") == 0 || strcmp(split, "test") == 0)
            : !(strcmp(split, "trn") == 0 || strcmp(split, "val") == 0 || strcmp(split, "test") == 0)) {
        dhf_err_set("--split: expected %s for %s, got '%s'", cub ? "train|test" : "trn|val|test",
                    cfg->dataset, split);
        return NULL;
    }
    return split;
}

/* "name[:arg]" looked up in the table; *arg points after the ':' (or NULL). */
static const provider_entry *find_provider(const char *spec, const char **arg)
{
    const char *colon = strchr(spec, ':');
    size_t plen = colon ? (size_t)(colon - spec) : strlen(spec);
    *arg = colon ? colon + 1 : NULL;
    if (plen == 0) {
        dhf_err_set("--provider: expected NAME[:ARG], got '%s'", spec);
        return NULL;
    }
    for (const provider_entry *p = providers; p->name; p++)
        if (strlen(p->name) == plen && strncmp(p->name, spec, plen) == 0)
            return p;
    char known[256] = "";
    for (const provider_entry *p = providers; p->name; p++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", known[0] ? ", " : "",
                 p->name);
    dhf_err_set("--provider: unknown provider '%.*s' (known: %s)", (int)plen, spec, known);
    return NULL;
}

int dhf_eval_open_provider(const dhf_config *cfg, const char *spec, const char *checkpoint,
                           dhf_provider *out)
{
    if (!spec)
        spec = checkpoint ? "hyperfeatures" : "image";
    const char *arg = NULL;
    const provider_entry *pe = find_provider(spec, &arg);
    if (!pe)
        return DHF_EVAL_BAD_REQUEST;
    dhf_provider_args pa = {.arg = arg, .checkpoint = checkpoint, .cfg = cfg};
    return pe->open(&pa, out);
}

/* The evaluator's options from the configuration. */
static int eval_opts(const dhf_config *cfg, const dhf_eval_request *rq, dhf_eval_opts *o)
{
    dhf_eval_opts_default(o);
    o->match.load_size = cfg->load_resolution;
    if (dhf_resize_policy_parse(cfg->resize, &o->match.resize) != 0 ||
        dhf_matcher_parse(cfg->matcher, &o->match.matcher) != 0)
        return -1;
    o->match.temperature = cfg->softmax_temperature;
    o->match.window_radius = cfg->window_radius;
    if (cfg->alphas.n > DHF_PCK_MAX_ALPHAS)
        return dhf_err_set("eval.alphas: at most %d values", DHF_PCK_MAX_ALPHAS);
    o->n_alphas = cfg->alphas.n;
    memcpy(o->alphas, cfg->alphas.v, (size_t)cfg->alphas.n * sizeof(double));
    if (dhf_pck_check_alphas(o->alphas, o->n_alphas) != 0)
        return -1;
    o->dump_predictions = rq->dump_predictions && cfg->dump_predictions;
    o->progress = rq->progress;
    o->match.mutual = rq->mutual;
    o->out_dir = rq->out_dir;
    return 0;
}

int dhf_eval_command(const dhf_config *cfg, const dhf_eval_request *rq, dhf_eval_result *res,
                     char *label, size_t label_cap)
{
    memset(res, 0, sizeof *res);
    if (!rq->out_dir)
        return dhf_err_set("eval: no output folder");
    const char *split = dhf_eval_split(cfg, rq->split);
    if (!split)
        return DHF_EVAL_BAD_REQUEST;
    /* --checkpoint alone means the trained network; nothing at all, the image baseline */
    const char *spec = rq->provider ? rq->provider : rq->checkpoint ? "hyperfeatures" : "image";
    const char *parg = NULL;
    const provider_entry *pe = find_provider(spec, &parg);
    if (!pe)
        return DHF_EVAL_BAD_REQUEST;
    dhf_eval_opts opts;
    if (eval_opts(cfg, rq, &opts) != 0)
        return DHF_EVAL_BAD_REQUEST;

    dhf_dataset ds;
    memset(&ds, 0, sizeof ds);
    dhf_dataset_spec dspec = {.dataset = cfg->dataset, .root = cfg->data_root, .split = split,
                              .pair_list = cfg->test_path[0] ? cfg->test_path : NULL,
                              .pairs_per_category = cfg->pairs_per_category,
                              .seed = (uint64_t)cfg->subset_seed};
    if (dhf_dataset_open(&dspec, &ds) != 0 || dhf_dataset_resolve_images(&ds) != 0) {
        dhf_dataset_free(&ds);
        return -1;
    }
    dhf_provider prov;
    dhf_provider_args pargs = {.arg = parg, .checkpoint = rq->checkpoint, .cfg = cfg};
    if (pe->open(&pargs, &prov) != 0) {
        dhf_dataset_free(&ds);
        return -1;
    }

    /* the resolved configuration goes next to the results and into the protocol */
    int rc = -1;
    cJSON *extra = cJSON_CreateObject();
    char *cfg_json = dhf_config_to_json(cfg);
    if (!extra || !cfg_json) {
        dhf_err_set("out of memory");
        goto done;
    }
    cJSON_AddItemToObject(extra, "config", cJSON_Parse(cfg_json));
    opts.extra_protocol = extra;
    /* a folder this run made goes again when the run fails: no half-filled results */
    bool made_dir = !dhf_path_exists(rq->out_dir);
    if (dhf_mkdir_p(rq->out_dir) != 0 || dhf_config_write_resolved(cfg, rq->out_dir) != 0 ||
        dhf_eval_run(&ds, &prov, &opts, res) != 0) {
        if (made_dir && dhf_is_dir(rq->out_dir)) {
            char keep[2048];
            snprintf(keep, sizeof keep, "%s", dhf_err_msg());
            dhf_remove_tree(rq->out_dir);
            dhf_err_set("%s", keep);
        }
        goto done;
    }
    if (label)
        snprintf(label, label_cap, "%s %s, %s, %s", ds.name, ds.split, ds.subset.name, prov.name);
    rc = 0;
done:
    free(cfg_json);
    cJSON_Delete(extra);
    dhf_provider_close(&prov);
    dhf_dataset_free(&ds);
    return rc;
}
