/* hyperfeature_provider.c — the "hyperfeatures" descriptor provider: cached features
 * through the aggregation network, from a checkpoint or a live network (see
 * hyperfeature_provider.h). */
#include "train/hyperfeature_provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "cache/provider_cache.h"
#include "core/fsutil.h"
#include "eval/pck.h"
#include "train/agg_engine.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "core/torch/shim_try.h"
#include "train/train_data.h"
#include "train/train_device.h"

typedef struct {
    const dhf_aggregator *net;   /* &own_net, or the caller's */
    dhf_aggregator own_net;
    bool owns_net;
    dhf_runner *runner;          /* the engine where it runs the network (or NULL) */
    bool owns_runner;
    /* Ours-Pruned (provider "bottleneck"): layer l's bottleneck on the map (l, s) alone;
     * single_layer < 0: the whole network */
    int single_layer, single_step;
    dhf_feature_cache *cache;
    bool owns_cache;
    dhf_agg_order order;
    dhf_device dev;
    /* checkpoint providers only */
    char ckpt_path[4096];
    dhf_ckpt_meta meta;
    bool has_meta;
} hf_provider;

static void hf_destroy(void *ctx)
{
    hf_provider *p = ctx;
    if (!p)
        return;
    if (p->owns_net)
        dhf_aggregator_free(&p->own_net);
    if (p->owns_runner)
        dhf_runner_free(p->runner);
    if (p->owns_cache)
        dhf_cache_close(p->cache);
    if (p->has_meta)
        dhf_ckpt_meta_free(&p->meta);
    free(p);
}

/* [P, R, R] descriptors of one cached image (runs inside the caller's scope). */
static int describe_scoped(hf_provider *p, const dhf_provider_input *in, dhf_descriptors *out)
{
    const dhf_agg_config *c = &p->net->cfg;
    int64_t row;
    dhf_tensor feats[DHF_AGG_MAX_LAYERS] = { 0 };
    dhf_tensor desc = NULL;
    if (dhf_cache_lookup(p->cache, in->key, &row) != 0)
        return -1;
    const dhf_cache_image *im = dhf_cache_image_at(p->cache, row);
    if (in->width > 0 && in->height > 0 && (im->width != in->width || im->height != in->height))
        return dhf_err_set("%s: image '%s' was cached at %dx%d but the dataset's is %dx%d "
                           "(another file with the same key?)", dhf_cache_path(p->cache),
                           in->key, im->width, im->height, in->width, in->height);
    if (dhf_train_read_features(p->cache, &row, 1, p->dev, feats) != 0)
        return -1;
    bool prev = true;
    dhf_set_grad_enabled(false, &prev);
    int rc;
    if (p->single_layer >= 0) {
        /* B_l(resize_R(x_{l,s})): one map, so the softmax over it is 1 */
        dhf_tensor xs = NULL, xr = NULL;
        if (dhf_select(feats[p->single_layer], 1, p->single_step, &xs) != DHF_OK)
            rc = dhf_err_set("features of layer %d, step %d: %s", p->single_layer + 1,
                             p->single_step, dhf_last_error());
        else
            rc = dhf_agg_resize(xs, c->out_res, &xr) != 0 ||
                         dhf_bottleneck_forward(&p->net->bneck[p->single_layer], xr, &desc) != 0
                     ? dhf_err_wrap("bottleneck of layer %d", p->single_layer + 1)
                     : 0;
    } else {
        rc = dhf_agg_forward_run(p->net, p->runner, p->order, feats, &desc);
    }
    dhf_set_grad_enabled(prev, NULL);
    if (rc != 0)
        return -1;
    size_t n = (size_t)c->proj_dim * (size_t)c->out_res * (size_t)c->out_res;
    float *data = malloc(n * sizeof *data);
    if (!data)
        return dhf_err_set("out of memory for %zu descriptor values", n);
    if (dhf_to_buffer(desc, DHF_F32, data, n * sizeof *data) != DHF_OK) {
        free(data);
        return dhf_err_set("descriptors: %s", dhf_last_error());
    }
    *out = (dhf_descriptors){ .data = data, .c = c->proj_dim, .h = c->out_res, .w = c->out_res };
    return 0;
}

