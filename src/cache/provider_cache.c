/* provider_cache.c — the "layer" and "concat" raw-feature providers (see
 * provider_cache.h): cache lookups, optional resize + concatenation. */
#include "cache/provider_cache.h"
#include "core/error.h"
#include "eval/match.h"
#include "cache/feature_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    dhf_feature_cache *cache;
    int layer;          /* 0-based; -1 = concat of all layers */
    int step;           /* position in save_timestep */
    int out_h, out_w;   /* concat: the finest layer's size */
    float *buf;         /* concat: one native map */
    size_t buf_cap;
} cache_provider;

static void cache_provider_destroy(void *ctx)
{
    cache_provider *p = ctx;
    if (!p)
        return;
    dhf_cache_close(p->cache);
    free(p->buf);
    free(p);
}

static int check_input(cache_provider *p, const dhf_provider_input *in, int64_t *row)
{
    if (in->resize != DHF_RESIZE_STRETCH)
        return dhf_err_set("cache providers: the cached features cover the image stretched "
                           "to a square; eval.resize must be stretch, not %s",
                           dhf_resize_policy_name(in->resize));
    if (dhf_cache_lookup(p->cache, in->key, row) != 0)
        return -1;
    const dhf_cache_image *im = dhf_cache_image_at(p->cache, *row);
    if (in->width > 0 && in->height > 0 &&
        (im->width != in->width || im->height != in->height))
        return dhf_err_set("%s: image '%s' was cached at %dx%d but the dataset's is %dx%d "
                           "(another file with the same key?)", dhf_cache_path(p->cache),
                           in->key, im->width, im->height, in->width, in->height);
    return 0;
}

static int describe_layer(void *ctx, const dhf_provider_input *in, dhf_descriptors *out)
{
    cache_provider *p = ctx;
    memset(out, 0, sizeof *out);
    int64_t row, chw[3];
    if (check_input(p, in, &row) != 0 || dhf_cache_layer_shape(p->cache, p->layer, chw) != 0)
        return -1;
    size_t n = (size_t)(chw[0] * chw[1] * chw[2]);
    float *data = malloc(n * sizeof *data);
    if (!data)
        return dhf_err_set("%s: out of memory", in->key);
    if (dhf_cache_read_map(p->cache, row, p->step, p->layer, data, n) != 0) {
        free(data);
        return -1;
    }
    *out = (dhf_descriptors){.data = data, .c = (int)chw[0], .h = (int)chw[1], .w = (int)chw[2]};
    return 0;
}

static int describe_concat(void *ctx, const dhf_provider_input *in, dhf_descriptors *out)
{
    cache_provider *p = ctx;
    memset(out, 0, sizeof *out);
    int64_t row;
    if (check_input(p, in, &row) != 0)
        return -1;
    const dhf_cache_layout *l = dhf_cache_get_layout(p->cache);
    int64_t total_c = 0;
    for (int i = 0; i < l->num_layers; i++)
        total_c += l->layer_chw[i][0];
    size_t plane = (size_t)p->out_h * (size_t)p->out_w;
    float *data = malloc((size_t)total_c * plane * sizeof *data);
    if (!data)
        return dhf_err_set("%s: out of memory for %lld x %d x %d descriptors", in->key,
                           (long long)total_c, p->out_h, p->out_w);
    size_t off = 0;
    for (int i = 0; i < l->num_layers; i++) {
        const int64_t *chw = l->layer_chw[i];
        size_t n = (size_t)(chw[0] * chw[1] * chw[2]);
        if (dhf_cache_read_map(p->cache, row, p->step, i, p->buf, n) != 0) {
            free(data);
            return -1;
        }
        /* The identity when the size already matches, as torch's interpolate. */
        dhf_map_resize_bilinear(p->buf, (int)chw[0], (int)chw[1], (int)chw[2], data + off,
                                p->out_h, p->out_w);
        off += (size_t)chw[0] * plane;
    }
    *out = (dhf_descriptors){.data = data, .c = (int)total_c, .h = p->out_h, .w = p->out_w};
    return 0;
}

static cJSON *cache_provider_protocol(void *ctx)
{
    cache_provider *p = ctx;
    const dhf_cache_layout *l = dhf_cache_get_layout(p->cache);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "cache", dhf_cache_path(p->cache));
    cJSON_AddStringToObject(o, "model", l->model_name);
    cJSON_AddStringToObject(o, "model_hash", l->model_hash);
    cJSON_AddStringToObject(o, "cache_dtype", dhf_cache_dtype_name(l->dtype));
    if (p->layer >= 0) {
        cJSON_AddNumberToObject(o, "layer", p->layer + 1);
        cJSON_AddStringToObject(o, "module", l->layer_name[p->layer]);
    } else {
        cJSON_AddNumberToObject(o, "layers", l->num_layers);
        cJSON_AddNumberToObject(o, "resolution", p->out_h);
    }
    cJSON_AddNumberToObject(o, "save_timestep_label", (double)l->save_label[p->step]);
    cJSON_AddNumberToObject(o, "unet_timestep", l->unet_timestep[p->step]);
    cJSON *id = cJSON_Parse(l->identity_json);
    if (id)
        cJSON_AddItemToObject(o, "extraction", id);
    return o;
}

