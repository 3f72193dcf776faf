/* extract_run.c — the extraction loop behind `dhf extract` (extract_run.h): model
 * loading (extract/sd_model.h: UNet, VAE encoder, conditioning from prompt_embeds
 * or the text encoder on the empty prompt), the cache layout derived from the model
 * and the config, and per image: decode, VAE latent, DDIM inversion with each saved
 * step's 12 maps written straight into the cache, then a commit. */
#include "extract/extract_run.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/image.h"
#include "core/progress.h"
#include "extract/ddim.h"
#include "extract/extract_images.h"
#include "extract/inversion.h"
#include "cache/model_identity.h"
#include "extract/sd_model.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    dhf_sd_model *sd;
    dhf_tensor context;        /* [1, L, D] conditioning */
    int64_t latent_h, latent_w;
    dhf_latent_mode latent_mode;
    dhf_image_resize_mode resize_mode;
} sd_models;

static void models_free(sd_models *m)
{
    dhf_sd_model_free(m->sd);
    dhf_free(m->context);
    memset(m, 0, sizeof *m);
}

char *dhf_extract_identity_json(const dhf_config *cfg, const char *embeds_hash)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "diffusion_mode", cfg->diffusion_mode);
    cJSON_AddNumberToObject(o, "num_timesteps", cfg->num_timesteps);
    cJSON *labels = cJSON_AddArrayToObject(o, "save_timestep");
    for (int i = 0; labels && i < cfg->save_timestep.n; i++)
        cJSON_AddItemToArray(labels, cJSON_CreateNumber((double)cfg->save_timestep.v[i]));
    cJSON_AddStringToObject(o, "prompt", cfg->prompt);
    cJSON_AddNumberToObject(o, "guidance_scale", cfg->guidance_scale);
    cJSON_AddStringToObject(o, "prompt_embeds", embeds_hash ? embeds_hash : "");
    cJSON_AddNumberToObject(o, "diffusion_resolution", cfg->diffusion_resolution);
    cJSON_AddStringToObject(o, "image_resize", cfg->image_resize);
    if (strcmp(cfg->image_resize, "pil_load") == 0)
        cJSON_AddNumberToObject(o, "image_load_resolution", cfg->load_resolution);
    cJSON_AddStringToObject(o, "vae_latent", cfg->vae_latent);
    /* The seed only matters when the posterior is sampled. */
    if (strcmp(cfg->vae_latent, "sample") == 0)
        cJSON_AddNumberToObject(o, "vae_seed", (double)cfg->seed);
    cJSON_AddStringToObject(o, "dtype", cfg->dtype);
    cJSON_AddStringToObject(o, "features", "up_blocks[i].resnets[j] residual after conv2");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int check_supported(const dhf_config *cfg)
{
    if (strcmp(cfg->diffusion_mode, "inversion") != 0)
        return dhf_err_set("diffusion_mode '%s': dhf extract implements 'inversion' only",
                           cfg->diffusion_mode);
    if (cfg->guidance_scale != -1 && cfg->guidance_scale > 1)
        return dhf_err_set("guidance_scale %g: inversion of real images runs without "
                           "classifier-free guidance (set -1)", cfg->guidance_scale);
    if (!cfg->model_id[0])
        return dhf_err_set("model_id: no model folder given");
    if (cfg->save_timestep.n < 1 || cfg->save_timestep.n > DHF_CACHE_MAX_STEPS)
        return dhf_err_set("save_timestep: 1..%d labels expected, got %d", DHF_CACHE_MAX_STEPS,
                           cfg->save_timestep.n);
    return 0;
}

