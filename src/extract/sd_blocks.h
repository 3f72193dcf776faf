/* sd_blocks.h — the diffusers v0.14 building blocks shared by the UNet and the VAE
 * encoder: ResnetBlock2D (with access to the residual branch DHF extracts),
 * Transformer2DModel (GroupNorm eps 1e-6, conv or linear projections, one or more
 * BasicTransformerBlocks: self-attention, cross-attention, GEGLU feed-forward),
 * Upsample2D, and the VAE's single-head AttentionBlock. Names passed to the load
 * functions are state-dict prefixes ("down_blocks.0.resnets.1"). Parameters are
 * owned by the dhf_params destination list; *_free only releases C arrays. */
#ifndef DHF_EXTRACT_SD_BLOCKS_H
#define DHF_EXTRACT_SD_BLOCKS_H

#include <stdbool.h>

#include "extract/nn_layers.h"

/* ---- ResnetBlock2D ------------------------------------------------------------ */
typedef struct {
    dhf_groupnorm norm1, norm2;
    dhf_conv2d_layer conv1, conv2, conv_shortcut;
    dhf_linear_layer time_emb_proj;
    bool has_temb, has_shortcut;     /* shortcut iff in_ch != out_ch */
    double output_scale_factor;
    int in_ch, out_ch;
} dhf_resnet;

/* temb_ch 0: no time embedding (VAE). */
int dhf_resnet_load(dhf_resnet *r, dhf_params *p, const char *name, int in_ch, int out_ch,
                    int temb_ch, int groups, double eps, double output_scale_factor);
/* x [B, in, H, W]; temb_act = SiLU(t_emb) [B, temb_ch] (NULL without time embedding).
 * out: NEW (shortcut(x) + h) / output_scale_factor. branch (may be NULL): NEW h, the
 * output of conv2 before the shortcut is added: DHF's feature. */
int dhf_resnet_forward(const dhf_resnet *r, dhf_tensor x, dhf_tensor temb_act,
                       dhf_tensor *out, dhf_tensor *branch);

/* ---- Transformer2DModel -------------------------------------------------------- */
typedef struct {
    dhf_linear_layer to_q, to_k, to_v, to_out;   /* q/k/v without bias, to_out.0 with bias */
    int heads;
    double scale;                          /* head_dim ** -0.5 */
} dhf_cross_attention;

typedef struct {
    dhf_layernorm norm1, norm2, norm3;
    dhf_cross_attention attn1, attn2;
    dhf_linear_layer ff_proj, ff_out;            /* GEGLU: ff.net.0.proj (C -> 8C), ff.net.2 */
} dhf_transformer_block;

typedef struct {
    dhf_groupnorm norm;
    bool linear_projection;
    dhf_conv2d_layer proj_in_conv, proj_out_conv;
    dhf_linear_layer proj_in_lin, proj_out_lin;
    dhf_transformer_block *blocks;
    int n_blocks;
    int channels, heads;
} dhf_transformer2d;

/* channels must be a multiple of heads (head size = channels / heads). */
int dhf_transformer2d_load(dhf_transformer2d *t, dhf_params *p, const char *name,
                           int channels, int heads, int context_dim, int n_layers,
                           int groups, bool linear_projection);
void dhf_transformer2d_free(dhf_transformer2d *t);
/* x [B, C, H, W], context [B, L, context_dim] -> NEW [B, C, H, W]. */
int dhf_transformer2d_forward(const dhf_transformer2d *t, dhf_tensor x, dhf_tensor context,
                              dhf_tensor *out);

/* ---- Upsample2D: nearest resize to (out_h, out_w) then 3x3 conv --------------- */
/* out_h/out_w = 2H/2W normally; diffusers forwards the skip's size instead when the
 * latent is not a multiple of the total down factor (identical for nearest x2). */
int dhf_upsample_forward(const dhf_conv2d_layer *conv, dhf_tensor x, int64_t out_h, int64_t out_w,
                         dhf_tensor *out);

/* ---- VAE mid-block AttentionBlock (single head) ------------------------------ */
typedef struct {
    dhf_groupnorm norm;
    dhf_linear_layer q, k, v, proj;
    int channels;
} dhf_vae_attention;

/* Accepts both spellings: v0.14/hub `group_norm, query, key, value, proj_attn` and
 * newer `group_norm, to_q, to_k, to_v, to_out.0`; projection weights stored as 1x1
 * convs [C, C, 1, 1] are accepted too. */
int dhf_vae_attention_load(dhf_vae_attention *a, dhf_params *p, const char *name,
                           int channels, int groups, double eps);
int dhf_vae_attention_forward(const dhf_vae_attention *a, dhf_tensor x, dhf_tensor *out);

#endif
