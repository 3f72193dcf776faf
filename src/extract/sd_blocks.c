/* sd_blocks.c — ResnetBlock2D, Transformer2DModel, Upsample2D and the VAE
 * AttentionBlock, as diffusers v0.14 computes them. */
#include "extract/sd_blocks.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "extract/attention.h"
#include "extract/unet_kernels.h"

/* ---- ResnetBlock2D ------------------------------------------------------------ */

int dhf_resnet_load(dhf_resnet *r, dhf_params *p, const char *name, int in_ch, int out_ch,
                    int temb_ch, int groups, double eps, double output_scale_factor)
{
    char n[256];
    memset(r, 0, sizeof *r);
    r->in_ch = in_ch;
    r->out_ch = out_ch;
    r->has_temb = temb_ch > 0;
    r->has_shortcut = in_ch != out_ch;
    r->output_scale_factor = output_scale_factor;
    snprintf(n, sizeof n, "%s.norm1", name);
    if (dhf_groupnorm_load(&r->norm1, p, n, groups, in_ch, eps) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.conv1", name);
    if (dhf_conv2d_load(&r->conv1, p, n, in_ch, out_ch, 3, 1, 1, true) != 0)
        return -1;
    if (r->has_temb) {
        snprintf(n, sizeof n, "%s.time_emb_proj", name);
        if (dhf_linear_load(&r->time_emb_proj, p, n, temb_ch, out_ch, true) != 0)
            return -1;
    }
    snprintf(n, sizeof n, "%s.norm2", name);
    if (dhf_groupnorm_load(&r->norm2, p, n, groups, out_ch, eps) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.conv2", name);
    if (dhf_conv2d_load(&r->conv2, p, n, out_ch, out_ch, 3, 1, 1, true) != 0)
        return -1;
    if (r->has_shortcut) {
        snprintf(n, sizeof n, "%s.conv_shortcut", name);
        if (dhf_conv2d_load(&r->conv_shortcut, p, n, in_ch, out_ch, 1, 1, 0, true) != 0)
            return -1;
    }
    return 0;
}

int dhf_resnet_forward(const dhf_resnet *r, dhf_tensor x, dhf_tensor temb_act,
                       dhf_tensor *out, dhf_tensor *branch)
{
    int rc = 0;
    dhf_tensor h = NULL, h1 = NULL, tp = NULL, tp4 = NULL, h2 = NULL, hb = NULL;
    dhf_tensor sc = NULL, res = NULL;
    dhf_scope_begin();
    DHF_CHECK(dhf_groupnorm_silu_forward(&r->norm1, x, &h));
    if (r->has_temb && !temb_act) {
        rc = dhf_err_set("resnet: time embedding missing");
        goto done;
    }
    if (r->has_temb && r->conv1.b && dhf_size(temb_act, 0) == 1 && dhf_kern_fast_layout(h)) {
        /* one image: the time embedding joins conv1's bias, added in the same pass */
        dhf_tensor tb = NULL, tb1 = NULL;
        int64_t s1[1] = {r->out_ch};
        DHF_CHECK(dhf_linear_forward(&r->time_emb_proj, temb_act, &tp));
        DHF_SHIM(dhf_reshape(tp, s1, 1, &tb1));
        DHF_SHIM(dhf_add(r->conv1.b, tb1, &tb));
        DHF_CHECK(dhf_conv2d_forward_bias(&r->conv1, h, tb, &h1));
    } else {
        DHF_CHECK(dhf_conv2d_forward(&r->conv1, h, &h1));
        if (r->has_temb) {
            int64_t s4[4] = {dhf_size(temb_act, 0), r->out_ch, 1, 1};
            DHF_CHECK(dhf_linear_forward(&r->time_emb_proj, temb_act, &tp));
            DHF_SHIM(dhf_view(tp, s4, 4, &tp4));
            DHF_SHIM(dhf_add_(h1, tp4));
        }
    }
    dhf_free(h);
    DHF_CHECK(dhf_groupnorm_silu_forward(&r->norm2, h1, &h2));
    dhf_free(h1);
    if (r->has_shortcut)
        DHF_CHECK(dhf_conv2d_forward(&r->conv_shortcut, x, &sc));
    if (branch) {
        /* the branch itself is a DHF feature: conv2's output, then the residual sum */
        DHF_CHECK(dhf_conv2d_forward(&r->conv2, h2, &hb));
        DHF_SHIM(dhf_add(r->has_shortcut ? sc : x, hb, &res));
    } else if (r->has_shortcut) {
        /* shortcut + conv2(h2): conv2 adds into the shortcut's own tensor (oneDNN's sum
         * post-op on its path, no copy) */
        DHF_CHECK(dhf_conv2d_forward_acc_(&r->conv2, h2, sc));
        res = sc;
    } else {
        /* x + conv2(h2) in one pass (x is the caller's: into a copy of it) */
        DHF_CHECK(dhf_conv2d_forward_acc(&r->conv2, h2, x, &res));
    }
    dhf_free(h2);
    if (r->output_scale_factor != 1.0) {
        dhf_tensor scaled = NULL;
        DHF_SHIM(dhf_div_scalar(res, r->output_scale_factor, &scaled));
        dhf_free(res);
        res = scaled;
    }
    *out = res;
    if (branch)
        *branch = hb;
done:;
    dhf_tensor *outs[2] = {out, branch};
    return dhf_nn_scope_finish(rc, outs, branch ? 2 : 1);
}

/* ---- Transformer2DModel -------------------------------------------------------- */

static int cross_attention_load(dhf_cross_attention *a, dhf_params *p, const char *name,
                                int dim, int heads, int context_dim)
{
    char n[256];
    a->heads = heads;
    a->scale = 1.0 / sqrt((double)(dim / heads));
    snprintf(n, sizeof n, "%s.to_q", name);
    if (dhf_linear_load(&a->to_q, p, n, dim, dim, false) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.to_k", name);
    if (dhf_linear_load(&a->to_k, p, n, context_dim, dim, false) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.to_v", name);
    if (dhf_linear_load(&a->to_v, p, n, context_dim, dim, false) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.to_out.0", name);
    return dhf_linear_load(&a->to_out, p, n, dim, dim, true);
}

/* acc [B, N, C] += attention(x [B, N, C], context [B, L, Cc] or NULL for
 * self-attention), in place: to_out's product takes the residual sum. */
static int cross_attention_acc_(const dhf_cross_attention *a, dhf_tensor x,
                                dhf_tensor context, dhf_tensor acc)
{
    int rc = 0;
    dhf_tensor q = NULL, k = NULL, v = NULL, o = NULL;
    dhf_tensor ctx = context ? context : x;
    dhf_scope_begin();
    DHF_CHECK(dhf_linear_forward(&a->to_q, x, &q));
    DHF_CHECK(dhf_linear_forward(&a->to_k, ctx, &k));
    DHF_CHECK(dhf_linear_forward(&a->to_v, ctx, &v));
    DHF_CHECK(dhf_attention_core(q, k, v, a->heads, a->scale, false, &o));
    dhf_free(q);
    dhf_free(k);
    dhf_free(v);
    DHF_CHECK(dhf_linear_forward_acc_(&a->to_out, o, acc));
done:
    return dhf_nn_scope_finish(rc, NULL, 0);
}

static int transformer_block_load(dhf_transformer_block *b, dhf_params *p, const char *name,
                                  int dim, int heads, int context_dim)
{
    char n[512];
    int inner = 4 * dim;
    snprintf(n, sizeof n, "%s.norm1", name);
    if (dhf_layernorm_load(&b->norm1, p, n, dim, 1e-5) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.attn1", name);
    if (cross_attention_load(&b->attn1, p, n, dim, heads, dim) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.norm2", name);
    if (dhf_layernorm_load(&b->norm2, p, n, dim, 1e-5) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.attn2", name);
    if (cross_attention_load(&b->attn2, p, n, dim, heads, context_dim) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.norm3", name);
    if (dhf_layernorm_load(&b->norm3, p, n, dim, 1e-5) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.ff.net.0.proj", name);
    if (dhf_linear_load(&b->ff_proj, p, n, dim, 2 * inner, true) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.ff.net.2", name);
    return dhf_linear_load(&b->ff_out, p, n, inner, dim, true);
}

/* GEGLU feed-forward, added into acc in place: value, gate = chunk(proj(x), 2);
 * acc += net.2(value * gelu_erf(gate)). */
static int geglu_acc_(const dhf_transformer_block *b, dhf_tensor x, dhf_tensor acc)
{
    int rc = 0, n_chunks = 0;
    dhf_tensor proj = NULL, halves[2] = {NULL, NULL}, gate = NULL;
    dhf_scope_begin();
    DHF_CHECK(dhf_linear_forward(&b->ff_proj, x, &proj));
    DHF_SHIM(dhf_chunk(proj, 2, -1, halves, &n_chunks));
    if (n_chunks != 2) {
        rc = dhf_err_set("GEGLU: projection did not split in two");
        goto done;
    }
    DHF_SHIM(dhf_gelu(halves[1], &gate));
    DHF_SHIM(dhf_mul_(gate, halves[0]));
    dhf_free(proj);
    DHF_CHECK(dhf_linear_forward_acc_(&b->ff_out, gate, acc));
done:
    return dhf_nn_scope_finish(rc, NULL, 0);
}

/* x [B, N, C] is updated in place (it belongs to the caller's transformer). */
static int transformer_block_forward(const dhf_transformer_block *b, dhf_tensor x,
                                     dhf_tensor context)
{
    int rc = 0;
    dhf_tensor n1 = NULL, n2 = NULL, n3 = NULL;
    dhf_scope_begin();
    DHF_CHECK(dhf_layernorm_forward(&b->norm1, x, &n1));
    DHF_CHECK(cross_attention_acc_(&b->attn1, n1, NULL, x));
    dhf_free(n1);
    DHF_CHECK(dhf_layernorm_forward(&b->norm2, x, &n2));
    DHF_CHECK(cross_attention_acc_(&b->attn2, n2, context, x));
    dhf_free(n2);
    DHF_CHECK(dhf_layernorm_forward(&b->norm3, x, &n3));
    DHF_CHECK(geglu_acc_(b, n3, x));
done:
    return dhf_nn_scope_finish(rc, NULL, 0);
}

int dhf_transformer2d_load(dhf_transformer2d *t, dhf_params *p, const char *name,
                           int channels, int heads, int context_dim, int n_layers,
                           int groups, bool linear_projection)
{
    char n[256];
    memset(t, 0, sizeof *t);
    if (heads <= 0 || channels % heads != 0)
        return dhf_err_set("%s: '%s': %d heads do not divide %d channels", p->path, name,
                           heads, channels);
    t->channels = channels;
    t->heads = heads;
    t->linear_projection = linear_projection;
    snprintf(n, sizeof n, "%s.norm", name);
    if (dhf_groupnorm_load(&t->norm, p, n, groups, channels, 1e-6) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.proj_in", name);
    if (linear_projection ? dhf_linear_load(&t->proj_in_lin, p, n, channels, channels, true)
                          : dhf_conv2d_load(&t->proj_in_conv, p, n, channels, channels, 1, 1, 0,
                                            true))
        return -1;
    t->blocks = calloc((size_t)n_layers, sizeof *t->blocks);
    if (!t->blocks)
        return dhf_err_set("out of memory");
    t->n_blocks = n_layers;
    for (int i = 0; i < n_layers; i++) {
        snprintf(n, sizeof n, "%s.transformer_blocks.%d", name, i);
        if (transformer_block_load(&t->blocks[i], p, n, channels, heads, context_dim) != 0)
            return -1;
    }
    snprintf(n, sizeof n, "%s.proj_out", name);
    if (linear_projection ? dhf_linear_load(&t->proj_out_lin, p, n, channels, channels, true)
                          : dhf_conv2d_load(&t->proj_out_conv, p, n, channels, channels, 1, 1,
                                            0, true))
        return -1;
    return 0;
}

void dhf_transformer2d_free(dhf_transformer2d *t)
{
    if (!t)
        return;
    free(t->blocks);
    t->blocks = NULL;
    t->n_blocks = 0;
}

/* [B, C, H, W] -> [B, H*W, C] (token index y*W + x). */
static int to_tokens(dhf_tensor x, dhf_tensor *out)
{
    int rc = 0;
    dhf_tensor perm = NULL;
    int64_t B = dhf_size(x, 0), C = dhf_size(x, 1), H = dhf_size(x, 2), W = dhf_size(x, 3);
    int64_t p4[4] = {0, 2, 3, 1}, s3[3] = {B, H * W, C};
    DHF_SHIM(dhf_permute(x, p4, 4, &perm));
    DHF_SHIM(dhf_reshape(perm, s3, 3, out));
done:
    dhf_free(perm);
    return rc;
}

/* [B, H*W, C] -> [B, C, H, W]: contiguous on the libtorch path, the channels-last
 * view itself (no copy) where the kernels keep activations channels-last. */
static int from_tokens(dhf_tensor x, int64_t H, int64_t W, dhf_tensor *out)
{
    int rc = 0;
    dhf_tensor v4 = NULL, perm = NULL;
    int64_t B = dhf_size(x, 0), C = dhf_size(x, 2);
    int64_t s4[4] = {B, H, W, C}, p4[4] = {0, 3, 1, 2};
    DHF_SHIM(dhf_reshape(x, s4, 4, &v4));
    DHF_SHIM(dhf_permute(v4, p4, 4, &perm));
    if (dhf_kern_fast_layout(perm)) {
        *out = perm;
        perm = NULL;
    } else {
        DHF_SHIM(dhf_contiguous(perm, out));
    }
done:
    dhf_free(v4);
    dhf_free(perm);
    return rc;
}

int dhf_transformer2d_forward(const dhf_transformer2d *t, dhf_tensor x, dhf_tensor context,
                              dhf_tensor *out)
{
    int rc = 0;
    int64_t H = dhf_size(x, 2), W = dhf_size(x, 3);
    dhf_tensor h = NULL, hp = NULL, tok = NULL, tok2 = NULL, img = NULL, img2 = NULL;
    dhf_scope_begin();
    DHF_CHECK(dhf_groupnorm_forward(&t->norm, x, &h));
    if (t->linear_projection) {
        DHF_CHECK(to_tokens(h, &tok2));
        DHF_CHECK(dhf_linear_forward(&t->proj_in_lin, tok2, &tok));
    } else {
        DHF_CHECK(dhf_conv2d_forward(&t->proj_in_conv, h, &hp));
        DHF_CHECK(to_tokens(hp, &tok));
    }
    dhf_free(h);
    dhf_free(hp);
    dhf_free(tok2);
    tok2 = NULL;
    for (int i = 0; i < t->n_blocks; i++)
        DHF_CHECK(transformer_block_forward(&t->blocks[i], tok, context));
    if (t->linear_projection) {
        DHF_CHECK(dhf_linear_forward(&t->proj_out_lin, tok, &tok2));
        DHF_CHECK(from_tokens(tok2, H, W, &img));
    } else {
        DHF_CHECK(from_tokens(tok, H, W, &img2));
        /* proj_out(h) + x in one pass on the oneDNN path */
        DHF_CHECK(dhf_conv2d_forward_acc(&t->proj_out_conv, img2, x, &img));
    }
    if (t->linear_projection)
        DHF_SHIM(dhf_add_(img, x));
    *out = img;
done:;
    dhf_tensor *outs[1] = {out};
    return dhf_nn_scope_finish(rc, outs, 1);
}

/* ---- Upsample2D ------------------------------------------------------------------ */

int dhf_upsample_forward(const dhf_conv2d_layer *conv, dhf_tensor x, int64_t out_h, int64_t out_w,
                         dhf_tensor *out)
{
    dhf_tensor up = NULL;
    if (dhf_interpolate(x, out_h, out_w, DHF_INTERP_NEAREST, false, &up) != DHF_OK)
        return dhf_nn_shim_fail("dhf_interpolate");
    int rc = dhf_conv2d_forward(conv, up, out);
    dhf_free(up);
    return rc;
}

/* ---- VAE AttentionBlock -------------------------------------------------------------- */

static int vae_proj_load(dhf_linear_layer *l, dhf_params *p, const char *name, int c)
{
    char wname[300];
    int64_t shape[DHF_MAX_DIMS];
    snprintf(wname, sizeof wname, "%s.weight", name);
    int nd = dhf_params_stored_shape(p, wname, shape);
    if (nd != 4)
        return dhf_linear_load(l, p, name, c, c, true);
    /* Stored as a 1x1 convolution: load with that shape, use as [C, C]. */
    dhf_conv2d_layer conv;
    if (dhf_conv2d_load(&conv, p, name, c, c, 1, 1, 0, true) != 0)
        return -1;
    memset(l, 0, sizeof *l);
    l->in_f = l->out_f = c;
    l->b = conv.b;
    int64_t s2[2] = {c, c};
    dhf_tensor w2 = NULL;
    if (dhf_reshape(conv.w, s2, 2, &w2) != DHF_OK)
        return dhf_nn_shim_fail("dhf_reshape");
    for (int d = dhf_scope_depth(); d > 0; d--)
        dhf_keep(w2);
    if (p->dst && dhf_tensor_list_push(p->dst, w2) != 0) {
        dhf_free(w2);
        return -1;
    }
    l->w = w2;
    return 0;
}

int dhf_vae_attention_load(dhf_vae_attention *a, dhf_params *p, const char *name,
                           int channels, int groups, double eps)
{
    char n[256], probe[300];
    memset(a, 0, sizeof *a);
    a->channels = channels;
    snprintf(n, sizeof n, "%s.group_norm", name);
    if (dhf_groupnorm_load(&a->norm, p, n, groups, channels, eps) != 0)
        return -1;
    snprintf(probe, sizeof probe, "%s.to_q.weight", name);
    bool new_names = dhf_params_has(p, probe);
    const char *q = new_names ? "to_q" : "query", *k = new_names ? "to_k" : "key";
    const char *v = new_names ? "to_v" : "value", *o = new_names ? "to_out.0" : "proj_attn";
    snprintf(n, sizeof n, "%s.%s", name, q);
    if (vae_proj_load(&a->q, p, n, channels) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.%s", name, k);
    if (vae_proj_load(&a->k, p, n, channels) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.%s", name, v);
    if (vae_proj_load(&a->v, p, n, channels) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.%s", name, o);
    return vae_proj_load(&a->proj, p, n, channels);
}

int dhf_vae_attention_forward(const dhf_vae_attention *a, dhf_tensor x, dhf_tensor *out)
{
    int rc = 0;
    int64_t B = dhf_size(x, 0), C = dhf_size(x, 1), H = dhf_size(x, 2), W = dhf_size(x, 3);
    dhf_tensor h = NULL, v3 = NULL, tok = NULL, q = NULL, k = NULL, v = NULL, o = NULL;
    dhf_tensor pr = NULL, prt = NULL, img = NULL;
    dhf_scope_begin();
    DHF_CHECK(dhf_groupnorm_forward(&a->norm, x, &h));
    int64_t s3[3] = {B, C, H * W}, s4[4] = {B, C, H, W};
    DHF_SHIM(dhf_view(h, s3, 3, &v3));
    DHF_SHIM(dhf_transpose(v3, 1, 2, &tok));            /* [B, HW, C] */
    DHF_CHECK(dhf_linear_forward(&a->q, tok, &q));
    DHF_CHECK(dhf_linear_forward(&a->k, tok, &k));
    DHF_CHECK(dhf_linear_forward(&a->v, tok, &v));
    DHF_CHECK(dhf_attention_core(q, k, v, 1, 1.0 / sqrt((double)C), false, &o));
    DHF_CHECK(dhf_linear_forward(&a->proj, o, &pr));
    DHF_SHIM(dhf_transpose(pr, 1, 2, &prt));            /* [B, C, HW] */
    DHF_SHIM(dhf_reshape(prt, s4, 4, &img));
    {
        dhf_tensor sum = NULL;
        DHF_SHIM(dhf_add(img, x, &sum));
        *out = sum;
    }
done:;
    dhf_tensor *outs[1] = {out};
    return dhf_nn_scope_finish(rc, outs, 1);
}
