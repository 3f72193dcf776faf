/* vit_provider.c — the DINO and DINOv2 descriptor providers (vit_provider.h) and the
 * random ViT folders of `dhf init-model`. */
#include "extract/vit_provider.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "extract/nn_layers.h"

typedef struct {
    dhf_vit *vit;
    dhf_vit_opts opts;
    int load_size;
    char weights[4096];
} vit_provider;

static const char *family_name(dhf_vit_family f) { return f == DHF_VIT_DINO ? "dino" : "dinov2"; }

int dhf_vit_resolve(const dhf_config *c, dhf_vit_family family, const char *arg,
                    dhf_vit_config *cfg, char *weights, size_t cap)
{
    bool dino = family == DHF_VIT_DINO;
    const char *model = arg && *arg ? arg : dino ? c->vit_dino_model : c->vit_dinov2_model;
    const char *w = dino ? c->vit_dino_weights : c->vit_dinov2_weights;
    const char *key = dino ? "vit.dino_weights" : "vit.dinov2_weights";
    weights[0] = '\0';
    if (dhf_is_dir(model)) {
        char path[4200];
        snprintf(path, sizeof path, "%s/config.json", model);
        if (dhf_vit_config_load(path, cfg) != 0)
            return -1;
        if (w[0]) {
            snprintf(weights, cap, "%s", w);
        } else {
            snprintf(weights, cap, "%s/model.safetensors", model);
            if (!dhf_path_exists(weights))
                snprintf(weights, cap, "%s/model.pth", model);
        }
    } else {
        if (dhf_vit_preset(model, cfg) != 0)
            return -1;
        if (!w[0])
            return dhf_err_set("provider %s: no weights for %s: set %s to the official "
                               "checkpoint (%s) or a .safetensors copy", family_name(family),
                               model, key,
                               dino ? "e.g. dino_deitsmall8_pretrain.pth"
                                    : "e.g. dinov2_vitb14_pretrain.pth");
        snprintf(weights, cap, "%s", w);
    }
    if (cfg->family != family)
        return dhf_err_set("provider %s: model %s is a %s model", family_name(family), model,
                           family_name(cfg->family));
    if (!dhf_path_exists(weights))
        return dhf_err_set("provider %s: weights %s do not exist (%s)", family_name(family),
                           weights, key);
    return 0;
}

static int describe(void *ctx, const dhf_provider_input *in, dhf_descriptors *out)
{
    vit_provider *p = ctx;
    const dhf_vit_config *c = dhf_vit_config_of(p->vit);
    if (in->resize != DHF_RESIZE_STRETCH)
        return dhf_err_set("provider %s: the ViT map covers the whole image; eval.resize must "
                           "be stretch, not %s", family_name(c->family),
                           dhf_resize_policy_name(in->resize));
    dhf_image resized;
    float *input = NULL;
    if (dhf_vit_preprocess(in->image, c->family, c->patch_size, p->load_size, &resized,
                           &input) != 0)
        return dhf_err_wrap("%s", in->key);
    int64_t shape[4] = {1, 3, resized.height, resized.width};
    dhf_image_free(&resized);
    dhf_tensor x = NULL, f = NULL;
    int rc = -1;
    if (dhf_from_buffer(input, DHF_F32, shape, 4, &x) != DHF_OK) {
        dhf_nn_shim_fail("dhf_from_buffer");
        goto done;
    }
    if (dhf_vit_features(p->vit, x, &p->opts, &f, NULL) != 0) {
        dhf_err_wrap("%s", in->key);
        goto done;
    }
    int64_t fs[3];
    int nd = 0;
    if (dhf_shape(f, fs, &nd) != DHF_OK) {
        dhf_nn_shim_fail("dhf_shape");
        goto done;
    }
    size_t n = (size_t)(fs[0] * fs[1] * fs[2]);
    out->data = malloc(n * sizeof(float));
    if (!out->data) {
        dhf_err_set("out of memory");
        goto done;
    }
    if (dhf_to_buffer(f, DHF_F32, out->data, n * sizeof(float)) != DHF_OK) {
        free(out->data);
        out->data = NULL;
        dhf_nn_shim_fail("dhf_to_buffer");
        goto done;
    }
    out->c = (int)fs[0];
    out->h = (int)fs[1];
    out->w = (int)fs[2];
    rc = 0;
done:
    dhf_free(f);
    dhf_free(x);
    free(input);
    return rc;
}

static cJSON *protocol(void *ctx)
{
    vit_provider *p = ctx;
    const dhf_vit_config *c = dhf_vit_config_of(p->vit);
    bool dino = c->family == DHF_VIT_DINO;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", c->name);
    cJSON_AddStringToObject(o, "weights", p->weights);
    cJSON_AddStringToObject(o, "family", family_name(c->family));
    cJSON_AddNumberToObject(o, "layer", p->opts.layer);
    cJSON_AddStringToObject(o, "facet", dino ? "key (attention keys of the block, from its "
                                               "norm1 output, bias included; channel d * heads "
                                               "+ head)"
                                             : p->opts.final_norm ? "token, final LayerNorm"
                                                                  : "token (block output, "
                                                                    "before the final norm)");
    cJSON_AddNumberToObject(o, "patch_size", c->patch_size);
    cJSON_AddNumberToObject(o, "stride", p->opts.stride);
    cJSON_AddNumberToObject(o, "load_size", p->load_size);
    cJSON_AddNumberToObject(o, "embed_dim", c->embed_dim);
    cJSON_AddStringToObject(o, "preprocessing",
                            dino ? "shorter side to load_size with Pillow LANCZOS (8-bit), "
                                   "ImageNet mean/std in float32"
                                 : "shorter side to load_size with Pillow LANCZOS, then a "
                                   "LANCZOS resize to multiples of 14, ImageNet mean/std in "
                                   "float32");
    cJSON_AddStringToObject(o, "grid", "1 + (side - patch_size) // stride per side; CLS dropped");
    return o;
}