static int load_models(const dhf_config *cfg, sd_models *m)
{
    memset(m, 0, sizeof *m);
    dhf_sd_load_opts lo = dhf_sd_load_opts_default();
    if (dhf_sd_runtime_from_config(cfg, &lo) != 0)
        return -1;
    /* With prompt_embeds the text encoder is never needed. */
    lo.load_text_encoder = cfg->prompt_embeds[0] == '\0';
    if (dhf_sd_model_load(cfg->model_id, &lo, &m->sd) != 0)
        return -1;
    int rc = cfg->prompt_embeds[0]
                 ? dhf_load_prompt_embeds(cfg->prompt_embeds,
                                          dhf_unet_config_of(m->sd->unet)->cross_attention_dim,
                                          &m->context)
             : cfg->prompt[0] ? dhf_sd_prompt_embeds(m->sd, cfg->prompt, &m->context)
                              : dhf_sd_empty_prompt_embeds(m->sd, &m->context);
    if (rc != 0) {
        models_free(m);
        return cfg->prompt_embeds[0] ? dhf_err_wrap("prompt_embeds") : -1;
    }
    int f = dhf_vae_downsample_factor(m->sd->vae);
    if (f < 1 || cfg->diffusion_resolution % f != 0) {
        models_free(m);
        return dhf_err_set("diffusion_resolution %d is not a multiple of the VAE's "
                           "downsampling factor %d", cfg->diffusion_resolution, f);
    }
    m->latent_h = m->latent_w = cfg->diffusion_resolution / f;
    m->latent_mode = strcmp(cfg->vae_latent, "mean") == 0 ? DHF_LATENT_MEAN : DHF_LATENT_SAMPLE;
    const int resize = dhf_config_choice("image_resize", cfg->image_resize);   /* pil|torch */
    if (resize < 0) {
        models_free(m);
        return -1;
    }
    m->resize_mode = (dhf_image_resize_mode)resize;
    return 0;
}

/* FNV-1a 64 of a (small) file's bytes, "fnv1a64:<hex>": identifies prompt_embeds by
 * content, so shards run from different folders still agree. */
static int file_fingerprint(const char *path, char *out, size_t n)
{
    char *data = NULL;
    size_t len = 0;
    if (dhf_read_file(path, &data, &len) != 0)
        return -1;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)data[i];
        h *= 1099511628211ull;
    }
    free(data);
    snprintf(out, n, "fnv1a64:%016llx", (unsigned long long)h);
    return 0;
}

/* Layout of this extraction's cache; *identity is malloc'd and referenced by l. */
static int make_layout(const dhf_config *cfg, const sd_models *m, dhf_cache_layout *l,
                       char **identity, char **config_json)
{
    dhf_cache_layout_init(l);
    char embeds_hash[64] = "";
    /* The form the trainer checks its model_id against (model_identity.h). */
    if (dhf_model_identity(cfg->model_id, l->model_name, sizeof l->model_name, l->model_hash,
                           sizeof l->model_hash) != 0)
        return -1;
    if (cfg->prompt_embeds[0] &&
        file_fingerprint(cfg->prompt_embeds, embeds_hash, sizeof embeds_hash) != 0)
        return dhf_err_wrap("prompt_embeds");
    dhf_ddim_plan plan;
    int steps[DHF_CACHE_MAX_STEPS];
    if (dhf_ddim_plan_make(cfg->num_timesteps, &plan) != 0 ||
        dhf_ddim_save_steps(&plan, cfg->save_timestep.v, cfg->save_timestep.n, steps) != 0)
        return dhf_err_wrap("save_timestep");
    l->num_steps = cfg->save_timestep.n;
    for (int k = 0; k < l->num_steps; k++) {
        l->save_label[k] = cfg->save_timestep.v[k];
        l->unet_timestep[k] = plan.unet_t[steps[k]];
    }
    int nf = dhf_unet_n_features(m->sd->unet);
    if (nf < 1 || nf > DHF_CACHE_MAX_LAYERS)
        return dhf_err_set("%s: %d decoder ResNets; the cache holds 1..%d layers",
                           cfg->model_id, nf, DHF_CACHE_MAX_LAYERS);
    l->num_layers = nf;
    for (int k = 0; k < nf; k++) {
        snprintf(l->layer_name[k], DHF_CACHE_NAME_LEN, "%s",
                 dhf_unet_feature_name(m->sd->unet, k));
        if (dhf_unet_feature_shape(m->sd->unet, k, m->latent_h, m->latent_w,
                                   l->layer_chw[k]) != 0)
            return -1;
    }
    if (dhf_cache_dtype_parse(cfg->cache_dtype, &l->dtype) != 0)
        return -1;
    l->compression = cfg->cache_compression;
    *identity = dhf_extract_identity_json(cfg, embeds_hash);
    *config_json = dhf_config_to_json(cfg);
    if (!*identity || !*config_json)
        return dhf_err_set("out of memory building the cache attributes");
    l->identity_json = *identity;
    l->config_json = *config_json;
    return 0;
}

