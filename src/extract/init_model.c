/* init_model.c — preset configs and seeded random-weight diffusers folders. */
#include "extract/init_model.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/unicode.h"
#include "extract/clip_tokenizer.h"
#include "core/fsutil.h"
#include "extract/clip_text.h"
#include "extract/sd_params.h"
#include "extract/unet.h"
#include "extract/vae.h"

typedef struct {
    const char *name;
    int unet_ch[4], unet_groups, cross_dim, heads[4];
    bool heads_as_list, linear_projection;
    int unet_sample_size;
    int vae_ch[4], vae_groups, vae_sample_size;
    int clip_hidden, clip_heads, clip_layers, clip_intermediate;
    const char *clip_act, *pad_token;
} preset;

static const preset PRESETS[] = {
    /* the parity fixture's tiny-sd15 sizes; CLIP as fixtures/clip/sd15_tiny */
    {"tiny-sd15", {32, 48, 64, 64}, 16, 32, {8, 8, 8, 8}, false, false, 16,
     {16, 24, 32, 32}, 8, 128, 32, 4, 2, 64, "quick_gelu", "<|endoftext|>"},
    /* the tiny-sd21 sizes (the sd fixtures' tiny SD-2.1 model); CLIP as sd2_tiny */
    {"tiny-sd21", {16, 32, 48, 48}, 8, 48, {2, 4, 8, 8}, true, true, 16,
     {8, 16, 32, 32}, 4, 128, 48, 6, 3, 192, "gelu", "!"},
    /* Stable Diffusion 1.5 and 2.1-base sizes (benchmarks) */
    {"sd15-shapes", {320, 640, 1280, 1280}, 32, 768, {8, 8, 8, 8}, false, false, 64,
     {128, 256, 512, 512}, 32, 512, 768, 12, 12, 3072, "quick_gelu", "<|endoftext|>"},
    {"sd21-shapes", {320, 640, 1280, 1280}, 32, 1024, {5, 10, 20, 20}, true, true, 64,
     {128, 256, 512, 512}, 32, 512, 1024, 16, 23, 4096, "gelu", "!"},
};

const char *const *dhf_init_model_presets(void)
{
    static const char *const names[] = {"tiny-sd15", "tiny-sd21", "sd15-shapes", "sd21-shapes",
                                        NULL};
    return names;
}

static const preset *find_preset(const char *name)
{
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++)
        if (strcmp(PRESETS[i].name, name) == 0)
            return &PRESETS[i];
    dhf_err_set("unknown preset '%s' (choose tiny-sd15, tiny-sd21, sd15-shapes or "
                "sd21-shapes)", name);
    return NULL;
}

static cJSON *int_array(const int *v, int n)
{
    return cJSON_CreateIntArray(v, n);
}

static cJSON *string_array(const char *const *v, int n)
{
    return cJSON_CreateStringArray(v, n);
}

