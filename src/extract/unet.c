/* unet.c — UNet2DConditionModel construction from config + parameters, and the
 * forward pass with DHF feature capture. */
#include "extract/unet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "extract/sd_blocks.h"

typedef struct {
    int n_layers;
    bool cross;
    dhf_resnet *resnets;
    dhf_transformer2d *attns;   /* n_layers entries when cross */
    bool has_sampler;
    dhf_conv2d_layer sampler;         /* downsampler (down blocks) or upsampler conv (up blocks) */
} unet_block;

struct dhf_unet {
    dhf_unet_config cfg;
    dhf_tensor_list params;
    dhf_model_placement placement;
    int64_t n_params;
    dhf_linear_layer time_lin1, time_lin2;
    dhf_conv2d_layer conv_in, conv_out;
    dhf_groupnorm norm_out;
    unet_block down[DHF_UNET_MAX_BLOCKS];
    unet_block up[DHF_UNET_MAX_BLOCKS];
    dhf_resnet mid_res0, mid_res1;
    dhf_transformer2d mid_attn;
    int n_features;
    char (*feature_names)[48];
};

dhf_model_placement dhf_model_placement_default(void)
{
    dhf_model_placement p;
    p.device.type = DHF_CPU;
    p.device.index = 0;
    p.dtype = DHF_F32;
    return p;
}

static void block_free(unet_block *b)
{
    if (b->attns)
        for (int j = 0; j < b->n_layers; j++)
            dhf_transformer2d_free(&b->attns[j]);
    free(b->resnets);
    free(b->attns);
    b->resnets = NULL;
    b->attns = NULL;
}

void dhf_unet_free(dhf_unet *u)
{
    if (!u)
        return;
    for (int i = 0; i < DHF_UNET_MAX_BLOCKS; i++) {
        block_free(&u->down[i]);
        block_free(&u->up[i]);
    }
    dhf_transformer2d_free(&u->mid_attn);
    free(u->feature_names);
    dhf_tensor_list_free(&u->params);
    free(u);
}

static int block_alloc(unet_block *b, int n_layers, bool cross)
{
    b->n_layers = n_layers;
    b->cross = cross;
    b->resnets = calloc((size_t)n_layers, sizeof *b->resnets);
    b->attns = cross ? calloc((size_t)n_layers, sizeof *b->attns) : NULL;
    if (!b->resnets || (cross && !b->attns))
        return dhf_err_set("out of memory building the UNet");
    return 0;
}

/* Mirrors UNet2DConditionModel.__init__ of diffusers v0.14 (channel bookkeeping of
 * get_down_block / get_up_block included). */
