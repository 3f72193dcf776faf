/* vae.c — AutoencoderKL (diffusers v0.14): the encoder (conv_in, DownEncoderBlock2D x n,
 * mid block with a single-head attention, GroupNorm-SiLU-conv_out, quant_conv) and the
 * latent; the decoder (post_quant_conv, conv_in, mid block, UpDecoderBlock2D x n,
 * GroupNorm-SiLU-conv_out) and the pipeline's uint8 conversion. */
#include "extract/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "extract/sd_blocks.h"

#define VAE_EPS 1e-6   /* every VAE GroupNorm (resnets, attention, conv_norm_out) */

typedef struct {
    dhf_resnet *resnets;
    int n_layers;
    bool has_down;
    dhf_conv2d_layer down;
} vae_block;

typedef struct {
    dhf_resnet *resnets;
    int n_layers;
    bool has_up;
    dhf_conv2d_layer up;
} vae_up_block;

/* the decoder's half, loaded only when asked for */
typedef struct {
    bool loaded;
    dhf_conv2d_layer post_quant_conv, conv_in, conv_out;
    dhf_resnet mid_res0, mid_res1;
    dhf_vae_attention mid_attn;
    vae_up_block blocks[DHF_UNET_MAX_BLOCKS];
    dhf_groupnorm norm_out;
} vae_decoder;

struct dhf_vae {
    dhf_vae_config cfg;
    dhf_tensor_list params;
    dhf_model_placement placement;
    dhf_conv2d_layer conv_in, conv_out, quant_conv;
    vae_block blocks[DHF_UNET_MAX_BLOCKS];
    dhf_resnet mid_res0, mid_res1;
    dhf_vae_attention mid_attn;
    dhf_groupnorm norm_out;
    vae_decoder dec;
};

void dhf_vae_free(dhf_vae *v)
{
    if (!v)
        return;
    for (int i = 0; i < DHF_UNET_MAX_BLOCKS; i++) {
        free(v->blocks[i].resnets);
        free(v->dec.blocks[i].resnets);
    }
    dhf_tensor_list_free(&v->params);
    free(v);
}