/* diffusers v0.14 save_config() of UNet2DConditionModel. */
static char *unet_json(const preset *p)
{
    static const char *const down[4] = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                        "CrossAttnDownBlock2D", "DownBlock2D"};
    static const char *const up[4] = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                      "CrossAttnUpBlock2D"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "_class_name", "UNet2DConditionModel");
    cJSON_AddStringToObject(o, "_diffusers_version", "0.14.0");
    cJSON_AddStringToObject(o, "act_fn", "silu");
    if (p->heads_as_list)
        cJSON_AddItemToObject(o, "attention_head_dim", int_array(p->heads, 4));
    else
        cJSON_AddNumberToObject(o, "attention_head_dim", p->heads[0]);
    cJSON_AddItemToObject(o, "block_out_channels", int_array(p->unet_ch, 4));
    cJSON_AddBoolToObject(o, "center_input_sample", 0);
    cJSON_AddNullToObject(o, "class_embed_type");
    cJSON_AddNumberToObject(o, "conv_in_kernel", 3);
    cJSON_AddNumberToObject(o, "conv_out_kernel", 3);
    cJSON_AddNumberToObject(o, "cross_attention_dim", p->cross_dim);
    cJSON_AddItemToObject(o, "down_block_types", string_array(down, 4));
    cJSON_AddNumberToObject(o, "downsample_padding", 1);
    cJSON_AddBoolToObject(o, "dual_cross_attention", 0);
    cJSON_AddBoolToObject(o, "flip_sin_to_cos", 1);
    cJSON_AddNumberToObject(o, "freq_shift", 0);
    cJSON_AddNumberToObject(o, "in_channels", 4);
    cJSON_AddNumberToObject(o, "layers_per_block", 2);
    cJSON_AddNumberToObject(o, "mid_block_scale_factor", 1);
    cJSON_AddStringToObject(o, "mid_block_type", "UNetMidBlock2DCrossAttn");
    cJSON_AddNumberToObject(o, "norm_eps", 1e-05);
    cJSON_AddNumberToObject(o, "norm_num_groups", p->unet_groups);
    cJSON_AddNullToObject(o, "num_class_embeds");
    cJSON_AddBoolToObject(o, "only_cross_attention", 0);
    cJSON_AddNumberToObject(o, "out_channels", 4);
    cJSON_AddNullToObject(o, "projection_class_embeddings_input_dim");
    cJSON_AddStringToObject(o, "resnet_time_scale_shift", "default");
    cJSON_AddNumberToObject(o, "sample_size", p->unet_sample_size);
    cJSON_AddNullToObject(o, "time_cond_proj_dim");
    cJSON_AddStringToObject(o, "time_embedding_type", "positional");
    cJSON_AddNullToObject(o, "timestep_post_act");
    cJSON_AddItemToObject(o, "up_block_types", string_array(up, 4));
    cJSON_AddBoolToObject(o, "upcast_attention", 0);
    cJSON_AddBoolToObject(o, "use_linear_projection", p->linear_projection);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

