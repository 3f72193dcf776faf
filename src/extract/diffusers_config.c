/* diffusers_config.c — config.json readers for the UNet, the VAE, the CLIP text
 * encoder, and the tokenizer's pad token (see diffusers_config.h). */
#include "extract/diffusers_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"

/* ---- typed field access with diffusers' defaults ------------------------------ */

static const cJSON *field(const cJSON *root, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

static int get_int(const cJSON *root, const char *origin, const char *key, int def, int lo,
                   int hi, int *out)
{
    const cJSON *v = field(root, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return dhf_err_set("%s: key '%s': expected an integer", origin, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return dhf_err_set("%s: key '%s': %g is out of range [%d, %d]", origin, key,
                           v->valuedouble, lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

static int get_double(const cJSON *root, const char *origin, const char *key, double def,
                      double *out)
{
    const cJSON *v = field(root, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return dhf_err_set("%s: key '%s': expected a number", origin, key);
    *out = v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *root, const char *origin, const char *key, bool def,
                    bool *out)
{
    const cJSON *v = field(root, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v))
        return dhf_err_set("%s: key '%s': expected true or false", origin, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int get_string(const cJSON *root, const char *origin, const char *key,
                      const char *def, const char **out)
{
    const cJSON *v = field(root, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsString(v))
        return dhf_err_set("%s: key '%s': expected a string", origin, key);
    *out = v->valuestring;
    return 0;
}

/* The key must be absent or null: it selects a feature dhf does not implement. */
static int require_null(const cJSON *root, const char *origin, const char *key,
                        const char *what)
{
    if (field(root, key))
        return dhf_err_set("%s: key '%s': unsupported value (only null is supported: %s)",
                           origin, key, what);
    return 0;
}

static int require_string(const cJSON *root, const char *origin, const char *key,
                          const char *def, const char *only)
{
    const char *s = def;
    if (get_string(root, origin, key, def, &s) != 0)
        return -1;
    if (strcmp(s, only) != 0)
        return dhf_err_set("%s: key '%s': unsupported value \"%s\" (supported: \"%s\")",
                           origin, key, s, only);
    return 0;
}

/* An int broadcast to n entries, or a list of exactly n ints. */
static int get_int_or_list(const cJSON *root, const char *origin, const char *key, int def,
                           int n, int lo, int *out)
{
    const cJSON *v = field(root, key);
    if (!v || cJSON_IsNumber(v)) {
        int x;
        if (get_int(root, origin, key, def, lo, 1 << 20, &x) != 0)
            return -1;
        for (int i = 0; i < n; i++)
            out[i] = x;
        return 0;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n)
        return dhf_err_set("%s: key '%s': expected an integer or a list of %d integers (one "
                           "per block)", origin, key, n);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) ||
            e->valuedouble < lo || e->valuedouble > (1 << 20))
            return dhf_err_set("%s: key '%s'[%d]: expected an integer >= %d", origin, key, i,
                               lo);
        out[i] = (int)e->valuedouble;
    }
    return 0;
}

static int get_int_list(const cJSON *root, const char *origin, const char *key,
                        const int *def, int n_def, int *out, int *n)
{
    const cJSON *v = field(root, key);
    if (!v) {
        for (int i = 0; i < n_def; i++)
            out[i] = def[i];
        *n = n_def;
        return 0;
    }
    int len = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (len < 1 || len > DHF_UNET_MAX_BLOCKS)
        return dhf_err_set("%s: key '%s': expected a list of 1..%d integers", origin, key,
                           DHF_UNET_MAX_BLOCKS);
    for (int i = 0; i < len; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) ||
            e->valuedouble < 1 || e->valuedouble > (1 << 20))
            return dhf_err_set("%s: key '%s'[%d]: expected a positive integer", origin, key, i);
        out[i] = (int)e->valuedouble;
    }
    *n = len;
    return 0;
}

/* Block type lists: each entry must be one of two names; *cross gets which. */
static int get_block_types(const cJSON *root, const char *origin, const char *key,
                           const char *const *def, int n, const char *plain,
                           const char *cross_name, bool *cross)
{
    const cJSON *v = field(root, key);
    if (v && (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n))
        return dhf_err_set("%s: key '%s': expected a list of %d block types (one per entry "
                           "of block_out_channels)", origin, key, n);
    for (int i = 0; i < n; i++) {
        const char *s;
        if (v) {
            const cJSON *e = cJSON_GetArrayItem(v, i);
            if (!cJSON_IsString(e))
                return dhf_err_set("%s: key '%s'[%d]: expected a string", origin, key, i);
            s = e->valuestring;
        } else {
            if (!def)
                return dhf_err_set("%s: key '%s' is missing", origin, key);
            s = def[i];
        }
        if (strcmp(s, plain) == 0)
            cross[i] = false;
        else if (cross_name && strcmp(s, cross_name) == 0)
            cross[i] = true;
        else
            return dhf_err_set("%s: key '%s'[%d]: unsupported block type \"%s\" (supported: "
                               "\"%s\"%s%s%s)", origin, key, i, s, plain,
                               cross_name ? ", \"" : "", cross_name ? cross_name : "",
                               cross_name ? "\"" : "");
    }
    return 0;
}

static cJSON *parse_root(const char *json, const char *origin)
{
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        dhf_err_set("%s: not valid JSON", origin);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        dhf_err_set("%s: expected a JSON object", origin);
        return NULL;
    }
    return root;
}

typedef int (*parse_fn)(const char *json, const char *origin, void *c);

static int load_file(const char *path, parse_fn parse, void *c)
{
    char *text = NULL;
    size_t len = 0;
    if (dhf_read_file(path, &text, &len) != 0)
        return -1;
    int rc = parse(text, path, c);
    free(text);
    return rc;
}

/* ---- UNet2DConditionModel -------------------------------------------------------- */

static int parse_unet(const char *json, const char *origin, dhf_unet_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", origin);
    cJSON *root = parse_root(json, origin);
    if (!root)
        return -1;
    int rc = -1;
    static const int def_channels[4] = {320, 640, 1280, 1280};
    static const char *const def_down[4] = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                            "CrossAttnDownBlock2D", "DownBlock2D"};
    static const char *const def_up[4] = {"UpBlock2D", "CrossAttnUpBlock2D",
                                          "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
    if (get_int(root, origin, "in_channels", 4, 1, 1 << 16, &c->in_channels) ||
        get_int(root, origin, "out_channels", 4, 1, 1 << 16, &c->out_channels) ||
        get_int_list(root, origin, "block_out_channels", def_channels, 4,
                     c->block_out_channels, &c->n_blocks))
        goto out;
    const char *const *dd = c->n_blocks == 4 ? def_down : NULL;
    const char *const *du = c->n_blocks == 4 ? def_up : NULL;
    if (get_block_types(root, origin, "down_block_types", dd, c->n_blocks, "DownBlock2D",
                        "CrossAttnDownBlock2D", c->down_cross_attn) ||
        get_block_types(root, origin, "up_block_types", du, c->n_blocks, "UpBlock2D",
                        "CrossAttnUpBlock2D", c->up_cross_attn) ||
        require_string(root, origin, "mid_block_type", "UNetMidBlock2DCrossAttn",
                       "UNetMidBlock2DCrossAttn") ||
        get_int(root, origin, "layers_per_block", 2, 1, 64, &c->layers_per_block) ||
        get_int(root, origin, "norm_num_groups", 32, 1, 1 << 16, &c->norm_num_groups) ||
        get_double(root, origin, "norm_eps", 1e-5, &c->norm_eps) ||
        get_int(root, origin, "cross_attention_dim", 1280, 1, 1 << 20,
                &c->cross_attention_dim) ||
        get_bool(root, origin, "use_linear_projection", false, &c->use_linear_projection) ||
        get_bool(root, origin, "upcast_attention", false, &c->upcast_attention) ||
        get_bool(root, origin, "flip_sin_to_cos", true, &c->flip_sin_to_cos) ||
        get_double(root, origin, "freq_shift", 0.0, &c->freq_shift) ||
        get_bool(root, origin, "center_input_sample", false, &c->center_input_sample) ||
        get_int(root, origin, "conv_in_kernel", 3, 1, 31, &c->conv_in_kernel) ||
        get_int(root, origin, "conv_out_kernel", 3, 1, 31, &c->conv_out_kernel) ||
        get_int(root, origin, "downsample_padding", 1, 0, 16, &c->downsample_padding) ||
        get_double(root, origin, "mid_block_scale_factor", 1.0, &c->mid_block_scale_factor) ||
        get_int_or_list(root, origin, "transformer_layers_per_block", 1, c->n_blocks, 1,
                        c->transformer_layers))
        goto out;
    /* v0.14 semantics: attention_head_dim is the head COUNT; newer diffusers spell the
     * same thing num_attention_heads (and then use it instead). */
    const char *heads_key = field(root, "num_attention_heads") ? "num_attention_heads"
                                                               : "attention_head_dim";
    if (get_int_or_list(root, origin, heads_key, 8, c->n_blocks, 1, c->heads))
        goto out;
    if (c->conv_in_kernel % 2 == 0 || c->conv_out_kernel % 2 == 0) {
        dhf_err_set("%s: key 'conv_in_kernel'/'conv_out_kernel': only odd kernel sizes are "
                    "supported", origin);
        goto out;
    }
    if (c->norm_eps <= 0) {
        dhf_err_set("%s: key 'norm_eps': expected a positive number", origin);
        goto out;
    }
    /* Features dhf does not implement: each must keep diffusers' default. */
    bool dual = false, skip_act = false, concat = false;
    double out_scale = 1.0;
    if (require_string(root, origin, "act_fn", "silu", "silu") ||
        require_string(root, origin, "time_embedding_type", "positional", "positional") ||
        require_string(root, origin, "resnet_time_scale_shift", "default", "default") ||
        require_string(root, origin, "attention_type", "default", "default") ||
        require_null(root, origin, "class_embed_type", "class-conditional UNets") ||
        require_null(root, origin, "num_class_embeds", "class-conditional UNets") ||
        require_null(root, origin, "addition_embed_type", "SDXL-style added embeddings") ||
        require_null(root, origin, "encoder_hid_dim", "projected encoder states") ||
        require_null(root, origin, "time_cond_proj_dim", "timestep conditioning") ||
        require_null(root, origin, "timestep_post_act", "timestep post activation") ||
        require_null(root, origin, "cross_attention_norm", "cross-attention norm") ||
        require_null(root, origin, "projection_class_embeddings_input_dim",
                     "class embeddings") ||
        get_bool(root, origin, "dual_cross_attention", false, &dual) ||
        get_bool(root, origin, "resnet_skip_time_act", false, &skip_act) ||
        get_bool(root, origin, "class_embeddings_concat", false, &concat) ||
        get_double(root, origin, "resnet_out_scale_factor", 1.0, &out_scale))
        goto out;
    if (dual || skip_act || concat || out_scale != 1.0) {
        dhf_err_set("%s: key '%s': unsupported value (only the SD 1.x/2.x default is "
                    "supported)", origin,
                    dual ? "dual_cross_attention"
                         : skip_act ? "resnet_skip_time_act"
                                    : concat ? "class_embeddings_concat"
                                             : "resnet_out_scale_factor");
        goto out;
    }
    const cJSON *oca = field(root, "only_cross_attention");
    if (oca) {
        bool bad = cJSON_IsTrue(oca);
        if (cJSON_IsArray(oca))
            for (int i = 0; i < cJSON_GetArraySize(oca); i++)
                bad = bad || cJSON_IsTrue(cJSON_GetArrayItem(oca, i));
        if (bad) {
            dhf_err_set("%s: key 'only_cross_attention': unsupported value (only false)",
                        origin);
            goto out;
        }
    }
    for (int i = 0; i < c->n_blocks; i++) {
        int ch = c->block_out_channels[i];
        if (ch % c->norm_num_groups != 0) {
            dhf_err_set("%s: key 'norm_num_groups': %d does not divide block width %d", origin,
                        c->norm_num_groups, ch);
            goto out;
        }
        if (ch % c->heads[i] != 0) {
            dhf_err_set("%s: key '%s'[%d]: %d heads do not divide block width %d", origin,
                        heads_key, i, c->heads[i], ch);
            goto out;
        }
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int dhf_unet_config_parse(const char *json, const char *origin, dhf_unet_config *c)
{
    return parse_unet(json, origin, c);
}

static int parse_unet_v(const char *json, const char *origin, void *c)
{
    return parse_unet(json, origin, c);
}

int dhf_unet_config_load(const char *path, dhf_unet_config *c)
{
    return load_file(path, parse_unet_v, c);
}

/* ---- AutoencoderKL ---------------------------------------------------------------- */

static int parse_vae(const char *json, const char *origin, dhf_vae_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", origin);
    cJSON *root = parse_root(json, origin);
    if (!root)
        return -1;
    int rc = -1;
    static const int def_channels[1] = {64};
    static const char *const def_down[1] = {"DownEncoderBlock2D"};
    bool cross[DHF_UNET_MAX_BLOCKS];
    if (get_int(root, origin, "in_channels", 3, 1, 1 << 16, &c->in_channels) ||
        get_int(root, origin, "latent_channels", 4, 1, 1 << 16, &c->latent_channels) ||
        get_int_list(root, origin, "block_out_channels", def_channels, 1,
                     c->block_out_channels, &c->n_blocks) ||
        get_block_types(root, origin, "down_block_types", c->n_blocks == 1 ? def_down : NULL,
                        c->n_blocks, "DownEncoderBlock2D", NULL, cross) ||
        get_int(root, origin, "layers_per_block", 1, 1, 64, &c->layers_per_block) ||
        get_int(root, origin, "norm_num_groups", 32, 1, 1 << 16, &c->norm_num_groups) ||
        get_double(root, origin, "scaling_factor", 0.18215, &c->scaling_factor) ||
        get_bool(root, origin, "use_quant_conv", true, &c->use_quant_conv) ||
        get_bool(root, origin, "mid_block_add_attention", true, &c->mid_block_add_attention) ||
        require_string(root, origin, "act_fn", "silu", "silu") ||
        require_null(root, origin, "shift_factor", "latent shift (SD 3 / FLUX VAEs)") ||
        require_null(root, origin, "latents_mean", "latent statistics") ||
        require_null(root, origin, "latents_std", "latent statistics"))
        goto out;
    for (int i = 0; i < c->n_blocks; i++)
        if (c->block_out_channels[i] % c->norm_num_groups != 0) {
            dhf_err_set("%s: key 'norm_num_groups': %d does not divide block width %d", origin,
                        c->norm_num_groups, c->block_out_channels[i]);
            goto out;
        }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int dhf_vae_config_parse(const char *json, const char *origin, dhf_vae_config *c)
{
    return parse_vae(json, origin, c);
}

static int parse_vae_v(const char *json, const char *origin, void *c)
{
    return parse_vae(json, origin, c);
}

int dhf_vae_config_load(const char *path, dhf_vae_config *c)
{
    return load_file(path, parse_vae_v, c);
}

/* ---- CLIPTextModel ----------------------------------------------------------------- */

static int parse_clip(const char *json, const char *origin, dhf_clip_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", origin);
    cJSON *root = parse_root(json, origin);
    if (!root)
        return -1;
    int rc = -1;
    const char *act = NULL, *model_type = NULL;
    if (get_int(root, origin, "vocab_size", 49408, 1, 1 << 24, &c->vocab_size) ||
        get_int(root, origin, "hidden_size", 512, 1, 1 << 16, &c->hidden_size) ||
        get_int(root, origin, "intermediate_size", 2048, 1, 1 << 20, &c->intermediate_size) ||
        get_int(root, origin, "num_attention_heads", 8, 1, 1 << 12,
                &c->num_attention_heads) ||
        get_int(root, origin, "num_hidden_layers", 12, 1, 1024, &c->num_hidden_layers) ||
        get_int(root, origin, "max_position_embeddings", 77, 1, 1 << 16,
                &c->max_position_embeddings) ||
        get_double(root, origin, "layer_norm_eps", 1e-5, &c->layer_norm_eps) ||
        get_string(root, origin, "hidden_act", "quick_gelu", &act) ||
        get_string(root, origin, "model_type", "clip_text_model", &model_type))
        goto out;
    if (strcmp(act, "quick_gelu") == 0) {
        c->hidden_act = DHF_ACT_QUICK_GELU;
    } else if (strcmp(act, "gelu") == 0) {
        c->hidden_act = DHF_ACT_GELU;
    } else {
        dhf_err_set("%s: key 'hidden_act': unsupported value \"%s\" (supported: "
                    "\"quick_gelu\", \"gelu\")", origin, act);
        goto out;
    }
    if (strcmp(model_type, "clip_text_model") != 0) {
        dhf_err_set("%s: key 'model_type': unsupported value \"%s\" (supported: "
                    "\"clip_text_model\")", origin, model_type);
        goto out;
    }
    if (c->hidden_size % c->num_attention_heads != 0) {
        dhf_err_set("%s: key 'num_attention_heads': %d heads do not divide hidden_size %d",
                    origin, c->num_attention_heads, c->hidden_size);
        goto out;
    }
    if (c->layer_norm_eps <= 0) {
        dhf_err_set("%s: key 'layer_norm_eps': expected a positive number", origin);
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int dhf_clip_config_parse(const char *json, const char *origin, dhf_clip_config *c)
{
    return parse_clip(json, origin, c);
}

static int parse_clip_v(const char *json, const char *origin, void *c)
{
    return parse_clip(json, origin, c);
}

int dhf_clip_config_load(const char *path, dhf_clip_config *c)
{
    return load_file(path, parse_clip_v, c);
}

/* ---- tokenizer pad token ------------------------------------------------------------ */

/* "pad_token" of one JSON file: copied into buf; 1 found, 0 absent, -1 error. */
static int read_pad_token(const char *path, char *buf, size_t n)
{
    if (!dhf_path_exists(path))
        return 0;
    char *text = NULL;
    size_t len = 0;
    if (dhf_read_file(path, &text, &len) != 0)
        return -1;
    cJSON *root = parse_root(text, path);
    free(text);
    if (!root)
        return -1;
    const cJSON *v = field(root, "pad_token");
    int rc = 0;
    if (v && cJSON_IsObject(v))
        v = field(v, "content");
    if (v && cJSON_IsString(v)) {
        snprintf(buf, n, "%s", v->valuestring);
        rc = 1;
    } else if (v) {
        rc = dhf_err_set("%s: key 'pad_token': expected a string or {\"content\": string}",
                         path);
    }
    cJSON_Delete(root);
    return rc;
}

int dhf_tokenizer_pad_id(const char *tokenizer_dir, int64_t *pad_id)
{
    char path[4096], token[256] = "";
    int found = 0;
    const char *files[2] = {"special_tokens_map.json", "tokenizer_config.json"};
    for (int i = 0; i < 2 && !found; i++) {
        if (dhf_path_join(path, sizeof path, tokenizer_dir, files[i]) != 0)
            return -1;
        found = read_pad_token(path, token, sizeof token);
        if (found < 0)
            return -1;
    }
    if (!found)
        return dhf_err_set("%s: no 'pad_token' in special_tokens_map.json or "
                           "tokenizer_config.json (needed for the empty prompt's padding)",
                           tokenizer_dir);
    char vocab_path[4096];
    if (dhf_path_join(vocab_path, sizeof vocab_path, tokenizer_dir, "vocab.json") != 0)
        return -1;
    if (dhf_path_exists(vocab_path)) {
        char *text = NULL;
        size_t len = 0;
        if (dhf_read_file(vocab_path, &text, &len) != 0)
            return -1;
        cJSON *root = parse_root(text, vocab_path);
        free(text);
        if (!root)
            return -1;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, token);
        int rc = 0;
        if (v && cJSON_IsNumber(v))
            *pad_id = (int64_t)v->valuedouble;
        else
            rc = dhf_err_set("%s: pad token \"%s\" is not in the vocabulary", vocab_path,
                             token);
        cJSON_Delete(root);
        return rc;
    }
    static const struct { const char *token; int64_t id; } known[] = {
        {"<|endoftext|>", 49407}, {"<|startoftext|>", 49406}, {"!", 0}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(token, known[i].token) == 0) {
            *pad_id = known[i].id;
            return 0;
        }
    return dhf_err_set("%s: pad token \"%s\" has no known CLIP id and there is no "
                       "vocab.json to look it up", tokenizer_dir, token);
}