static int hf_describe(void *ctx, const dhf_provider_input *in, dhf_descriptors *out)
{
    hf_provider *p = ctx;
    memset(out, 0, sizeof *out);
    if (in->resize != DHF_RESIZE_STRETCH)
        return dhf_err_set("provider hyperfeatures: the cached features cover the image "
                           "stretched to a square; eval.resize must be stretch, not %s",
                           dhf_resize_policy_name(in->resize));
    dhf_scope_begin();
    int rc = describe_scoped(p, in, out);
    dhf_scope_end();
    return rc != 0 ? dhf_err_wrap("hyperfeatures of '%s'", in->key) : 0;
}

static cJSON *hf_protocol(void *ctx)
{
    hf_provider *p = ctx;
    const dhf_agg_config *c = &p->net->cfg;
    const dhf_cache_layout *l = dhf_cache_get_layout(p->cache);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (p->has_meta) {
        cJSON_AddStringToObject(o, "checkpoint", p->ckpt_path);
        cJSON_AddStringToObject(o, "checkpoint_name", dhf_basename(p->ckpt_path));
        cJSON_AddStringToObject(o, "run_name", p->meta.run_name);
        cJSON_AddNumberToObject(o, "step", (double)p->meta.step);
        if (p->meta.has_best) {
            cJSON_AddStringToObject(o, "best_metric", p->meta.best_metric);
            dhf_json_add_exact(o, "best_value", p->meta.best_value);
            cJSON_AddNumberToObject(o, "best_step", (double)p->meta.best_step);
        }
    } else {
        cJSON_AddStringToObject(o, "checkpoint", "(network being trained)");
    }
    cJSON_AddStringToObject(o, "cache", dhf_cache_path(p->cache));
    cJSON_AddStringToObject(o, "model", l->model_name);
    cJSON_AddStringToObject(o, "model_hash", l->model_hash);
    cJSON_AddStringToObject(o, "aggregation_order", dhf_agg_order_name(p->order));
    cJSON_AddNumberToObject(o, "projection_dim", c->proj_dim);
    cJSON_AddNumberToObject(o, "output_resolution", c->out_res);
    cJSON_AddNumberToObject(o, "layers", c->num_layers);
    cJSON *ts = cJSON_AddArrayToObject(o, "save_timestep");
    for (int s = 0; ts && s < l->num_steps; s++)
        cJSON_AddItemToArray(ts, cJSON_CreateNumber((double)l->save_label[s]));
    return o;
}

static void describe_line(hf_provider *p, dhf_provider *out)
{
    const dhf_agg_config *c = &p->net->cfg;
    if (p->has_meta)
        snprintf(out->description, sizeof out->description,
                 "diffusion hyperfeatures: %.160s (run %.160s, step %lld) over %d layers x %d "
                 "timesteps of the feature cache, %dx%dx%d",
                 dhf_basename(p->ckpt_path), p->meta.run_name, (long long)p->meta.step,
                 c->num_layers, c->num_timesteps, c->proj_dim, c->out_res, c->out_res);
    else
        snprintf(out->description, sizeof out->description,
                 "diffusion hyperfeatures of the network being trained over %d layers x %d "
                 "timesteps of the feature cache, %dx%dx%d",
                 c->num_layers, c->num_timesteps, c->proj_dim, c->out_res, c->out_res);
}

static void install(hf_provider *p, dhf_provider *out)
{
    describe_line(p, out);
    out->needs_image = false;
    out->ctx = p;
    out->describe = hf_describe;
    out->protocol = hf_protocol;
    out->destroy = hf_destroy;
}