static char *vae_json(const preset *p)
{
    static const char *const down[4] = {"DownEncoderBlock2D", "DownEncoderBlock2D",
                                        "DownEncoderBlock2D", "DownEncoderBlock2D"};
    static const char *const up[4] = {"UpDecoderBlock2D", "UpDecoderBlock2D",
                                      "UpDecoderBlock2D", "UpDecoderBlock2D"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "_class_name", "AutoencoderKL");
    cJSON_AddStringToObject(o, "_diffusers_version", "0.14.0");
    cJSON_AddStringToObject(o, "act_fn", "silu");
    cJSON_AddItemToObject(o, "block_out_channels", int_array(p->vae_ch, 4));
    cJSON_AddItemToObject(o, "down_block_types", string_array(down, 4));
    cJSON_AddNumberToObject(o, "in_channels", 3);
    cJSON_AddNumberToObject(o, "latent_channels", 4);
    cJSON_AddNumberToObject(o, "layers_per_block", 2);
    cJSON_AddNumberToObject(o, "norm_num_groups", p->vae_groups);
    cJSON_AddNumberToObject(o, "out_channels", 3);
    cJSON_AddNumberToObject(o, "sample_size", p->vae_sample_size);
    cJSON_AddNumberToObject(o, "scaling_factor", 0.18215);
    cJSON_AddItemToObject(o, "up_block_types", string_array(up, 4));
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

/* transformers 4.27 CLIPTextConfig.to_json_string() subset (SD's own values). */
static char *clip_json(const preset *p)
{
    static const char *const arch[1] = {"CLIPTextModel"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "architectures", string_array(arch, 1));
    cJSON_AddNumberToObject(o, "attention_dropout", 0.0);
    cJSON_AddNumberToObject(o, "bos_token_id", 0);
    cJSON_AddNumberToObject(o, "dropout", 0.0);
    cJSON_AddNumberToObject(o, "eos_token_id", 2);
    cJSON_AddStringToObject(o, "hidden_act", p->clip_act);
    cJSON_AddNumberToObject(o, "hidden_size", p->clip_hidden);
    cJSON_AddNumberToObject(o, "initializer_factor", 1.0);
    cJSON_AddNumberToObject(o, "initializer_range", 0.02);
    cJSON_AddNumberToObject(o, "intermediate_size", p->clip_intermediate);
    cJSON_AddNumberToObject(o, "layer_norm_eps", 1e-05);
    cJSON_AddNumberToObject(o, "max_position_embeddings", 77);
    cJSON_AddStringToObject(o, "model_type", "clip_text_model");
    cJSON_AddNumberToObject(o, "num_attention_heads", p->clip_heads);
    cJSON_AddNumberToObject(o, "num_hidden_layers", p->clip_layers);
    cJSON_AddNumberToObject(o, "pad_token_id", 1);
    cJSON_AddNumberToObject(o, "projection_dim", p->clip_hidden);
    cJSON_AddStringToObject(o, "torch_dtype", "float32");
    cJSON_AddStringToObject(o, "transformers_version", "4.27.4");
    cJSON_AddNumberToObject(o, "vocab_size", 49408);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

int dhf_init_model_configs(const char *preset_name, char **unet, char **vae, char **te,
                           const char **pad_token)
{
    const preset *p = find_preset(preset_name);
    if (!p)
        return -1;
    if (unet && !(*unet = unet_json(p)))
        return dhf_err_set("out of memory");
    if (vae && !(*vae = vae_json(p)))
        return dhf_err_set("out of memory");
    if (te && !(*te = clip_json(p)))
        return dhf_err_set("out of memory");
    if (pad_token)
        *pad_token = p->pad_token;
    return 0;
}

int dhf_init_model_unet_config(const char *preset_name, dhf_unet_config *cfg)
{
    char *json = NULL;
    if (dhf_init_model_configs(preset_name, &json, NULL, NULL, NULL) != 0)
        return -1;
    int rc = dhf_unet_config_parse(json, preset_name, cfg);
    free(json);
    return rc;
}

/* ---- writing ------------------------------------------------------------------------ */

static int write_text(const char *dir, const char *name, const char *text)
{
    char path[4400];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return dhf_err_set("%s/%s: path too long", dir, name);
    size_t len = strlen(text);
    char *with_nl = malloc(len + 2);
    if (!with_nl)
        return dhf_err_set("out of memory");
    memcpy(with_nl, text, len);
    with_nl[len] = '\n';
    int rc = dhf_write_file_atomic(path, with_nl, len + 1);
    free(with_nl);
    return rc;
}

static int write_json(const char *dir, const char *name, cJSON *o)
{
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s)
        return dhf_err_set("out of memory");
    int rc = write_text(dir, name, s);
    free(s);
    return rc;
}

/* vocab.json (ids 0..255 the bytes_to_unicode symbols in table order, 256..511 the
 * same with </w>, 49406/49407 the special tokens) and a merges.txt without merges */
static int write_byte_vocab(const char *dir)
{
    cJSON *v = cJSON_CreateObject();
    int order = 0;
    uint32_t sym[256];
    dhf_clip_bytes_to_unicode(sym);
    /* table order: the printable bytes first, then the rest (bytes_to_unicode's list) */
    int bytes_in_order[256];
    for (int b = 0; b < 256; b++)
        if (sym[b] == (uint32_t)b)
            bytes_in_order[order++] = b;
    for (int b = 0; b < 256; b++)
        if (sym[b] != (uint32_t)b)
            bytes_in_order[order++] = b;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 256; i++) {
            char key[16];
            int k = dhf_utf8_encode(sym[bytes_in_order[i]], key);
            snprintf(key + k, sizeof key - (size_t)k, "%s", pass ? "</w>" : "");
            cJSON_AddNumberToObject(v, key, pass * 256 + i);
        }
    cJSON_AddNumberToObject(v, "<|startoftext|>", 49406);
    cJSON_AddNumberToObject(v, "<|endoftext|>", 49407);
    if (write_json(dir, "vocab.json", v) != 0)
        return -1;
    return write_text(dir, "merges.txt", "#version: 0.2");
}

static int make_subdir(const char *root, const char *name, char *out, size_t n)
{
    if (snprintf(out, n, "%s/%s", root, name) >= (int)n)
        return dhf_err_set("%s/%s: path too long", root, name);
    return dhf_mkdir_p(out);
}