static int build(dhf_unet *u, dhf_params *p)
{
    const dhf_unet_config *c = &u->cfg;
    char n[256];
    int nb = c->n_blocks, L = c->layers_per_block, c0 = c->block_out_channels[0];
    int temb = 4 * c0, groups = c->norm_num_groups;
    double eps = c->norm_eps;

    if (dhf_conv2d_load(&u->conv_in, p, "conv_in", c->in_channels, c0, c->conv_in_kernel, 1,
                        (c->conv_in_kernel - 1) / 2, true) != 0 ||
        dhf_linear_load(&u->time_lin1, p, "time_embedding.linear_1", c0, temb, true) != 0 ||
        dhf_linear_load(&u->time_lin2, p, "time_embedding.linear_2", temb, temb, true) != 0)
        return -1;

    int out_ch = c0;
    for (int i = 0; i < nb; i++) {
        unet_block *b = &u->down[i];
        int in_ch = out_ch;
        out_ch = c->block_out_channels[i];
        if (block_alloc(b, L, c->down_cross_attn[i]) != 0)
            return -1;
        for (int j = 0; j < L; j++) {
            snprintf(n, sizeof n, "down_blocks.%d.resnets.%d", i, j);
            if (dhf_resnet_load(&b->resnets[j], p, n, j == 0 ? in_ch : out_ch, out_ch, temb,
                                groups, eps, 1.0) != 0)
                return -1;
            if (b->cross) {
                snprintf(n, sizeof n, "down_blocks.%d.attentions.%d", i, j);
                if (dhf_transformer2d_load(&b->attns[j], p, n, out_ch, c->heads[i],
                                           c->cross_attention_dim, c->transformer_layers[i],
                                           groups, c->use_linear_projection) != 0)
                    return -1;
            }
        }
        b->has_sampler = i < nb - 1;
        if (b->has_sampler) {
            snprintf(n, sizeof n, "down_blocks.%d.downsamplers.0.conv", i);
            int pad = c->downsample_padding;
            if (dhf_conv2d_load(&b->sampler, p, n, out_ch, out_ch, 3, 2, pad, true) != 0)
                return -1;
            b->sampler.pad_right_bottom = pad == 0;
        }
    }

    int cm = c->block_out_channels[nb - 1];
    if (dhf_resnet_load(&u->mid_res0, p, "mid_block.resnets.0", cm, cm, temb, groups, eps,
                        c->mid_block_scale_factor) != 0 ||
        dhf_transformer2d_load(&u->mid_attn, p, "mid_block.attentions.0", cm, c->heads[nb - 1],
                               c->cross_attention_dim, c->transformer_layers[nb - 1], groups,
                               c->use_linear_projection) != 0 ||
        dhf_resnet_load(&u->mid_res1, p, "mid_block.resnets.1", cm, cm, temb, groups, eps,
                        c->mid_block_scale_factor) != 0)
        return -1;

    out_ch = c->block_out_channels[nb - 1];
    for (int i = 0; i < nb; i++) {
        unet_block *b = &u->up[i];
        int prev_out = out_ch;
        out_ch = c->block_out_channels[nb - 1 - i];
        int in_ch = c->block_out_channels[nb - 1 - (i + 1 < nb ? i + 1 : nb - 1)];
        int rev = nb - 1 - i;   /* reversed per-block lists */
        if (block_alloc(b, L + 1, c->up_cross_attn[i]) != 0)
            return -1;
        for (int j = 0; j < L + 1; j++) {
            int skip_ch = j == L ? in_ch : out_ch;
            int res_in = j == 0 ? prev_out : out_ch;
            snprintf(n, sizeof n, "up_blocks.%d.resnets.%d", i, j);
            if (dhf_resnet_load(&b->resnets[j], p, n, res_in + skip_ch, out_ch, temb, groups,
                                eps, 1.0) != 0)
                return -1;
            if (b->cross) {
                snprintf(n, sizeof n, "up_blocks.%d.attentions.%d", i, j);
                if (dhf_transformer2d_load(&b->attns[j], p, n, out_ch, c->heads[rev],
                                           c->cross_attention_dim,
                                           c->transformer_layers[rev], groups,
                                           c->use_linear_projection) != 0)
                    return -1;
            }
        }
        b->has_sampler = i < nb - 1;
        if (b->has_sampler) {
            snprintf(n, sizeof n, "up_blocks.%d.upsamplers.0.conv", i);
            if (dhf_conv2d_load(&b->sampler, p, n, out_ch, out_ch, 3, 1, 1, true) != 0)
                return -1;
        }
    }

    if (dhf_groupnorm_load(&u->norm_out, p, "conv_norm_out", groups, c0, eps) != 0 ||
        dhf_conv2d_load(&u->conv_out, p, "conv_out", c0, c->out_channels, c->conv_out_kernel,
                        1, (c->conv_out_kernel - 1) / 2, true) != 0)
        return -1;

    u->n_features = nb * (L + 1);
    u->feature_names = calloc((size_t)u->n_features, sizeof *u->feature_names);
    if (!u->feature_names)
        return dhf_err_set("out of memory");
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < L + 1; j++)
            snprintf(u->feature_names[i * (L + 1) + j], sizeof u->feature_names[0],
                     "up_blocks.%d.resnets.%d", i, j);
    return 0;
}

int dhf_unet_build(const dhf_unet_config *cfg, dhf_params *p, dhf_unet **out)
{
    dhf_unet *u = calloc(1, sizeof *u);
    if (!u)
        return dhf_err_set("out of memory");
    u->cfg = *cfg;
    u->placement.device = p->device;
    u->placement.dtype = p->dtype;
    dhf_tensor_list *saved_dst = p->dst;
    int64_t before = p->n_values;
    if (p->mode != DHF_PARAMS_GENERATE)
        p->dst = &u->params;
    int rc = build(u, p);
    p->dst = saved_dst;
    if (rc != 0) {
        dhf_unet_free(u);
        return -1;
    }
    u->n_params = p->n_values - before;
    *out = u;
    return 0;
}