/* ---- per image ------------------------------------------------------------- */

typedef struct {
    dhf_feature_cache *cache;
    const dhf_cache_layout *layout;
    int64_t row;
    const char *key;
    float *buf;
    size_t cap;
} step_writer;

static int write_saved_step(void *user, const dhf_saved_step *s)
{
    step_writer *w = user;
    if (s->n_features != w->layout->num_layers)
        return dhf_err_set("%s: %d features from the UNet, the cache expects %d", w->key,
                           s->n_features, w->layout->num_layers);
    for (int k = 0; k < s->n_features; k++) {
        int64_t shape[DHF_MAX_DIMS];
        int nd = 0;
        const int64_t *chw = w->layout->layer_chw[k];
        if (dhf_shape(s->feats[k], shape, &nd) != DHF_OK || nd != 4 || shape[0] != 1 ||
            shape[1] != chw[0] || shape[2] != chw[1] || shape[3] != chw[2]) {
            char d[128];
            dhf_describe(s->feats[k], d, sizeof d);
            return dhf_err_set("%s: feature %d is %s, expected [1, %lld, %lld, %lld]", w->key,
                               k + 1, d, (long long)chw[0], (long long)chw[1],
                               (long long)chw[2]);
        }
        size_t n = (size_t)(chw[0] * chw[1] * chw[2]);
        if (n > w->cap) {
            float *b = realloc(w->buf, n * sizeof *b);
            if (!b)
                return dhf_err_set("out of memory for a %zu-value map", n);
            w->buf = b;
            w->cap = n;
        }
        if (dhf_to_buffer(s->feats[k], DHF_F32, w->buf, n * sizeof(float)) != DHF_OK)
            return dhf_err_set("%s: feature %d: %s", w->key, k + 1, dhf_last_error());
        if (dhf_cache_write_map(w->cache, w->row, s->save_index, k, w->buf, n) != 0)
            return -1;
    }
    return 0;
}

static int extract_one(const dhf_config *cfg, const sd_models *m, const dhf_cache_image *im,
                       step_writer *w)
{
    dhf_image img = {0};
    if (dhf_image_load(im->path, &img) != 0)
        return dhf_err_wrap("image '%s'", im->key);
    int rc = 0;
    dhf_tensor latent = NULL;
    dhf_scope_begin();
    /* The sample's seed depends on the image key only: independent of order and
     * sharding, so resumed and sharded runs reproduce an uninterrupted one. */
    if (dhf_sd_encode_image(m->sd, img.rgb, img.width, img.height, cfg->diffusion_resolution,
                            m->resize_mode, cfg->load_resolution, m->latent_mode, dhf_sd_latent_seed((uint64_t)cfg->seed, im->key),
                            &latent) != 0)
        rc = -1;
    if (rc == 0) {
        dhf_inversion_opts o = {
            .num_timesteps = cfg->num_timesteps,
            .save_timestep = cfg->save_timestep.v,
            .n_save = cfg->save_timestep.n,
        };
        rc = dhf_ddim_invert(m->sd->unet, latent, m->context, &o, write_saved_step, w);
    }
    if (dhf_scope_end() != DHF_OK && rc == 0)
        rc = dhf_err_set("shim scope: %s", dhf_last_error());
    dhf_image_free(&img);
    if (rc != 0)
        return dhf_err_wrap("image '%s' (%s)", im->key, im->path);
    return 0;
}

static int write_resolved_config(const dhf_config *cfg, const char *cache_path)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", cache_path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    return dhf_config_write_resolved(cfg, dir);
}