static uint64_t component_seed(uint64_t seed, uint64_t salt)
{
    uint64_t z = seed + salt * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef enum { PART_UNET, PART_VAE, PART_TEXT } part_kind;

/* Parses the written config back, builds the network in GENERATE mode (values go to
 * the writer, no tensor is made) and saves the weights file. */
static int write_weights(part_kind kind, const char *dir, const char *json,
                         const char *file, uint64_t seed, dhf_st_dtype dtype,
                         int64_t *n_params)
{
    char path[4400];
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path)
        return dhf_err_set("%s: path too long", dir);
    dhf_st_writer *w = NULL;
    if (dhf_st_writer_new(&w) != 0)
        return -1;
    dhf_params p;
    dhf_params_init_generate(&p, seed, path, w, dtype);
    int rc = -1;
    if (kind == PART_UNET) {
        dhf_unet_config c;
        dhf_unet *u = NULL;
        if (dhf_unet_config_parse(json, path, &c) == 0 && dhf_unet_build(&c, &p, &u) == 0) {
            dhf_unet_free(u);
            rc = 0;
        }
    } else if (kind == PART_VAE) {
        dhf_vae_config c;
        dhf_vae *v = NULL;
        if (dhf_vae_config_parse(json, path, &c) == 0 && dhf_vae_build(&c, &p, true, &v) == 0) {
            dhf_vae_free(v);
            rc = 0;
        }
    } else {
        dhf_clip_config c;
        dhf_clip_text *t = NULL;
        if (dhf_clip_config_parse(json, path, &c) == 0 &&
            dhf_clip_text_build(&c, &p, &t) == 0) {
            dhf_clip_text_free(t);
            rc = 0;
        }
    }
    if (rc == 0) {
        dhf_st_writer_set_metadata(w, "format", "pt");
        rc = dhf_st_writer_save(w, path);
    }
    if (rc == 0 && n_params)
        *n_params += p.n_values;
    dhf_params_close(&p);
    dhf_st_writer_free(w);
    return rc;
}

static bool dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return false;
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            empty = false;
    closedir(d);
    return empty;
}

static int write_all(const char *root, const preset *p, const dhf_init_model_opts *o,
                     int64_t *n_params)
{
    char sub[4400];
    char *uj = unet_json(p), *vj = vae_json(p), *tj = clip_json(p);
    int rc = -1;
    if (!uj || !vj || !tj) {
        dhf_err_set("out of memory");
        goto out;
    }
    /* model_index.json */
    {
        cJSON *mi = cJSON_CreateObject();
        const char *pairs[][3] = {{"scheduler", "diffusers", "DDIMScheduler"},
                                  {"text_encoder", "transformers", "CLIPTextModel"},
                                  {"tokenizer", "transformers", "CLIPTokenizer"},
                                  {"unet", "diffusers", "UNet2DConditionModel"},
                                  {"vae", "diffusers", "AutoencoderKL"}};
        cJSON_AddStringToObject(mi, "_class_name", "StableDiffusionPipeline");
        cJSON_AddStringToObject(mi, "_diffusers_version", "0.14.0");
        char note[256];
        snprintf(note, sizeof note, "dhf init-model --preset %s --seed %llu: random weights",
                 p->name, (unsigned long long)o->seed);
        cJSON_AddStringToObject(mi, "_dhf_note", note);
        cJSON *nulls = cJSON_CreateArray();
        cJSON_AddItemToArray(nulls, cJSON_CreateNull());
        cJSON_AddItemToArray(nulls, cJSON_CreateNull());
        cJSON_AddItemToObject(mi, "feature_extractor", nulls);
        cJSON_AddBoolToObject(mi, "requires_safety_checker", 0);
        cJSON_AddItemToObject(mi, "safety_checker", cJSON_Duplicate(nulls, 1));
        for (int i = 0; i < 5; i++)
            cJSON_AddItemToObject(mi, pairs[i][0], string_array(&pairs[i][1], 2));
        if (write_json(root, "model_index.json", mi) != 0)
            goto out;
    }
    /* scheduler/ (the model's own DDIM config; DHF ignores it and uses steps_offset 0) */
    {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "_class_name", "DDIMScheduler");
        cJSON_AddStringToObject(s, "_diffusers_version", "0.14.0");
        cJSON_AddNumberToObject(s, "beta_end", 0.012);
        cJSON_AddStringToObject(s, "beta_schedule", "scaled_linear");
        cJSON_AddNumberToObject(s, "beta_start", 0.00085);
        cJSON_AddBoolToObject(s, "clip_sample", 0);
        cJSON_AddNumberToObject(s, "num_train_timesteps", 1000);
        cJSON_AddStringToObject(s, "prediction_type", "epsilon");
        cJSON_AddBoolToObject(s, "set_alpha_to_one", 0);
        cJSON_AddNumberToObject(s, "steps_offset", 1);
        cJSON_AddNullToObject(s, "trained_betas");
        if (make_subdir(root, "scheduler", sub, sizeof sub) != 0 ||
            write_json(sub, "scheduler_config.json", s) != 0)
            goto out;
    }
    /* tokenizer/: the configs and a byte-level BPE vocabulary (the 256 byte symbols
     * and their </w> forms, the two special tokens, no merges), so prompts tokenise */
    {
        cJSON *t = cJSON_CreateObject(), *m = cJSON_CreateObject();
        cJSON_AddBoolToObject(t, "add_prefix_space", 0);
        cJSON_AddStringToObject(t, "bos_token", "<|startoftext|>");
        cJSON_AddBoolToObject(t, "do_lower_case", 1);
        cJSON_AddStringToObject(t, "eos_token", "<|endoftext|>");
        cJSON_AddStringToObject(t, "errors", "replace");
        cJSON_AddNumberToObject(t, "model_max_length", 77);
        cJSON_AddStringToObject(t, "pad_token", p->pad_token);
        cJSON_AddStringToObject(t, "tokenizer_class", "CLIPTokenizer");
        cJSON_AddStringToObject(t, "unk_token", "<|endoftext|>");
        cJSON_AddStringToObject(m, "bos_token", "<|startoftext|>");
        cJSON_AddStringToObject(m, "eos_token", "<|endoftext|>");
        cJSON_AddStringToObject(m, "pad_token", p->pad_token);
        cJSON_AddStringToObject(m, "unk_token", "<|endoftext|>");
        if (make_subdir(root, "tokenizer", sub, sizeof sub) != 0 ||
            write_json(sub, "tokenizer_config.json", t) != 0 ||
            write_json(sub, "special_tokens_map.json", m) != 0 ||
            write_byte_vocab(sub) != 0)
            goto out;
    }
    if (make_subdir(root, "unet", sub, sizeof sub) != 0 || write_text(sub, "config.json", uj) ||
        write_weights(PART_UNET, sub, uj, "diffusion_pytorch_model.safetensors",
                      component_seed(o->seed, 1), o->dtype, n_params) != 0)
        goto out;
    if (make_subdir(root, "vae", sub, sizeof sub) != 0 || write_text(sub, "config.json", vj) ||
        write_weights(PART_VAE, sub, vj, "diffusion_pytorch_model.safetensors",
                      component_seed(o->seed, 2), o->dtype, n_params) != 0)
        goto out;
    if (make_subdir(root, "text_encoder", sub, sizeof sub) != 0 ||
        write_text(sub, "config.json", tj) ||
        write_weights(PART_TEXT, sub, tj, "model.safetensors", component_seed(o->seed, 3),
                      o->dtype, n_params) != 0)
        goto out;
    rc = 0;