int dhf_unet_load(const char *unet_dir, const dhf_model_placement *placement,
                  dhf_unet **out)
{
    char cfg_path[4096];
    dhf_unet_config cfg;
    dhf_params p;
    if (dhf_path_join(cfg_path, sizeof cfg_path, unet_dir, "config.json") != 0 ||
        dhf_unet_config_load(cfg_path, &cfg) != 0 ||
        dhf_params_open_component(&p, unet_dir, "diffusion_pytorch_model", placement) != 0)
        return -1;
    dhf_unet *u = NULL;
    int rc = dhf_unet_build(&cfg, &p, &u);
    if (rc == 0)
        rc = dhf_params_check_all_used(&p, NULL);
    dhf_params_close(&p);
    if (rc != 0) {
        dhf_unet_free(u);
        return -1;
    }
    *out = u;
    return 0;
}

const dhf_unet_config *dhf_unet_config_of(const dhf_unet *u) { return &u->cfg; }
int64_t dhf_unet_param_count(const dhf_unet *u) { return u->n_params; }
dhf_model_placement dhf_unet_placement(const dhf_unet *u) { return u->placement; }
int dhf_unet_n_features(const dhf_unet *u) { return u->n_features; }

const char *dhf_unet_feature_name(const dhf_unet *u, int k)
{
    return (k >= 0 && k < u->n_features) ? u->feature_names[k] : NULL;
}

/* Spatial size after a down block's sampler (3x3, stride 2). */
static int64_t down_size(int64_t s, int pad)
{
    return pad == 0 ? (s + 1 - 3) / 2 + 1 : (s + 2 * pad - 3) / 2 + 1;
}

int dhf_unet_feature_shape(const dhf_unet *u, int k, int64_t latent_h, int64_t latent_w,
                           int64_t chw[3])
{
    if (k < 0 || k >= u->n_features)
        return dhf_err_set("feature index %d out of range [0, %d)", k, u->n_features);
    const dhf_unet_config *c = &u->cfg;
    int nb = c->n_blocks, i = k / (c->layers_per_block + 1);
    int level = nb - 1 - i;   /* up block i runs at the resolution of down block nb-1-i */
    int64_t h = latent_h, w = latent_w;
    for (int d = 0; d < level; d++) {
        h = down_size(h, c->downsample_padding);
        w = down_size(w, c->downsample_padding);
    }
    if (h < 1 || w < 1)
        return dhf_err_set("latent %lldx%lld is too small for %d down blocks",
                           (long long)latent_h, (long long)latent_w, nb);
    chw[0] = c->block_out_channels[nb - 1 - i];
    chw[1] = h;
    chw[2] = w;
    return 0;
}

void dhf_unet_debug_free(dhf_unet_debug *d)
{
    if (!d)
        return;
    dhf_free(d->t_sinusoid);
    dhf_free(d->t_emb);
    dhf_free(d->conv_in);
    for (int i = 0; i < d->n_skips; i++)
        dhf_free(d->skips[i]);
    dhf_free(d->mid_out);
    for (int i = 0; i < d->n_up; i++)
        dhf_free(d->up_out[i]);
    for (int i = 0; i < d->n_blocks; i++)
        dhf_free(d->blocks[i]);
    free(d->blocks);
    memset(d, 0, sizeof *d);
}

