/* generate_run.c — `dhf generate` (generate_run.h): models, the cache layout of
 * generation features, and per prompt: noise, embeddings, the sampler with the
 * features streamed into the cache, the decoded images, the records. */
#include "extract/generate_run.h"

#include <cjson/cJSON.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/feature_cache.h"
#include "cache/model_identity.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/image.h"
#include "core/jsonl.h"
#include "core/safetensors.h"
#include "core/torch/st_tensor.h"
#include "extract/extract_run.h"
#include "extract/generation.h"
#include "extract/nn_layers.h"
#include "extract/sd_model.h"

void dhf_generate_key(int i, const char *prompt, int b, char *out, size_t n)
{
    char slug[48];
    size_t k = 0;
    bool dash = false;
    for (const unsigned char *p = (const unsigned char *)prompt; *p && k < 40; p++) {
        if (isalnum(*p) && *p < 128) {
            if (dash && k > 0)
                slug[k++] = '-';
            if (k < 40)
                slug[k++] = (char)tolower(*p);
            dash = false;
        } else {
            dash = true;
        }
    }
    slug[k] = '\0';
    snprintf(out, n, "%04d-%s/%d.png", i, k ? slug : "prompt", b);
}

/* ---- layout ------------------------------------------------------------------- */

static int make_layout(const dhf_config *cfg, const dhf_sd_model *m, int latent_h, int latent_w,
                       dhf_cache_layout *l, char **identity, char **config_json)
{
    dhf_cache_layout_init(l);
    if (dhf_model_identity(cfg->model_id, l->model_name, sizeof l->model_name, l->model_hash,
                           sizeof l->model_hash) != 0)
        return -1;
    int S = cfg->save_timestep.n;
    if (S < 1 || S > DHF_CACHE_MAX_STEPS)
        return dhf_err_set("save_timestep: 1..%d labels expected", DHF_CACHE_MAX_STEPS);
    /* the flip rule: slot k holds save_timestep[k] with flip_timesteps, else the reverse */
    int64_t labels[DHF_CACHE_MAX_STEPS];
    for (int k = 0; k < S; k++)
        labels[k] = cfg->save_timestep.v[cfg->flip_timesteps ? k : S - 1 - k];
    float ut[DHF_CACHE_MAX_STEPS];
    if (dhf_generation_saved_timesteps(cfg->num_timesteps, labels, S, ut) != 0)
        return dhf_err_wrap("save_timestep");
    l->num_steps = S;
    for (int k = 0; k < S; k++) {
        l->save_label[k] = labels[k];
        l->unet_timestep[k] = ut[k];
    }
    int nf = dhf_unet_n_features(m->unet);
    if (nf < 1 || nf > DHF_CACHE_MAX_LAYERS)
        return dhf_err_set("%s: %d decoder ResNets; the cache holds 1..%d layers", cfg->model_id,
                           nf, DHF_CACHE_MAX_LAYERS);
    l->num_layers = nf;
    for (int k = 0; k < nf; k++) {
        snprintf(l->layer_name[k], DHF_CACHE_NAME_LEN, "%s", dhf_unet_feature_name(m->unet, k));
        if (dhf_unet_feature_shape(m->unet, k, latent_h, latent_w, l->layer_chw[k]) != 0)
            return -1;
    }
    if (dhf_cache_dtype_parse(cfg->cache_dtype, &l->dtype) != 0)
        return -1;
    l->compression = cfg->cache_compression;
    /* the prompts differ per image: they are in the records and in the keys */
    dhf_config c = *cfg;
    c.prompt[0] = '\0';
    *identity = dhf_extract_identity_json(&c, "");
    *config_json = dhf_config_to_json(cfg);
    if (!*identity || !*config_json)
        return dhf_err_set("out of memory building the cache attributes");
    l->identity_json = *identity;
    l->config_json = *config_json;
    return 0;
}

/* ---- the features of one batch ------------------------------------------------ */

typedef struct {
    dhf_feature_cache *cache;
    const dhf_cache_layout *layout;
    const int64_t *rows;   /* one per batch element */
    int B;
    bool flip;
    float *buf;
    size_t cap;
} batch_writer;