int dhf_provider_hyperfeatures_live(const dhf_aggregator *a, dhf_runner *r, dhf_agg_order order,
                                    dhf_feature_cache *cache, dhf_device dev, const char *name,
                                    dhf_provider *out)
{
    memset(out, 0, sizeof *out);
    hf_provider *p = calloc(1, sizeof *p);
    if (!p)
        return dhf_err_set("out of memory");
    p->net = a;
    p->runner = r;
    p->single_layer = -1;
    p->cache = cache;
    p->order = order;
    p->dev = dev;
    snprintf(out->name, sizeof out->name, "%s", name ? name : "hyperfeatures");
    install(p, out);
    return 0;
}

/* The network described by the checkpoint's config and cache identity, with its
 * parameters loaded (moments left unread). */
static int load_network(hf_provider *p, const dhf_config *eval_cfg)
{
    dhf_config ccfg;
    if (dhf_ckpt_meta_config(&p->meta, &ccfg) != 0)
        return -1;
    const dhf_cache_identity *id = &p->meta.cache;
    if (id->num_layers < 1 || id->num_layers > DHF_AGG_MAX_LAYERS)
        return dhf_err_set("%s: cache_identity has %d layers (expected 1..%d)", p->ckpt_path,
                           id->num_layers, DHF_AGG_MAX_LAYERS);
    dhf_agg_config ac = { 0 };
    ac.num_layers = id->num_layers;
    ac.num_timesteps = id->num_steps;
    ac.proj_dim = ccfg.projection_dim;
    ac.out_res = ccfg.output_resolution;
    for (int l = 0; l < id->num_layers; l++)
        ac.channels[l] = (int)id->layer_chw[l][0];
    dhf_dtype compute = DHF_F32;
    dhf_engine_options eo;
    if (dhf_agg_options_from_config(eval_cfg, p->dev, &ac, &compute) != 0 ||
        dhf_engine_options_from_config(eval_cfg, &eo) != 0 ||
        dhf_runner_create(&p->runner, &eo) != 0)
        return -1;
    p->owns_runner = true;
    p->order = ac.order;
    if (dhf_aggregator_init(&p->own_net, &ac, 0) != 0)
        return dhf_err_wrap("%s", p->ckpt_path);
    p->owns_net = true;
    p->net = &p->own_net;
    dhf_ckpt_entry entries[DHF_AGG_MAX_PARAMS];
    int n = p->own_net.num_params;
    for (int i = 0; i < n; i++)
        entries[i] = (dhf_ckpt_entry){ .name = p->own_net.names[i], .param = p->own_net.params[i] };
    if (dhf_ckpt_load(p->ckpt_path, entries, n, NULL) != 0)
        return -1;
    if (dhf_aggregator_set_compute_dtype(&p->own_net, compute) != 0)
        return -1;
    return dhf_train_to_device(&p->own_net, NULL, p->dev);
}

/* A checkpoint without a cache identity (dhf import of the paper's weights: the cache
 * is made afterwards): the network takes the cache's layout, whose saved timesteps
 * must be the checkpoint config's, in order; the tensor shapes are checked when the
 * parameters load. The model itself cannot be checked: said on stderr. */
static int no_identity_check(hf_provider *p, const dhf_cache_identity *have,
                             const char *cache_path)
{
    dhf_config ccfg;
    if (dhf_ckpt_meta_config(&p->meta, &ccfg) != 0)
        return -1;
    bool same = ccfg.save_timestep.n == have->num_steps;
    for (int s = 0; same && s < have->num_steps; s++)
        same = ccfg.save_timestep.v[s] == have->save_timestep[s];
    if (!same) {
        char a[512] = "", b[512] = "";
        for (int s = 0; s < ccfg.save_timestep.n; s++)
            snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", s ? ", " : "",
                     (long long)ccfg.save_timestep.v[s]);
        for (int s = 0; s < have->num_steps; s++)
            snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", s ? ", " : "",
                     (long long)have->save_timestep[s]);
        return dhf_err_set("%s: the checkpoint's save_timestep [%s] differs from feature "
                           "cache %s's [%s]: extract with the checkpoint's config", p->ckpt_path,
                           a, cache_path, b);
    }
    p->meta.cache = *have;
    p->meta.has_cache = true;
    fprintf(stderr, "hyperfeatures: %s records no feature-cache identity (imported?): using "
            "%s (model %s, %d layers, save_timestep as the checkpoint's)\n", p->ckpt_path,
            cache_path, have->model_name, have->num_layers);
    return 0;
}