int dhf_timestep_embedding(const float *timesteps, int n, int dim, bool flip_sin_to_cos,
                           double freq_shift, dhf_tensor *out)
{
    int rc = 0, half = dim / 2;
    if (n < 1 || half < 1)
        return dhf_err_set("timestep embedding: need >= 1 timestep and dim >= 2");
    if ((double)half - freq_shift == 0.0)
        return dhf_err_set("timestep embedding: freq_shift equals half the dimension");
    dhf_tensor ar = NULL, ex = NULL, ex2 = NULL, freqs = NULL, t = NULL, t2 = NULL;
    dhf_tensor f2 = NULL, arg = NULL, s = NULL, co = NULL, emb = NULL;
    int64_t tshape[1] = {n};
    dhf_scope_begin();
    DHF_SHIM(dhf_arange(0, half, 1, DHF_F32, &ar));
    DHF_SHIM(dhf_mul_scalar(ar, -log(10000.0), &ex));
    DHF_SHIM(dhf_div_scalar(ex, (double)half - freq_shift, &ex2));
    DHF_SHIM(dhf_exp(ex2, &freqs));
    DHF_SHIM(dhf_from_buffer(timesteps, DHF_F32, tshape, 1, &t));
    DHF_SHIM(dhf_unsqueeze(t, 1, &t2));          /* [n, 1] */
    DHF_SHIM(dhf_unsqueeze(freqs, 0, &f2));      /* [1, half] */
    DHF_SHIM(dhf_mul(t2, f2, &arg));             /* [n, half] */
    DHF_SHIM(dhf_sin(arg, &s));
    DHF_SHIM(dhf_cos(arg, &co));
    {
        dhf_tensor parts[2] = {flip_sin_to_cos ? co : s, flip_sin_to_cos ? s : co};
        DHF_SHIM(dhf_cat(parts, 2, 1, &emb));
    }
    if (dim % 2 == 1) {
        int64_t pads[2] = {0, 1};
        dhf_tensor padded = NULL;
        DHF_SHIM(dhf_pad(emb, pads, 2, 0.0, &padded));
        emb = padded;
    }
    *out = emb;
done:;
    dhf_tensor *outs[1] = {out};
    return dhf_nn_scope_finish(rc, outs, 1);
}

/* Moves x to the model's placement if needed (NEW handle in *out either way). */
static int place(const dhf_unet *u, dhf_tensor x, dhf_tensor *out)
{
    dhf_device d = dhf_get_device(x);
    if (dhf_get_dtype(x) == u->placement.dtype && d.type == u->placement.device.type &&
        (d.type == DHF_CPU || d.index == u->placement.device.index))
        return dhf_detach(x, out) == DHF_OK ? 0 : dhf_nn_shim_fail("dhf_detach");
    return dhf_to(x, u->placement.dtype, u->placement.device, out) == DHF_OK
               ? 0
               : dhf_nn_shim_fail("dhf_to");
}

static int run_down(const dhf_unet *u, dhf_tensor h, dhf_tensor temb, dhf_tensor ctx,
                    dhf_tensor *skips, int *n_skips, dhf_tensor *out)
{
    int rc = 0;
    dhf_tensor x = h;
    for (int i = 0; i < u->cfg.n_blocks; i++) {
        const unet_block *b = &u->down[i];
        for (int j = 0; j < b->n_layers; j++) {
            dhf_tensor r = NULL;
            if (dhf_resnet_forward(&b->resnets[j], x, temb, &r, NULL) != 0)
                return dhf_err_wrap("down_blocks.%d.resnets.%d", i, j);
            x = r;
            if (b->cross) {
                dhf_tensor a = NULL;
                if (dhf_transformer2d_forward(&b->attns[j], x, ctx, &a) != 0)
                    return dhf_err_wrap("down_blocks.%d.attentions.%d", i, j);
                dhf_free(x);
                x = a;
            }
            skips[(*n_skips)++] = x;
        }
        if (b->has_sampler) {
            dhf_tensor d = NULL;
            if (dhf_conv2d_forward(&b->sampler, x, &d) != 0)
                return dhf_err_wrap("down_blocks.%d.downsamplers.0", i);
            x = d;
            skips[(*n_skips)++] = x;
        }
    }
    *out = x;
    return rc;
}