static int write_step(void *user, const dhf_saved_step *s)
{
    batch_writer *w = user;
    int S = w->layout->num_steps;
    int slot = w->flip ? s->save_index : S - 1 - s->save_index;
    for (int k = 0; k < s->n_features; k++) {
        const int64_t *chw = w->layout->layer_chw[k];
        size_t n = (size_t)(chw[0] * chw[1] * chw[2]);
        if ((size_t)w->B * n > w->cap) {
            float *b = realloc(w->buf, (size_t)w->B * n * sizeof *b);
            if (!b)
                return dhf_err_set("out of memory");
            w->buf = b;
            w->cap = (size_t)w->B * n;
        }
        if (dhf_numel(s->feats[k]) != (int64_t)((size_t)w->B * n))
            return dhf_err_set("feature %d: %lld values, expected %d x %zu", k + 1,
                               (long long)dhf_numel(s->feats[k]), w->B, n);
        if (dhf_to_buffer(s->feats[k], DHF_F32, w->buf, (size_t)w->B * n * sizeof(float)) != DHF_OK)
            return dhf_err_set("feature %d: %s", k + 1, dhf_last_error());
        for (int b = 0; b < w->B; b++)
            if (dhf_cache_write_map(w->cache, w->rows[b], slot, k, w->buf + (size_t)b * n, n) != 0)
                return -1;
    }
    return 0;
}

/* ---- one prompt ------------------------------------------------------------------ */

typedef struct {
    const dhf_config *cfg;
    const dhf_generate_options *o;
    dhf_sd_model *m;
    int latent_h, latent_w;
    dhf_feature_cache *cache;
    const dhf_cache_layout *layout;
    dhf_jsonl log;
    char images_dir[4200], latents_dir[4200];
} gen_state;

static int initial_latent(gen_state *g, const dhf_gen_prompt *p, int C, dhf_tensor *xT)
{
    int64_t shape[4] = {p->n, C, g->latent_h, g->latent_w};
    if (!g->o->init_latent || !g->o->init_latent[0]) {
        /* torch.randn(shape, generator=torch.Generator().manual_seed(seed)) on the CPU */
        if (dhf_randn((uint64_t)p->seed, DHF_F32, shape, 4, xT) != DHF_OK)
            return dhf_err_set("noise: %s", dhf_last_error());
        return 0;
    }
    dhf_st_file *f = NULL;
    if (dhf_st_open(g->o->init_latent, &f) != 0)
        return -1;
    int rc = -1;
    const dhf_st_info *info = dhf_st_count(f) == 1 ? dhf_st_at(f, 0) : dhf_st_find(f, "latent");
    if (!info) {
        dhf_err_set("%s: expected one tensor (or one named 'latent')", g->o->init_latent);
    } else if (info->ndim != 4 || info->shape[0] != p->n || info->shape[1] != C ||
               info->shape[2] != g->latent_h || info->shape[3] != g->latent_w) {
        dhf_err_set("%s: tensor '%s' should be [%d, %d, %d, %d] (n images, latent channels, "
                    "diffusion_resolution / 8)", g->o->init_latent, info->name, p->n, C,
                    g->latent_h, g->latent_w);
    } else {
        rc = dhf_st_load(f, info->name, xT);
    }
    dhf_st_close(f);
    return rc;
}

static int save_latent(const gen_state *g, const char *cat, dhf_tensor xT, char *path, size_t n)
{
    snprintf(path, n, "%s/%s.safetensors", g->latents_dir, cat);
    dhf_st_writer *w = NULL;
    int rc = dhf_st_writer_new(&w);
    if (rc == 0)
        rc = dhf_st_writer_add_tensor(w, "latent", xT);
    if (rc == 0)
        rc = dhf_st_writer_save(w, path);
    dhf_st_writer_free(w);
    return rc;
}

