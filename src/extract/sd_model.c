/* sd_model.c — loading a diffusers folder as a whole; conditioning, image -> latent,
 * feature layout and model identity for extractors. */
#include "extract/sd_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "core/hash.h"
#include "core/safetensors.h"
#include "core/torch/st_tensor.h"
#include "cache/model_identity.h"
#include "extract/image_prep.h"
#include "extract/nn_layers.h"
#include "extract/unet_kernels.h"

dhf_sd_load_opts dhf_sd_load_opts_default(void)
{
    dhf_sd_load_opts o;
    o.placement = dhf_model_placement_default();
    o.load_text_encoder = true;
    o.load_vae_decoder = false;
    return o;
}

void dhf_sd_model_free(dhf_sd_model *m)
{
    if (!m)
        return;
    dhf_unet_free(m->unet);
    dhf_vae_free(m->vae);
    dhf_clip_text_free(m->text_encoder);
    dhf_clip_tokenizer_free(m->tokenizer);
    free(m);
}

static int component_dir(const char *dir, const char *name, char *out, size_t n,
                         bool required)
{
    if (dhf_path_join(out, n, dir, name) != 0)
        return -1;
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/config.json", out);
    if (!dhf_path_exists(cfg)) {
        if (required)
            return dhf_err_set("%s: missing (not a diffusers Stable Diffusion folder?)", cfg);
        return 1;
    }
    return 0;
}

static bool cpu_has_avx512_bf16(void)
{
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
    return __builtin_cpu_supports("avx512bf16");
#else
    /* the kernel's own view of the CPU */
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    bool yes = false;
    while (f && !yes && fgets(line, sizeof line, f))
        if (strncmp(line, "flags", 5) == 0)
            yes = strstr(line, " avx512_bf16") != NULL;
    if (f)
        fclose(f);
    return yes;
#endif
}

int dhf_sd_placement_parse(const char *device, const char *dtype, dhf_model_placement *out)
{
    *out = dhf_model_placement_default();
    if (dhf_device_parse(device, &out->device) != DHF_OK)
        return dhf_err_set("device '%s': %s", device, dhf_last_error());
    if (out->device.type == DHF_CUDA && !dhf_cuda_available())
        return dhf_err_set("device '%s': no CUDA device (this libtorch has no CUDA, or no GPU "
                           "is visible)", device);
    if (strcmp(dtype, "float32") == 0)
        out->dtype = DHF_F32;
    else if (strcmp(dtype, "float16") == 0)
        out->dtype = DHF_F16;
    else if (strcmp(dtype, "bfloat16") == 0)
        out->dtype = DHF_BF16;
    else
        return dhf_err_set("dtype '%s': expected float32, float16 or bfloat16", dtype);
    if (out->device.type == DHF_CPU && out->dtype == DHF_F16)
        return dhf_err_set("dtype float16 needs a CUDA device (device '%s'); on the CPU use "
                           "float32 or bfloat16", device);
    if (out->device.type == DHF_CPU && out->dtype == DHF_BF16 && !cpu_has_avx512_bf16())
        return dhf_err_set("dtype bfloat16 on the CPU needs the AVX512-BF16 instructions, "
                           "which this CPU lacks (no avx512_bf16 in /proc/cpuinfo); use "
                           "dtype float32");
    return 0;
}

int dhf_sd_runtime_from_config(const dhf_config *cfg, dhf_sd_load_opts *lo)
{
    dhf_extract_kernels kern;
    if (dhf_sd_placement_parse(cfg->device, cfg->dtype, &lo->placement) != 0 ||
        dhf_kernels_parse(cfg->extract_kernels, &kern) != 0)
        return -1;
    dhf_kernels_set(kern);
    return 0;
}