int dhf_unet_forward(const dhf_unet *u, dhf_tensor sample, const float *timesteps,
                     dhf_tensor context, dhf_tensor *eps, dhf_tensor *feats,
                     dhf_unet_debug *dbg)
{
    const dhf_unet_config *c = &u->cfg;
    if (dhf_ndim(sample) != 4 || dhf_size(sample, 1) != c->in_channels)
        return dhf_err_set("unet: sample must be [B, %d, H, W]", c->in_channels);
    int64_t B = dhf_size(sample, 0);
    if (dhf_ndim(context) != 3 || dhf_size(context, 2) != c->cross_attention_dim ||
        (dhf_size(context, 0) != B && dhf_size(context, 0) != 1))
        return dhf_err_set("unet: encoder_hidden_states must be [%lld or 1, L, %d] (the UNet's "
                           "cross_attention_dim, from %s)", (long long)B,
                           c->cross_attention_dim, c->path);
    if (dbg)
        memset(dbg, 0, sizeof *dbg);

    int rc = 0, n_skips = 0, L1 = c->layers_per_block + 1;
    dhf_tensor skips[DHF_UNET_MAX_SKIPS];
    dhf_tensor x = NULL, ctx = NULL, ctx0 = NULL, sin_emb = NULL, sin_p = NULL, t1 = NULL;
    dhf_tensor temb = NULL, temb_act = NULL, h = NULL, e = NULL;
    dhf_tensor *blocks = NULL;
    if (dbg) {
        blocks = calloc((size_t)u->n_features, sizeof *blocks);
        if (!blocks)
            return dhf_err_set("out of memory");
    }
    bool inference = dhf_inference_begin() == DHF_OK;
    dhf_scope_begin();
    DHF_CHECK(place(u, sample, &x));
    DHF_CHECK(place(u, context, &ctx0));
    if (dhf_size(ctx0, 0) != B) {
        int64_t es[3] = {B, dhf_size(ctx0, 1), dhf_size(ctx0, 2)};
        DHF_SHIM(dhf_expand(ctx0, es, 3, &ctx));
    } else {
        ctx = ctx0;
    }
    if (c->center_input_sample) {
        dhf_tensor centered = NULL;
        DHF_SHIM(dhf_mul_scalar(x, 2.0, &centered));
        DHF_SHIM(dhf_add_scalar_(centered, -1.0));
        x = centered;
    }

    /* time embedding: sinusoid in float32 (as diffusers), then the model's dtype */
    DHF_CHECK(dhf_timestep_embedding(timesteps, (int)B, c->block_out_channels[0],
                                   c->flip_sin_to_cos, c->freq_shift, &sin_emb));
    DHF_CHECK(place(u, sin_emb, &sin_p));
    DHF_CHECK(dhf_linear_forward(&u->time_lin1, sin_p, &t1));
    DHF_SHIM(dhf_silu_(t1));
    DHF_CHECK(dhf_linear_forward(&u->time_lin2, t1, &temb));
    DHF_SHIM(dhf_silu(temb, &temb_act));

    DHF_CHECK(dhf_conv2d_forward(&u->conv_in, x, &h));
    skips[n_skips++] = h;
    DHF_CHECK(run_down(u, h, temb_act, ctx, skips, &n_skips, &h));
    if (dbg) {
        dbg->t_sinusoid = sin_emb;
        dbg->t_emb = temb;
        dbg->conv_in = skips[0];
        dbg->n_skips = n_skips;
        for (int i = 0; i < n_skips; i++)
            dbg->skips[i] = skips[i];
    }

    /* mid block */
    {
        dhf_tensor r0 = NULL, a = NULL, r1 = NULL;
        if (dhf_resnet_forward(&u->mid_res0, h, temb_act, &r0, NULL) != 0) {
            rc = dhf_err_wrap("mid_block.resnets.0");
            goto done;
        }
        if (dhf_transformer2d_forward(&u->mid_attn, r0, ctx, &a) != 0) {
            rc = dhf_err_wrap("mid_block.attentions.0");
            goto done;
        }
        dhf_free(r0);
        if (dhf_resnet_forward(&u->mid_res1, a, temb_act, &r1, NULL) != 0) {
            rc = dhf_err_wrap("mid_block.resnets.1");
            goto done;
        }
        dhf_free(a);
        h = r1;
        if (dbg)
            dbg->mid_out = h;
    }

    /* up path: features are the ResNets' conv2 branches */
    for (int i = 0; i < c->n_blocks; i++) {
        const unet_block *b = &u->up[i];
        for (int j = 0; j < b->n_layers; j++) {
            if (n_skips == 0) {
                rc = dhf_err_set("unet: skip stack exhausted at up_blocks.%d", i);
                goto done;
            }
            dhf_tensor skip = skips[--n_skips], pair[2] = {h, skip}, cat = NULL;
            dhf_tensor r = NULL, branch = NULL;
            DHF_SHIM(dhf_cat(pair, 2, 1, &cat));
            if (!dbg && skip != h)
                dhf_free(skip);   /* the debug capture keeps every skip alive */
            if (dhf_resnet_forward(&b->resnets[j], cat, temb_act, &r, feats ? &branch : NULL)) {
                rc = dhf_err_wrap("up_blocks.%d.resnets.%d", i, j);
                goto done;
            }
            dhf_free(cat);
            if (feats)
                feats[i * L1 + j] = branch;
            if (dbg)
                blocks[i * L1 + j] = r;
            else if (h != r)
                dhf_free(h);
            h = r;
            if (b->cross) {
                dhf_tensor a = NULL;
                if (dhf_transformer2d_forward(&b->attns[j], h, ctx, &a) != 0) {
                    rc = dhf_err_wrap("up_blocks.%d.attentions.%d", i, j);
                    goto done;
                }
                if (!dbg)
                    dhf_free(h);
                h = a;
            }
        }
        if (b->has_sampler) {
            if (n_skips == 0) {
                rc = dhf_err_set("unet: skip stack exhausted before up_blocks.%d upsampler", i);
                goto done;
            }
            dhf_tensor up = NULL, next = skips[n_skips - 1];
            if (dhf_upsample_forward(&b->sampler, h, dhf_size(next, 2), dhf_size(next, 3),
                                     &up) != 0) {
                rc = dhf_err_wrap("up_blocks.%d.upsamplers.0", i);
                goto done;
            }
            if (!dbg)
                dhf_free(h);
            h = up;
        }
        if (dbg)
            dbg->up_out[dbg->n_up++] = h;
    }

    {
        dhf_tensor n = NULL;
        DHF_CHECK(dhf_groupnorm_silu_forward(&u->norm_out, h, &n));
        DHF_CHECK(dhf_conv2d_forward(&u->conv_out, n, &e));
        /* callers read eps and the features as plain NCHW buffers */
        DHF_CHECK(dhf_nn_plain(&e));
        for (int k = 0; feats && k < u->n_features; k++)
            if (feats[k])
                DHF_CHECK(dhf_nn_plain(&feats[k]));
    }
    if (eps)
        *eps = e;
done:;
    /* Keep the requested outputs; everything else dies with the scope. */
    if (rc == 0) {
        if (eps)
            dhf_keep(*eps);
        if (feats)
            for (int k = 0; k < u->n_features; k++)
                dhf_keep(feats[k]);
        if (dbg) {
            dhf_keep(dbg->t_sinusoid);
            dhf_keep(dbg->t_emb);
            for (int i = 0; i < dbg->n_skips; i++)
                dhf_keep(dbg->skips[i]);
            dbg->conv_in = NULL;   /* same handle as skips[0]: re-made below */
            dhf_keep(dbg->mid_out);
            for (int i = 0; i < dbg->n_up; i++)
                dhf_keep(dbg->up_out[i]);
            for (int k = 0; k < u->n_features; k++)
                dhf_keep(blocks[k]);
            dbg->blocks = blocks;
            dbg->n_blocks = u->n_features;
            blocks = NULL;
        }
    }
    if (dhf_scope_end() != DHF_OK && rc == 0)
        rc = dhf_nn_shim_fail("dhf_scope_end");
    if (inference)
        dhf_inference_end();
    free(blocks);
    if (rc == 0 && dbg && dbg->n_skips > 0 &&
        dhf_clone(dbg->skips[0], &dbg->conv_in) != DHF_OK)
        rc = dhf_nn_shim_fail("dhf_clone");
    if (rc != 0 && dbg)
        memset(dbg, 0, sizeof *dbg);
    if (rc != 0 && feats)
        memset(feats, 0, (size_t)u->n_features * sizeof *feats);
    return rc;
}