static int generate_prompt(gen_state *g, int i, const dhf_gen_prompt *p, const int64_t *rows)
{
    const dhf_config *cfg = g->cfg;
    const char *neg = p->negative_prompt ? p->negative_prompt : cfg->negative_prompt;
    int C = dhf_unet_config_of(g->m->unet)->in_channels;
    char key0[512], cat[512];
    dhf_generate_key(i, p->prompt, 0, key0, sizeof key0);
    snprintf(cat, sizeof cat, "%s", key0);
    *strrchr(cat, '/') = '\0';
    int rc = 0;
    dhf_tensor xT = NULL, c1 = NULL, n1 = NULL, cond = NULL, uncond = NULL, x0 = NULL, img = NULL;
    float *pix = NULL;
    uint8_t *u8 = NULL;
    batch_writer w = {.cache = g->cache, .layout = g->layout, .rows = rows, .B = p->n,
                      .flip = cfg->flip_timesteps};
    dhf_scope_begin();
    DHF_CHECK(initial_latent(g, p, C, &xT));
    char latent_path[4800];
    DHF_CHECK(save_latent(g, cat, xT, latent_path, sizeof latent_path));
    DHF_CHECK(dhf_sd_prompt_embeds(g->m, p->prompt, &c1));
    int64_t eshape[3] = {p->n, dhf_size(c1, 1), dhf_size(c1, 2)};
    DHF_SHIM(dhf_expand(c1, eshape, 3, &cond));
    bool cfg_on = cfg->guidance_scale != -1.0;
    if (cfg_on) {
        DHF_CHECK(dhf_sd_prompt_embeds(g->m, neg, &n1));
        DHF_SHIM(dhf_expand(n1, eshape, 3, &uncond));
    }
    dhf_generation_opts go = {.num_timesteps = cfg->num_timesteps,
                              .save_timestep = cfg->save_timestep.v,
                              .n_save = cfg->save_timestep.n,
                              .guidance_scale = cfg->guidance_scale};
    DHF_CHECK(dhf_ddim_generate(g->m->unet, xT, cond, uncond, &go, write_step, &w, &x0));
    /* the decoded images, then the rows committed, then the records */
    DHF_CHECK(dhf_vae_decode_latents(g->m->vae, x0, &img));
    int64_t s[4];
    int nd = 0;
    DHF_SHIM(dhf_shape(img, s, &nd));
    size_t nv = (size_t)(s[0] * s[1] * s[2] * s[3]);
    pix = malloc(nv * sizeof *pix);
    u8 = malloc(nv);
    if (!pix || !u8) {
        rc = dhf_err_set("out of memory");
        goto done;
    }
    DHF_SHIM(dhf_to_buffer(img, DHF_F32, pix, nv * sizeof *pix));
    dhf_vae_image_to_u8(pix, (int)s[0], (int)s[1], (int)s[2], (int)s[3], u8);
    char dir[4800];
    snprintf(dir, sizeof dir, "%s/%s", g->images_dir, cat);
    DHF_CHECK(dhf_mkdir_p(dir));
    size_t per = (size_t)(s[1] * s[2] * s[3]);
    for (int b = 0; b < p->n; b++) {
        dhf_image im = {.width = (int)s[3], .height = (int)s[2], .rgb = u8 + (size_t)b * per};
        char key[512], path[4800];
        dhf_generate_key(i, p->prompt, b, key, sizeof key);
        snprintf(path, sizeof path, "%s/%s", g->images_dir, key);
        DHF_CHECK(dhf_image_save_png(path, &im));
    }
    for (int b = 0; b < p->n; b++)
        DHF_CHECK(dhf_cache_commit(g->cache, rows[b]));
    for (int b = 0; b < p->n; b++) {
        char key[512];
        dhf_generate_key(i, p->prompt, b, key, sizeof key);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "key", key);
        cJSON_AddStringToObject(r, "prompt", p->prompt);
        cJSON_AddStringToObject(r, "negative_prompt", neg);
        cJSON_AddNumberToObject(r, "seed", (double)p->seed);
        cJSON_AddNumberToObject(r, "batch_index", b);
        cJSON_AddNumberToObject(r, "guidance_scale", cfg->guidance_scale);
        cJSON_AddStringToObject(r, "initial_latent", latent_path);
        cJSON_AddStringToObject(r, "initial_latent_source",
                                g->o->init_latent && g->o->init_latent[0] ? g->o->init_latent
                                                                          : "torch.randn(seed) on the CPU");
        int wrc = dhf_jsonl_write(&g->log, r);
        cJSON_Delete(r);
        DHF_CHECK(wrc);
    }
done:
    free(pix);
    free(u8);
    free(w.buf);
    if (dhf_scope_end() != DHF_OK && rc == 0)
        rc = dhf_err_set("shim scope: %s", dhf_last_error());
    return rc == 0 ? 0 : dhf_err_wrap("prompt %d \"%.60s\"", i, p->prompt);
}