int dhf_extract_run(const dhf_config *cfg, const dhf_extract_options *opt,
                    dhf_extract_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    if (check_supported(cfg) != 0)
        return -1;
    if (dhf_shard_cache_path(cfg->cache_path, opt->shard, sum->cache_path,
                             sizeof sum->cache_path) != 0)
        return -1;
    dhf_image_set all = {0};
    if (dhf_image_set_from_config(cfg, &all) != 0)
        return -1;
    snprintf(sum->source, sizeof sum->source, "%s", all.source);
    if (dhf_model_unet_weights_path(cfg->model_id, sum->weights, sizeof sum->weights) != 0)
        sum->weights[0] = '\0';
    /* This shard's images, in key order. */
    int64_t n = 0;
    for (int64_t i = 0; i < all.n; i++)
        if (dhf_shard_selects(opt->shard, i))
            all.v[n++] = all.v[i];
    all.n = n;
    sum->selected = n;

    sd_models m;
    dhf_cache_layout layout;
    char *identity = NULL, *config_json = NULL;
    dhf_feature_cache *cache = NULL;
    int64_t *rows = NULL;
    step_writer w = {0};
    int rc = -1;
    if (load_models(cfg, &m) != 0) {
        dhf_image_set_free(&all);
        return -1;
    }
    if (make_layout(cfg, &m, &layout, &identity, &config_json) != 0)
        goto done;
    char parent[4200];
    snprintf(parent, sizeof parent, "%s", sum->cache_path);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if (dhf_mkdir_p(parent) != 0)
            goto done;
    }
    if (dhf_cache_open_write(sum->cache_path, &layout, &cache) != 0)
        goto done;
    if (write_resolved_config(cfg, sum->cache_path) != 0)
        goto done;
    rows = malloc((size_t)(n ? n : 1) * sizeof *rows);
    if (!rows) {
        dhf_err_set("out of memory");
        goto done;
    }
    if (dhf_cache_add_images(cache, all.v, n, rows) != 0)
        goto done;
    int64_t todo = 0;
    for (int64_t i = 0; i < n; i++)
        if (dhf_cache_is_committed(cache, rows[i]))
            sum->already_done++;
        else
            todo++;

    w.cache = cache;
    w.layout = dhf_cache_get_layout(cache);
    dhf_progress p;
    dhf_progress_begin(&p, "extract", todo);
    dhf_progress_set_unit(&p, "img");
    double t0 = dhf_now();
    dhf_inference_begin();
    int loop_rc = 0;
    for (int64_t i = 0; i < n && loop_rc == 0; i++) {
        if (dhf_cache_is_committed(cache, rows[i]))
            continue;
        w.row = rows[i];
        w.key = all.v[i].key;
        if (extract_one(cfg, &m, &all.v[i], &w) != 0 || dhf_cache_commit(cache, rows[i]) != 0) {
            loop_rc = -1;
            break;
        }
        sum->extracted++;
        dhf_progress_step(&p, 1, all.v[i].key);
        if (opt->abort_after > 0 && sum->extracted == opt->abort_after) {
            fprintf(stderr, "\ndhf extract: DHF_TEST_ABORT_AFTER=%d reached, exiting as if "
                            "killed\n", opt->abort_after);
            fflush(NULL);
            _exit(DHF_EXTRACT_TEST_ABORT_STATUS);
        }
    }
    dhf_inference_end();
    dhf_progress_end(&p);
    sum->seconds = dhf_now() - t0;
    if (loop_rc != 0)
        goto done;
    sum->cache_images = dhf_cache_num_images(cache);
    sum->cache_committed = dhf_cache_num_committed(cache);
    if (dhf_cache_get_stats(cache, &sum->stats) != 0)
        goto done;
    rc = 0;
done:
    if (cache && dhf_cache_close(cache) != 0 && rc == 0)
        rc = -1;
    free(rows);
    free(w.buf);
    free(identity);
    free(config_json);
    models_free(&m);
    dhf_image_set_free(&all);
    return rc;
}