/* The checkpoint's network over the config's cache, checked against it. `who` names
 * the provider in messages. */
static int open_checkpoint(const dhf_provider_args *args, const char *who, hf_provider **out)
{
    *out = NULL;
    if (!args->checkpoint || !*args->checkpoint)
        return dhf_err_set("provider %s needs --checkpoint CKPT (a dhf train checkpoint, e.g. "
                           "checkpoints/<run>/best.safetensors)", who);
    if (!args->cfg || !args->cfg->cache_path[0])
        return dhf_err_set("provider %s needs cache_path (config key): the feature cache the "
                           "network reads, made by dhf extract", who);
    hf_provider *p = calloc(1, sizeof *p);
    if (!p)
        return dhf_err_set("out of memory");
    p->single_layer = -1;
    snprintf(p->ckpt_path, sizeof p->ckpt_path, "%s", args->checkpoint);
    dhf_ckpt_meta_init(&p->meta);
    p->has_meta = true;
    if (dhf_train_parse_device(args->cfg->device, "device", &p->dev) != 0 ||
        dhf_ckpt_read_meta(p->ckpt_path, &p->meta) != 0)
        goto fail;
    if (dhf_cache_open_read(args->cfg->cache_path, 2, &p->cache) != 0)
        goto fail;
    p->owns_cache = true;
    dhf_cache_identity have;
    if (dhf_cache_identity_from_layout(dhf_cache_get_layout(p->cache), &have) != 0)
        goto fail;
    char want_name[4200], have_name[4200];
    snprintf(want_name, sizeof want_name, "checkpoint %s", p->ckpt_path);
    snprintf(have_name, sizeof have_name, "feature cache %s", args->cfg->cache_path);
    if (p->meta.has_cache) {
        if (dhf_cache_identity_check(&p->meta.cache, want_name, &have, have_name) != 0)
            goto fail;
    } else if (no_identity_check(p, &have, args->cfg->cache_path) != 0) {
        goto fail;
    }
    if (load_network(p, args->cfg) != 0)
        goto fail;
    *out = p;
    return 0;
fail:
    hf_destroy(p);
    return -1;
}

int dhf_provider_hyperfeatures_open(const dhf_provider_args *args, dhf_provider *out)
{
    memset(out, 0, sizeof *out);
    if (args->arg && *args->arg)
        return dhf_err_set("provider hyperfeatures takes no argument (got ':%s'); give the "
                           "network with --checkpoint", args->arg);
    hf_provider *p = NULL;
    if (open_checkpoint(args, "hyperfeatures", &p) != 0)
        return -1;
    snprintf(out->name, sizeof out->name, "hyperfeatures");
    install(p, out);
    return 0;
}

/* (l*, s*) = the largest mixing weight, index s*L + l (the first of equal ones, as
 * numpy's argmax), or "L@LABEL" (L 1-based, LABEL a cached save_timestep label) */