int dhf_generate_run(const dhf_config *cfg, const dhf_generate_options *o,
                     dhf_generate_summary *s)
{
    memset(s, 0, sizeof *s);
    if (!cfg->model_id[0])
        return dhf_err_set("model_id: no model folder given");
    if (o->n_prompts < 1)
        return dhf_err_set("no prompt given");
    for (int i = 0; i < o->n_prompts; i++)
        if (o->prompts[i].n < 1 || o->prompts[i].n > 64)
            return dhf_err_set("prompt %d: 1..64 images per prompt, got %d", i, o->prompts[i].n);
    if (o->init_latent && o->init_latent[0] && o->n_prompts != 1)
        return dhf_err_set("--init-latent gives the noise of one prompt; %d prompts given",
                           o->n_prompts);
    gen_state g = {.cfg = cfg, .o = o};
    dhf_sd_load_opts lo = dhf_sd_load_opts_default();
    lo.load_vae_decoder = true;
    if (dhf_sd_runtime_from_config(cfg, &lo) != 0)
        return -1;
    if (dhf_sd_model_load(cfg->model_id, &lo, &g.m) != 0)
        return -1;
    dhf_cache_layout layout;
    char *identity = NULL, *config_json = NULL;
    int64_t *rows = NULL;
    int rc = -1;
    int f = dhf_vae_downsample_factor(g.m->vae);
    if (cfg->diffusion_resolution % f != 0) {
        dhf_err_set("diffusion_resolution %d is not a multiple of the VAE's factor %d",
                    cfg->diffusion_resolution, f);
        goto done;
    }
    g.latent_h = g.latent_w = cfg->diffusion_resolution / f;
    if (make_layout(cfg, g.m, g.latent_h, g.latent_w, &layout, &identity, &config_json) != 0)
        goto done;
    g.layout = &layout;
    if (dhf_path_join(g.images_dir, sizeof g.images_dir, o->out_dir, "images") != 0 ||
        dhf_path_join(g.latents_dir, sizeof g.latents_dir, o->out_dir, "latents") != 0 ||
        dhf_mkdir_p(g.images_dir) != 0 || dhf_mkdir_p(g.latents_dir) != 0)
        goto done;
    if (o->cache_path && o->cache_path[0])
        snprintf(s->cache_path, sizeof s->cache_path, "%s", o->cache_path);
    else if (dhf_path_join(s->cache_path, sizeof s->cache_path, o->out_dir, "features.h5") != 0)
        goto done;
    if (dhf_cache_open_write(s->cache_path, &layout, &g.cache) != 0 ||
        dhf_config_write_resolved(cfg, o->out_dir) != 0)
        goto done;
    char log_path[4400];
    snprintf(log_path, sizeof log_path, "%s/generations.jsonl", o->out_dir);
    if (dhf_jsonl_open(&g.log, log_path, 1) != 0)
        goto done;
    /* every image's row, added once (a re-run finds them) */
    int64_t total = 0;
    for (int i = 0; i < o->n_prompts; i++)
        total += o->prompts[i].n;
    dhf_cache_image *ims = calloc((size_t)total, sizeof *ims);
    rows = malloc((size_t)total * sizeof *rows);
    if (!ims || !rows) {
        free(ims);
        dhf_err_set("out of memory");
        goto done;
    }
    int64_t r = 0;
    for (int i = 0; i < o->n_prompts; i++)
        for (int b = 0; b < o->prompts[i].n; b++, r++) {
            dhf_generate_key(i, o->prompts[i].prompt, b, ims[r].key, sizeof ims[r].key);
            snprintf(ims[r].path, sizeof ims[r].path, "%.700s/%.300s", g.images_dir, ims[r].key);
            ims[r].width = ims[r].height = cfg->diffusion_resolution;
        }
    int arc = dhf_cache_add_images(g.cache, ims, total, rows);
    free(ims);
    if (arc != 0)
        goto done;
    double t0 = dhf_now();
    r = 0;
    for (int i = 0; i < o->n_prompts; i++) {
        const dhf_gen_prompt *p = &o->prompts[i];
        bool done_before = true;
        for (int b = 0; b < p->n; b++)
            done_before &= dhf_cache_is_committed(g.cache, rows[r + b]);
        if (done_before) {
            s->prompts_done_before++;
        } else {
            fprintf(stderr, "generate: prompt %d/%d \"%.60s\" (%d image%s)\n", i + 1,
                    o->n_prompts, p->prompt, p->n, p->n == 1 ? "" : "s");
            if (generate_prompt(&g, i, p, rows + r) != 0)
                goto done;
            s->prompts_generated++;
        }
        r += p->n;
    }
    s->seconds = dhf_now() - t0;
    s->images = dhf_cache_num_committed(g.cache);
    rc = 0;
done:
    free(rows);
    if (g.log.fp)
        dhf_jsonl_close(&g.log);
    if (dhf_cache_close(g.cache) != 0 && rc == 0)
        rc = -1;
    free(identity);
    free(config_json);
    dhf_sd_model_free(g.m);
    return rc;
}