/* "@LABEL" (or "LABEL") -> step position; NULL/"" -> 0. */
static int parse_step(const dhf_feature_cache *c, const char *s, int *step)
{
    *step = 0;
    if (!s || !*s)
        return 0;
    if (*s == '@')
        s++;
    char *end = NULL;
    long label = strtol(s, &end, 10);
    if (end == s || *end)
        return dhf_err_set("provider: expected @LABEL (a save_timestep label), got '%s'", s);
    const dhf_cache_layout *l = dhf_cache_get_layout(c);
    for (int k = 0; k < l->num_steps; k++)
        if (l->save_label[k] == label) {
            *step = k;
            return 0;
        }
    char have[512] = "";
    for (int k = 0; k < l->num_steps; k++) {
        size_t len = strlen(have);
        snprintf(have + len, sizeof have - len, "%s%lld", k ? ", " : "",
                 (long long)l->save_label[k]);
    }
    return dhf_err_set("%s: save_timestep label %ld is not cached (labels: %s)",
                       dhf_cache_path(c), label, have);
}

static int open_common(const dhf_provider_args *args, cache_provider **out)
{
    if (!args->cfg || !args->cfg->cache_path[0])
        return dhf_err_set("cache providers need cache_path (config key) to name the feature "
                           "cache made by dhf extract");
    cache_provider *p = calloc(1, sizeof *p);
    if (!p)
        return dhf_err_set("out of memory");
    /* Each image is read once per pair side; a two-image chunk cache covers both. */
    if (dhf_cache_open_read(args->cfg->cache_path, 2, &p->cache) != 0) {
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

int dhf_provider_layer_open(const dhf_provider_args *args, dhf_provider *out)
{
    memset(out, 0, sizeof *out);
    const char *arg = args->arg;
    if (!arg || !*arg)
        return dhf_err_set("provider layer: expected layer:N[@LABEL], e.g. layer:4");
    char *end = NULL;
    long layer = strtol(arg, &end, 10);
    if (end == arg || (*end && *end != '@'))
        return dhf_err_set("provider layer: expected layer:N[@LABEL], got 'layer:%s'", arg);
    cache_provider *p = NULL;
    if (open_common(args, &p) != 0)
        return -1;
    int nl = dhf_cache_num_layers(p->cache);
    if (layer < 1 || layer > nl || parse_step(p->cache, *end ? end : NULL, &p->step) != 0) {
        if (layer < 1 || layer > nl)
            dhf_err_set("provider layer: layer %ld out of range (the cache has 1..%d)", layer,
                        nl);
        cache_provider_destroy(p);
        return -1;
    }
    p->layer = (int)layer - 1;
    const dhf_cache_layout *l = dhf_cache_get_layout(p->cache);
    snprintf(out->name, sizeof out->name, "layer:%ld@%lld", layer,
             (long long)l->save_label[p->step]);
    snprintf(out->description, sizeof out->description,
             "raw diffusion features: layer %ld (%s) of save_timestep %lld (UNet t %g) from "
             "the feature cache, native %lldx%lld",
             layer, l->layer_name[p->layer], (long long)l->save_label[p->step],
             l->unet_timestep[p->step], (long long)l->layer_chw[p->layer][1],
             (long long)l->layer_chw[p->layer][2]);
    out->ctx = p;
    out->describe = describe_layer;
    out->protocol = cache_provider_protocol;
    out->destroy = cache_provider_destroy;
    return 0;
}

int dhf_provider_concat_open(const dhf_provider_args *args, dhf_provider *out)
{
    memset(out, 0, sizeof *out);
    cache_provider *p = NULL;
    if (open_common(args, &p) != 0)
        return -1;
    if (parse_step(p->cache, args->arg, &p->step) != 0) {
        cache_provider_destroy(p);
        return -1;
    }
    p->layer = -1;
    const dhf_cache_layout *l = dhf_cache_get_layout(p->cache);
    size_t biggest = 0;
    for (int i = 0; i < l->num_layers; i++) {
        const int64_t *chw = l->layer_chw[i];
        if ((int64_t)p->out_h * p->out_w < chw[1] * chw[2]) {
            p->out_h = (int)chw[1];
            p->out_w = (int)chw[2];
        }
        if (dhf_cache_map_numel(p->cache, i) > biggest)
            biggest = dhf_cache_map_numel(p->cache, i);
    }
    p->buf = malloc(biggest * sizeof *p->buf);
    if (!p->buf) {
        cache_provider_destroy(p);
        return dhf_err_set("out of memory");
    }
    p->buf_cap = biggest;
    snprintf(out->name, sizeof out->name, "concat@%lld", (long long)l->save_label[p->step]);
    snprintf(out->description, sizeof out->description,
             "raw diffusion features: all %d layers of save_timestep %lld (UNet t %g), each "
             "resized bilinearly to %dx%d and concatenated, from the feature cache",
             l->num_layers, (long long)l->save_label[p->step], l->unet_timestep[p->step],
             p->out_h, p->out_w);
    out->ctx = p;
    out->describe = describe_concat;
    out->protocol = cache_provider_protocol;
    out->destroy = cache_provider_destroy;
    return 0;
}