static void destroy(void *ctx)
{
    vit_provider *p = ctx;
    dhf_vit_free(p->vit);
    free(p);
}

static int open_family(const dhf_provider_args *args, dhf_vit_family family, dhf_provider *out)
{
    memset(out, 0, sizeof *out);
    const dhf_config *c = args->cfg;
    bool dino = family == DHF_VIT_DINO;
    if (args->checkpoint)
        return dhf_err_set("provider %s takes no --checkpoint (the weights are %s)",
                           family_name(family), dino ? "vit.dino_weights" : "vit.dinov2_weights");
    vit_provider *p = calloc(1, sizeof *p);
    if (!p)
        return dhf_err_set("out of memory");
    dhf_vit_config cfg;
    if (dhf_vit_resolve(c, family, args->arg, &cfg, p->weights, sizeof p->weights) != 0 ||
        dhf_vit_load(&cfg, p->weights, &p->vit) != 0) {
        free(p);
        return -1;
    }
    p->opts.layer = dino ? c->vit_dino_layer : c->vit_dinov2_layer;
    p->opts.stride = dino ? c->vit_dino_stride : cfg.patch_size;
    p->opts.keys = dino;
    p->opts.final_norm = !dino && c->vit_dinov2_final_norm;
    p->load_size = dino ? c->vit_dino_load_size : c->vit_dinov2_load_size;
    if (p->opts.layer >= cfg.depth || p->opts.stride > cfg.patch_size) {
        dhf_err_set("provider %s: %s has blocks 0..%d and patch size %d; %s %d, stride %d",
                    family_name(family), cfg.name, cfg.depth - 1, cfg.patch_size,
                    dino ? "vit.dino_layer" : "vit.dinov2_layer", p->opts.layer, p->opts.stride);
        destroy(p);
        return -1;
    }
    out->ctx = p;
    out->needs_image = true;
    out->describe = describe;
    out->protocol = protocol;
    out->destroy = destroy;
    snprintf(out->name, sizeof out->name, "%s:%.48s", family_name(family), cfg.name);
    snprintf(out->description, sizeof out->description,
             "%s: %s of blocks[%d] of %s, stride %d, load size %d (%s)",
             dino ? "DINO" : "DINOv2", dino ? "attention keys" : "output tokens", p->opts.layer,
             cfg.name, p->opts.stride, p->load_size, dhf_basename(p->weights));
    return 0;
}

int dhf_provider_dino_open(const dhf_provider_args *args, dhf_provider *out)
{
    return open_family(args, DHF_VIT_DINO, out);
}

int dhf_provider_dinov2_open(const dhf_provider_args *args, dhf_provider *out)
{
    return open_family(args, DHF_VIT_DINOV2, out);
}

/* ---- random folders ------------------------------------------------------------ */

int dhf_vit_init_write(const char *out_dir, const char *preset, uint64_t seed,
                       dhf_st_dtype dtype, bool force, int64_t *n_params)
{
    dhf_vit_config cfg;
    if (dhf_vit_preset(preset, &cfg) != 0)
        return -1;
    if (dhf_is_dir(out_dir) && !force) {
        char probe[4200];
        snprintf(probe, sizeof probe, "%s/config.json", out_dir);
        if (dhf_path_exists(probe))
            return dhf_err_set("%s already holds a model; give --force to overwrite it",
                               out_dir);
    }
    char tmp[4200], cfg_path[4300], w_path[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out_dir, (long)getpid());
    dhf_remove_tree(tmp);
    if (dhf_mkdir_p(tmp) != 0)
        return -1;
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", tmp);
    snprintf(w_path, sizeof w_path, "%s/model.safetensors", tmp);
    char *json = dhf_vit_config_json(&cfg);
    dhf_st_writer *w = NULL;
    int rc = -1;
    if (!json || dhf_write_file_atomic(cfg_path, json, strlen(json)) != 0 ||
        dhf_st_writer_new(&w) != 0)
        goto done;
    dhf_params p;
    dhf_params_init_generate(&p, seed, w_path, w, dtype);
    dhf_vit *v = NULL;
    if (dhf_vit_build(&cfg, &p, &v) != 0)
        goto done;
    dhf_vit_free(v);
    if (dhf_st_writer_set_metadata(w, "config", json) != 0 || dhf_st_writer_save(w, w_path) != 0)
        goto done;
    if (n_params)
        *n_params = p.n_values;
    /* the finished folder replaces out_dir in one rename */
    if (dhf_is_dir(out_dir) && dhf_remove_tree(out_dir) != 0)
        goto done;
    if (rename(tmp, out_dir) != 0) {
        dhf_err_set("%s: cannot move %s into place", out_dir, tmp);
        goto done;
    }
    rc = 0;
done:
    if (rc != 0)
        dhf_remove_tree(tmp);
    dhf_st_writer_free(w);
    free(json);
    return rc;
}