static int build_encoder(dhf_vae *v, dhf_params *p)
{
    const dhf_vae_config *c = &v->cfg;
    char n[256];
    int nb = c->n_blocks, g = c->norm_num_groups, c0 = c->block_out_channels[0];
    if (dhf_conv2d_load(&v->conv_in, p, "encoder.conv_in", c->in_channels, c0, 3, 1, 1,
                        true) != 0)
        return -1;
    int out_ch = c0;
    for (int i = 0; i < nb; i++) {
        vae_block *b = &v->blocks[i];
        int in_ch = out_ch;
        out_ch = c->block_out_channels[i];
        b->n_layers = c->layers_per_block;
        b->resnets = calloc((size_t)b->n_layers, sizeof *b->resnets);
        if (!b->resnets)
            return dhf_err_set("out of memory");
        for (int j = 0; j < b->n_layers; j++) {
            snprintf(n, sizeof n, "encoder.down_blocks.%d.resnets.%d", i, j);
            if (dhf_resnet_load(&b->resnets[j], p, n, j == 0 ? in_ch : out_ch, out_ch, 0, g,
                                VAE_EPS, 1.0) != 0)
                return -1;
        }
        b->has_down = i < nb - 1;
        if (b->has_down) {
            snprintf(n, sizeof n, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            if (dhf_conv2d_load(&b->down, p, n, out_ch, out_ch, 3, 2, 0, true) != 0)
                return -1;
            b->down.pad_right_bottom = true;   /* downsample_padding 0 in the Encoder */
        }
    }
    int cm = c->block_out_channels[nb - 1], lat2 = 2 * c->latent_channels;
    if (dhf_resnet_load(&v->mid_res0, p, "encoder.mid_block.resnets.0", cm, cm, 0, g, VAE_EPS,
                        1.0) != 0)
        return -1;
    if (c->mid_block_add_attention &&
        dhf_vae_attention_load(&v->mid_attn, p, "encoder.mid_block.attentions.0", cm, g,
                               VAE_EPS) != 0)
        return -1;
    if (dhf_resnet_load(&v->mid_res1, p, "encoder.mid_block.resnets.1", cm, cm, 0, g, VAE_EPS,
                        1.0) != 0 ||
        dhf_groupnorm_load(&v->norm_out, p, "encoder.conv_norm_out", g, cm, VAE_EPS) != 0 ||
        dhf_conv2d_load(&v->conv_out, p, "encoder.conv_out", cm, lat2, 3, 1, 1, true) != 0)
        return -1;
    if (c->use_quant_conv &&
        dhf_conv2d_load(&v->quant_conv, p, "quant_conv", lat2, lat2, 1, 1, 0, true) != 0)
        return -1;
    return 0;
}

/* The decoder (diffusers v0.14 Decoder names): read when the caller decodes, written
 * by init-model so a folder is a complete AutoencoderKL. */
static int build_decoder(dhf_vae *v, dhf_params *p)
{
    const dhf_vae_config *c = &v->cfg;
    vae_decoder *d = &v->dec;
    char n[256];
    int nb = c->n_blocks, g = c->norm_num_groups, L = c->layers_per_block;
    int cm = c->block_out_channels[nb - 1], lat = c->latent_channels;
    if (c->use_quant_conv &&
        dhf_conv2d_load(&d->post_quant_conv, p, "post_quant_conv", lat, lat, 1, 1, 0, true) != 0)
        return -1;
    if (dhf_conv2d_load(&d->conv_in, p, "decoder.conv_in", lat, cm, 3, 1, 1, true) != 0 ||
        dhf_resnet_load(&d->mid_res0, p, "decoder.mid_block.resnets.0", cm, cm, 0, g, VAE_EPS,
                        1.0) ||
        (c->mid_block_add_attention &&
         dhf_vae_attention_load(&d->mid_attn, p, "decoder.mid_block.attentions.0", cm, g,
                                VAE_EPS)) ||
        dhf_resnet_load(&d->mid_res1, p, "decoder.mid_block.resnets.1", cm, cm, 0, g, VAE_EPS,
                        1.0))
        return -1;
    int out_ch = cm;
    for (int i = 0; i < nb; i++) {
        vae_up_block *b = &d->blocks[i];
        int prev = out_ch;
        out_ch = c->block_out_channels[nb - 1 - i];
        b->n_layers = L + 1;
        b->resnets = calloc((size_t)b->n_layers, sizeof *b->resnets);
        if (!b->resnets)
            return dhf_err_set("out of memory");
        for (int j = 0; j < b->n_layers; j++) {
            snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.%d", i, j);
            if (dhf_resnet_load(&b->resnets[j], p, n, j == 0 ? prev : out_ch, out_ch, 0, g,
                                VAE_EPS, 1.0) != 0)
                return -1;
        }
        b->has_up = i < nb - 1;
        if (b->has_up) {
            snprintf(n, sizeof n, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            if (dhf_conv2d_load(&b->up, p, n, out_ch, out_ch, 3, 1, 1, true) != 0)
                return -1;
        }
    }
    int c0 = c->block_out_channels[0];
    if (dhf_groupnorm_load(&d->norm_out, p, "decoder.conv_norm_out", g, c0, VAE_EPS) != 0 ||
        dhf_conv2d_load(&d->conv_out, p, "decoder.conv_out", c0, c->in_channels, 3, 1, 1,
                        true) != 0)
        return -1;
    d->loaded = true;
    return 0;
}

int dhf_vae_build(const dhf_vae_config *cfg, dhf_params *p, bool with_decoder, dhf_vae **out)
{
    dhf_vae *v = calloc(1, sizeof *v);
    if (!v)
        return dhf_err_set("out of memory");
    v->cfg = *cfg;
    v->placement.device = p->device;
    v->placement.dtype = p->dtype;
    dhf_tensor_list *saved = p->dst;
    if (p->mode != DHF_PARAMS_GENERATE)
        p->dst = &v->params;
    int rc = build_encoder(v, p);
    if (rc == 0 && with_decoder)
        rc = build_decoder(v, p);
    p->dst = saved;
    if (rc != 0) {
        dhf_vae_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

int dhf_vae_load_with_decoder(const char *vae_dir, const dhf_model_placement *placement,
                              bool with_decoder, dhf_vae **out)
{
    char cfg_path[4096];
    dhf_vae_config cfg;
    dhf_params p;
    if (dhf_path_join(cfg_path, sizeof cfg_path, vae_dir, "config.json") != 0 ||
        dhf_vae_config_load(cfg_path, &cfg) != 0 ||
        dhf_params_open_component(&p, vae_dir, "diffusion_pytorch_model", placement) != 0)
        return -1;
    dhf_vae *v = NULL;
    int rc = dhf_vae_build(&cfg, &p, with_decoder, &v);
    static const char *const ignored[] = {"decoder.", "post_quant_conv.", NULL};
    if (rc == 0)
        rc = dhf_params_check_all_used(&p, with_decoder ? NULL : ignored);
    dhf_params_close(&p);
    if (rc != 0) {
        dhf_vae_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

int dhf_vae_load(const char *vae_dir, const dhf_model_placement *placement, dhf_vae **out)
{
    return dhf_vae_load_with_decoder(vae_dir, placement, false, out);
}

const dhf_vae_config *dhf_vae_config_of(const dhf_vae *v) { return &v->cfg; }

int dhf_vae_downsample_factor(const dhf_vae *v) { return 1 << (v->cfg.n_blocks - 1); }

void dhf_vae_posterior_free(dhf_vae_posterior *p)
{
    if (!p)
        return;
    dhf_free(p->moments);
    dhf_free(p->mean);
    dhf_free(p->logvar);
    memset(p, 0, sizeof *p);
}

/* Runs one resnet in place of *x (the old tensor is freed). */
static int step_resnet(const dhf_resnet *r, dhf_tensor *x, const char *what, int i, int j)
{
    dhf_tensor y = NULL;
    if (dhf_resnet_forward(r, *x, NULL, &y, NULL) != 0)
        return j >= 0 ? dhf_err_wrap("%s.%d.resnets.%d", what, i, j) : dhf_err_wrap("%s", what);
    dhf_free(*x);
    *x = y;
    return 0;
}

int dhf_vae_encode(const dhf_vae *v, dhf_tensor pixels, dhf_vae_posterior *post)
{
    const dhf_vae_config *c = &v->cfg;
    if (dhf_ndim(pixels) != 4 || dhf_size(pixels, 1) != c->in_channels)
        return dhf_err_set("vae: pixels must be [B, %d, H, W]", c->in_channels);
    int rc = 0, n_chunks = 0;
    dhf_tensor x = NULL, h = NULL, y = NULL, m = NULL, halves[2] = {NULL, NULL};
    dhf_tensor mean = NULL, logvar = NULL;
    memset(post, 0, sizeof *post);
    bool inference = dhf_inference_begin() == DHF_OK;
    dhf_scope_begin();
    DHF_SHIM(dhf_to(pixels, v->placement.dtype, v->placement.device, &x));
    DHF_CHECK(dhf_conv2d_forward(&v->conv_in, x, &h));
    for (int i = 0; i < c->n_blocks; i++) {
        const vae_block *b = &v->blocks[i];
        for (int j = 0; j < b->n_layers; j++)
            DHF_CHECK(step_resnet(&b->resnets[j], &h, "encoder.down_blocks", i, j));
        if (b->has_down) {
            DHF_CHECK(dhf_conv2d_forward(&b->down, h, &y));
            dhf_free(h);
            h = y;
        }
    }
    DHF_CHECK(step_resnet(&v->mid_res0, &h, "encoder.mid_block.resnets.0", 0, -1));
    if (c->mid_block_add_attention) {
        if (dhf_vae_attention_forward(&v->mid_attn, h, &y) != 0) {
            rc = dhf_err_wrap("encoder.mid_block.attentions.0");
            goto done;
        }
        dhf_free(h);
        h = y;
    }
    DHF_CHECK(step_resnet(&v->mid_res1, &h, "encoder.mid_block.resnets.1", 0, -1));
    DHF_CHECK(dhf_groupnorm_silu_forward(&v->norm_out, h, &y));
    DHF_CHECK(dhf_conv2d_forward(&v->conv_out, y, &m));
    if (c->use_quant_conv) {
        dhf_tensor q = NULL;
        DHF_CHECK(dhf_conv2d_forward(&v->quant_conv, m, &q));
        m = q;
    }
    DHF_CHECK(dhf_nn_plain(&m));
    DHF_SHIM(dhf_chunk(m, 2, 1, halves, &n_chunks));
    DHF_SHIM(dhf_contiguous(halves[0], &mean));
    DHF_SHIM(dhf_clamp(halves[1], -30.0, 20.0, &logvar));
    post->moments = m;
    post->mean = mean;
    post->logvar = logvar;
done:;
    dhf_tensor *outs[3] = {&post->moments, &post->mean, &post->logvar};
    rc = dhf_nn_scope_finish(rc, outs, 3);
    if (inference)
        dhf_inference_end();
    if (rc != 0)
        memset(post, 0, sizeof *post);
    return rc;
}

int dhf_vae_latent(const dhf_vae *v, const dhf_vae_posterior *post, dhf_latent_mode mode,
                   uint64_t seed, dhf_tensor *latent)
{
    int rc = 0;
    dhf_tensor z = NULL, half = NULL, sd = NULL, noise = NULL, noise_p = NULL, res = NULL;
    bool inference = dhf_inference_begin() == DHF_OK;
    dhf_scope_begin();
    if (mode == DHF_LATENT_MEAN) {
        z = post->mean;
    } else {
        int64_t shape[DHF_MAX_DIMS];
        int nd = 0;
        DHF_SHIM(dhf_shape(post->mean, shape, &nd));
        DHF_SHIM(dhf_mul_scalar(post->logvar, 0.5, &half));
        DHF_SHIM(dhf_exp(half, &sd));
        DHF_SHIM(dhf_randn(seed, DHF_F32, shape, nd, &noise));
        DHF_SHIM(dhf_to(noise, dhf_get_dtype(post->mean), dhf_get_device(post->mean), &noise_p));
        DHF_SHIM(dhf_mul_(noise_p, sd));
        DHF_SHIM(dhf_add(post->mean, noise_p, &z));
    }
    DHF_SHIM(dhf_mul_scalar(z, v->cfg.scaling_factor, &res));
    *latent = res;
done:;
    dhf_tensor *outs[1] = {latent};
    rc = dhf_nn_scope_finish(rc, outs, 1);
    if (inference)
        dhf_inference_end();
    return rc;
}

/* ---- decoder ---------------------------------------------------------------------- */

void dhf_vae_decode_debug_free(dhf_vae_decode_debug *d)
{
    if (!d)
        return;
    dhf_free(d->post_quant_conv);
    dhf_free(d->conv_in);
    dhf_free(d->mid_out);
    for (int i = 0; i < DHF_UNET_MAX_BLOCKS; i++)
        dhf_free(d->up_out[i]);
    memset(d, 0, sizeof *d);
}

int dhf_vae_decode(const dhf_vae *v, dhf_tensor z, dhf_tensor *image, dhf_vae_decode_debug *dbg)
{
    const dhf_vae_config *c = &v->cfg;
    const vae_decoder *d = &v->dec;
    if (!d->loaded)
        return dhf_err_set("vae: the decoder was not loaded");
    if (dhf_ndim(z) != 4 || dhf_size(z, 1) != c->latent_channels)
        return dhf_err_set("vae: latents must be [B, %d, h, w]", c->latent_channels);
    int rc = 0;
    dhf_tensor x = NULL, h = NULL, y = NULL, out = NULL;
    if (dbg)
        memset(dbg, 0, sizeof *dbg);
    bool inference = dhf_inference_begin() == DHF_OK;
    dhf_scope_begin();
    DHF_SHIM(dhf_to(z, v->placement.dtype, v->placement.device, &x));
    if (c->use_quant_conv) {
        DHF_CHECK(dhf_conv2d_forward(&d->post_quant_conv, x, &y));
        x = y;
    }
    if (dbg)
        DHF_SHIM(dhf_clone(x, &dbg->post_quant_conv));
    DHF_CHECK(dhf_conv2d_forward(&d->conv_in, x, &h));
    if (dbg)
        DHF_SHIM(dhf_clone(h, &dbg->conv_in));
    DHF_CHECK(step_resnet(&d->mid_res0, &h, "decoder.mid_block.resnets.0", 0, -1));
    if (c->mid_block_add_attention) {
        if (dhf_vae_attention_forward(&d->mid_attn, h, &y) != 0) {
            rc = dhf_err_wrap("decoder.mid_block.attentions.0");
            goto done;
        }
        dhf_free(h);
        h = y;
    }
    DHF_CHECK(step_resnet(&d->mid_res1, &h, "decoder.mid_block.resnets.1", 0, -1));
    if (dbg)
        DHF_SHIM(dhf_clone(h, &dbg->mid_out));
    for (int i = 0; i < c->n_blocks; i++) {
        const vae_up_block *b = &d->blocks[i];
        for (int j = 0; j < b->n_layers; j++)
            DHF_CHECK(step_resnet(&b->resnets[j], &h, "decoder.up_blocks", i, j));
        if (b->has_up) {
            DHF_CHECK(dhf_upsample_forward(&b->up, h, 2 * dhf_size(h, 2), 2 * dhf_size(h, 3), &y));
            dhf_free(h);
            h = y;
        }
        if (dbg)
            DHF_SHIM(dhf_clone(h, &dbg->up_out[i]));
    }
    DHF_CHECK(dhf_groupnorm_silu_forward(&d->norm_out, h, &y));
    DHF_CHECK(dhf_conv2d_forward(&d->conv_out, y, &out));
    DHF_CHECK(dhf_nn_plain(&out));
    *image = out;
done:;
    dhf_tensor *outs[4 + DHF_UNET_MAX_BLOCKS] = {image};
    int n_outs = 1;
    if (dbg) {
        outs[n_outs++] = &dbg->post_quant_conv;
        outs[n_outs++] = &dbg->conv_in;
        outs[n_outs++] = &dbg->mid_out;
        for (int i = 0; i < c->n_blocks; i++)
            outs[n_outs++] = &dbg->up_out[i];
    }
    rc = dhf_nn_scope_finish(rc, outs, n_outs);
    if (inference)
        dhf_inference_end();
    return rc;
}

int dhf_vae_decode_latents(const dhf_vae *v, dhf_tensor latents, dhf_tensor *image)
{
    int rc = 0;
    dhf_tensor z = NULL;
    dhf_scope_begin();
    /* latents / 0.18215 as a float32 division (the paper's latents_to_images) */
    DHF_SHIM(dhf_div_scalar(latents, v->cfg.scaling_factor, &z));
    DHF_CHECK(dhf_vae_decode(v, z, image, NULL));
done:;
    dhf_tensor *outs[1] = {image};
    return dhf_nn_scope_finish(rc, outs, 1);
}

void dhf_vae_image_to_u8(const float *image, int B, int C, int H, int W, uint8_t *out)
{
    /* clamp(x / 2 + 0.5, 0, 1) in float32, NCHW -> NHWC, round(x * 255) half to even */
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < C; ch++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float v = image[(((size_t)b * C + ch) * H + y) * W + x];
                    volatile float t = v / 2.0f + 0.5f;
                    float cl = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
                    volatile float s = cl * 255.0f;
                    out[(((size_t)b * H + y) * W + x) * C + ch] = (uint8_t)rintf(s);
                }
}