int dhf_sd_model_load(const char *dir, const dhf_sd_load_opts *opts, dhf_sd_model **out)
{
    dhf_sd_load_opts o = opts ? *opts : dhf_sd_load_opts_default();
    if (!dhf_is_dir(dir))
        return dhf_err_set("%s: model folder not found", dir);
    dhf_sd_model *m = calloc(1, sizeof *m);
    if (!m)
        return dhf_err_set("out of memory");
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    /* basename without trailing slashes */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    size_t len = strlen(tmp);
    while (len > 1 && tmp[len - 1] == '/')
        tmp[--len] = '\0';
    snprintf(m->name, sizeof m->name, "%s", dhf_basename(tmp));
    m->pad_token_id = -1;

    char sub[4096];
    int rc = component_dir(dir, "unet", sub, sizeof sub, true);
    if (rc == 0)
        rc = dhf_unet_load(sub, &o.placement, &m->unet);
    if (rc == 0)
        rc = component_dir(dir, "vae", sub, sizeof sub, true);
    if (rc == 0)
        rc = dhf_vae_load_with_decoder(sub, &o.placement, o.load_vae_decoder, &m->vae);
    if (rc == 0 && o.load_text_encoder) {
        int has = component_dir(dir, "text_encoder", sub, sizeof sub, false);
        if (has < 0)
            rc = -1;
        else if (has == 0)
            rc = dhf_clip_text_load(sub, &o.placement, &m->text_encoder);
    }
    if (rc == 0) {
        if (dhf_path_join(sub, sizeof sub, dir, "tokenizer") != 0)
            rc = -1;
        else if (dhf_is_dir(sub) && dhf_tokenizer_pad_id(sub, &m->pad_token_id) != 0)
            rc = -1;
        char vocab[4200];
        snprintf(vocab, sizeof vocab, "%s/vocab.json", sub);
        if (rc == 0 && dhf_path_exists(vocab) && dhf_clip_tokenizer_load(sub, &m->tokenizer) != 0)
            rc = -1;
    }
    if (rc == 0)
        rc = dhf_sd_model_identity(dir, m->identity, sizeof m->identity);
    if (rc == 0 && m->text_encoder &&
        dhf_clip_text_config_of(m->text_encoder)->hidden_size !=
            dhf_unet_config_of(m->unet)->cross_attention_dim)
        rc = dhf_err_set("%s: text encoder hidden_size %d differs from the UNet's "
                         "cross_attention_dim %d", dir,
                         dhf_clip_text_config_of(m->text_encoder)->hidden_size,
                         dhf_unet_config_of(m->unet)->cross_attention_dim);
    if (rc != 0) {
        dhf_sd_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

int dhf_sd_prompt_embeds(const dhf_sd_model *m, const char *text, dhf_tensor *out)
{
    if (!m->text_encoder)
        return dhf_err_set("%s: no text_encoder/ (or not loaded)", m->dir);
    if (!m->tokenizer)
        return dhf_err_set("%s/tokenizer: no vocab.json + merges.txt (the BPE vocabulary a "
                           "prompt needs)", m->dir);
    int T = dhf_clip_tokenizer_max_length(m->tokenizer);
    if (T != dhf_clip_text_config_of(m->text_encoder)->max_position_embeddings)
        return dhf_err_set("%s: tokenizer model_max_length %d differs from the text encoder's "
                           "max_position_embeddings %d", m->dir, T,
                           dhf_clip_text_config_of(m->text_encoder)->max_position_embeddings);
    int64_t *ids = malloc((size_t)T * sizeof *ids);
    if (!ids)
        return dhf_err_set("out of memory");
    int rc = dhf_clip_tokenize(m->tokenizer, text, strlen(text), ids, NULL, NULL);
    if (rc == 0) {
        bool inference = dhf_inference_begin() == DHF_OK;
        rc = dhf_clip_text_forward(m->text_encoder, ids, 1, T, out, NULL, NULL);
        if (inference)
            dhf_inference_end();
    }
    free(ids);
    return rc;
}

int dhf_sd_empty_prompt_embeds(const dhf_sd_model *m, dhf_tensor *out)
{
    if (!m->text_encoder)
        return dhf_err_set("%s: no text_encoder/ (or not loaded): set prompt_embeds to a "
                           "safetensors file with 'encoder_hidden_states'", m->dir);
    if (m->pad_token_id < 0)
        return dhf_err_set("%s/tokenizer: missing (its pad token decides the empty prompt's "
                           "padding): add tokenizer/special_tokens_map.json or set "
                           "prompt_embeds", m->dir);
    int T = dhf_clip_text_config_of(m->text_encoder)->max_position_embeddings;
    int64_t *ids = malloc((size_t)T * sizeof *ids);
    if (!ids)
        return dhf_err_set("out of memory");
    dhf_clip_empty_prompt_ids(m->pad_token_id, ids, T);
    bool inference = dhf_inference_begin() == DHF_OK;
    int rc = dhf_clip_text_forward(m->text_encoder, ids, 1, T, out, NULL, NULL);
    if (inference)
        dhf_inference_end();
    free(ids);
    return rc;
}

int dhf_load_prompt_embeds(const char *path, int64_t cross_dim, dhf_tensor *out)
{
    dhf_st_file *f = NULL;
    if (dhf_st_open(path, &f) != 0)
        return -1;
    const dhf_st_info *info = NULL;
    int rc = dhf_st_get(f, "encoder_hidden_states", &info);
    if (rc == 0 && (info->ndim != 3 || info->shape[0] != 1 || info->shape[2] != cross_dim ||
                    info->shape[1] < 1))
        rc = dhf_err_set("%s: tensor 'encoder_hidden_states' must be [1, L, %lld] (the "
                         "UNet's cross_attention_dim)", path, (long long)cross_dim);
    if (rc == 0 && info->dtype != DHF_ST_F32 && info->dtype != DHF_ST_F16 &&
        info->dtype != DHF_ST_BF16)
        rc = dhf_err_set("%s: tensor 'encoder_hidden_states' must be F32, F16 or BF16",
                         path);
    if (rc == 0)
        rc = dhf_st_load(f, "encoder_hidden_states", out);
    dhf_st_close(f);
    return rc;
}

int dhf_sd_encode_image(const dhf_sd_model *m, const uint8_t *rgb, int width, int height,
                        int resolution, dhf_image_resize_mode resize, int load_size,
                        dhf_latent_mode mode, uint64_t seed, dhf_tensor *latent)
{
    int f = dhf_vae_downsample_factor(m->vae);
    if (resolution < f || resolution % f != 0)
        return dhf_err_set("diffusion_resolution %d must be a positive multiple of the "
                           "VAE's down factor %d", resolution, f);
    bool inference = dhf_inference_begin() == DHF_OK;
    dhf_tensor input = NULL;
    dhf_vae_posterior post = {0};
    int rc = dhf_rgb_to_vae_input(rgb, width, height, resolution, resize, load_size, &input);
    if (rc == 0)
        rc = dhf_vae_encode(m->vae, input, &post);
    if (rc == 0)
        rc = dhf_vae_latent(m->vae, &post, mode, seed, latent);
    dhf_free(input);
    dhf_vae_posterior_free(&post);
    if (inference)
        dhf_inference_end();
    return rc;
}

uint64_t dhf_sd_latent_seed(uint64_t base_seed, const char *image_key)
{
    uint64_t h = DHF_FNV1A64_INIT;
    dhf_fnv1a64_update(&h, (const unsigned char *)image_key, strlen(image_key));
    uint64_t z = h ^ (base_seed + 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int dhf_sd_feature_layout(const dhf_sd_model *m, int resolution, int64_t (*shapes)[3],
                          int max_features)
{
    int n = dhf_unet_n_features(m->unet);
    if (n > max_features)
        return dhf_err_set("feature layout: %d features, room for %d", n, max_features);
    int f = dhf_vae_downsample_factor(m->vae);
    if (resolution < f || resolution % f != 0)
        return dhf_err_set("diffusion_resolution %d must be a positive multiple of %d",
                           resolution, f);
    for (int k = 0; k < n; k++)
        if (dhf_unet_feature_shape(m->unet, k, resolution / f, resolution / f, shapes[k]) != 0)
            return -1;
    return n;
}