out:
    free(uj);
    free(vj);
    free(tj);
    return rc;
}

int dhf_init_model_write(const char *out_dir, const dhf_init_model_opts *opts,
                         int64_t *n_params)
{
    const preset *p = find_preset(opts->preset ? opts->preset : "");
    if (!p)
        return -1;
    if (opts->dtype != DHF_ST_F32 && opts->dtype != DHF_ST_F16 && opts->dtype != DHF_ST_BF16)
        return dhf_err_set("init-model: weights dtype must be float32, float16 or bfloat16");
    int64_t count = 0;
    bool exists = dhf_path_exists(out_dir);
    if (exists && !dhf_is_dir(out_dir))
        return dhf_err_set("%s: exists and is not a folder", out_dir);
    if (exists && !dir_is_empty(out_dir)) {
        if (!opts->force)
            return dhf_err_set("%s: folder exists and is not empty (use --force to overwrite "
                               "its model files)", out_dir);
        if (write_all(out_dir, p, opts, &count) != 0)
            return -1;
    } else {
        char tmp[4400];
        if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out_dir, (long)getpid()) >= (int)sizeof tmp)
            return dhf_err_set("%s: path too long", out_dir);
        if (dhf_mkdir_p(tmp) != 0)
            return -1;
        if (write_all(tmp, p, opts, &count) != 0) {
            dhf_remove_tree(tmp);
            return -1;
        }
        if (exists && rmdir(out_dir) != 0) {
            dhf_remove_tree(tmp);
            return dhf_err_set("%s: cannot replace the empty folder", out_dir);
        }
        if (rename(tmp, out_dir) != 0) {
            dhf_remove_tree(tmp);
            return dhf_err_set("%s: cannot move the new model into place", out_dir);
        }
    }
    if (n_params)
        *n_params = count;
    return 0;
}