static int choose_map(hf_provider *p, const char *arg, const char *who, int *l, int *s)
{
    const dhf_agg_config *c = &p->net->cfg;
    const dhf_cache_layout *lay = dhf_cache_get_layout(p->cache);
    if (arg && *arg) {
        char *end = NULL;
        long layer = strtol(arg, &end, 10);
        long label = 0;
        char *end2 = NULL;
        if (end == arg || *end != '@' || (label = strtol(end + 1, &end2, 10), end2 == end + 1) ||
            *end2)
            return dhf_err_set("provider %s: expected %s:L@LABEL (L 1-based), got '%s:%s'",
                               who, who, who, arg);
        if (layer < 1 || layer > c->num_layers)
            return dhf_err_set("provider %s: layer %ld out of range (1..%d)", who, layer,
                               c->num_layers);
        *l = (int)layer - 1;
        for (int k = 0; k < lay->num_steps; k++)
            if (lay->save_label[k] == label) {
                *s = k;
                return 0;
            }
        return dhf_err_set("provider %s: save_timestep label %ld is not cached", who, label);
    }
    const int n = c->num_layers * c->num_timesteps;
    float w[DHF_AGG_MAX_LAYERS * 64];
    if (n > (int)(sizeof w / sizeof w[0]) ||
        dhf_to_buffer(p->net->mixing_weights, DHF_F32, w, sizeof(float) * (size_t)n) != DHF_OK)
        return dhf_err_set("provider %s: mixing weights: %s", who, dhf_last_error());
    int best = 0;
    for (int i = 1; i < n; i++)
        if (w[i] > w[best])
            best = i;
    *l = best % c->num_layers;
    *s = best / c->num_layers;
    return 0;
}

int dhf_provider_bottleneck_open(const dhf_provider_args *args, dhf_provider *out)
{
    memset(out, 0, sizeof *out);
    hf_provider *p = NULL;
    int l = 0, s = 0;
    if (open_checkpoint(args, "bottleneck", &p) != 0)
        return -1;
    if (choose_map(p, args->arg, "bottleneck", &l, &s) != 0) {
        hf_destroy(p);
        return -1;
    }
    p->single_layer = l;
    p->single_step = s;
    const dhf_cache_layout *lay = dhf_cache_get_layout(p->cache);
    const dhf_agg_config *c = &p->net->cfg;
    install(p, out);
    snprintf(out->name, sizeof out->name, "bottleneck:%d@%lld", l + 1,
             (long long)lay->save_label[s]);
    snprintf(out->description, sizeof out->description,
             "Ours-Pruned: %.160s's bottleneck of layer %d (%s) on save_timestep %lld alone%s, "
             "%dx%dx%d", dhf_basename(p->ckpt_path), l + 1, lay->layer_name[l],
             (long long)lay->save_label[s],
             args->arg && *args->arg ? "" : " (the largest mixing weight)", c->proj_dim,
             c->out_res, c->out_res);
    return 0;
}

int dhf_provider_pruned_open(const dhf_provider_args *args, dhf_provider *out)
{
    memset(out, 0, sizeof *out);
    if (args->arg && *args->arg)
        return dhf_err_set("provider pruned takes no argument (got ':%s'): the map is the "
                           "checkpoint's largest mixing weight; for a chosen one use "
                           "layer:L@LABEL", args->arg);
    hf_provider *p = NULL;
    int l = 0, s = 0;
    if (open_checkpoint(args, "pruned", &p) != 0)
        return -1;
    if (choose_map(p, NULL, "pruned", &l, &s) != 0) {
        hf_destroy(p);
        return -1;
    }
    char arg[64];
    snprintf(arg, sizeof arg, "%d@%lld", l + 1,
             (long long)dhf_cache_get_layout(p->cache)->save_label[s]);
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s", dhf_basename(p->ckpt_path));
    hf_destroy(p);
    /* SD-Layer-Pruned is the raw map itself: the layer provider, so the two agree */
    dhf_provider_args la = *args;
    la.arg = arg;
    if (dhf_provider_layer_open(&la, out) != 0)
        return -1;
    char name[sizeof out->name];
    snprintf(name, sizeof name, "%s", out->name);
    snprintf(out->name, sizeof out->name, "pruned(%.48s)", name);
    size_t len = strlen(out->description);
    snprintf(out->description + len, sizeof out->description - len,
             "; SD-Layer-Pruned: the largest mixing weight of %.160s", ckpt);
    return 0;
}
