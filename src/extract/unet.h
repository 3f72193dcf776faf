/* unet.h — UNet2DConditionModel (diffusers v0.14) built from its config.json: the
 * noise prediction and, in the same pass, DHF's features: the residual branch of
 * every decoder ResNet up_blocks[i].resnets[j] (after conv2, before the shortcut
 * add and before output_scale_factor), feature k = i * (layers_per_block + 1) + j
 * (0-based; the paper's "layer k+1"), at native resolution.
 * Optional debug captures mirror the parity fixture's dbg tensors. */
#ifndef DHF_EXTRACT_UNET_H
#define DHF_EXTRACT_UNET_H

#include <stdbool.h>
#include <stdint.h>

#include "extract/diffusers_config.h"
#include "extract/sd_params.h"
#include "shim/torch_shim.h"

typedef struct dhf_unet dhf_unet;

dhf_model_placement dhf_model_placement_default(void);   /* CPU, F32 */

/* Loads `<unet_dir>/config.json` and `diffusion_pytorch_model.safetensors` (or the
 * `.fp16.safetensors` variant). placement may be NULL. Errors name the file and the
 * key or tensor: missing, extra, wrong shape, unsupported config value. */
int dhf_unet_load(const char *unet_dir, const dhf_model_placement *placement,
                  dhf_unet **out);
/* Builds from a config and any parameter source (a random one for benchmarks; a
 * generating one for init-model, whose network then has no tensors and must only
 * be freed). p->device / p->dtype decide the placement. */
int dhf_unet_build(const dhf_unet_config *cfg, dhf_params *p, dhf_unet **out);
void dhf_unet_free(dhf_unet *u);   /* NULL ok; frees the weights too */

const dhf_unet_config *dhf_unet_config_of(const dhf_unet *u);
int64_t dhf_unet_param_count(const dhf_unet *u);
dhf_model_placement dhf_unet_placement(const dhf_unet *u);

/* ---- DHF features ---------------------------------------------------------------- */
/* Number of decoder ResNets = n_up_blocks * (layers_per_block + 1): 12 for SD. */
int dhf_unet_n_features(const dhf_unet *u);
/* "up_blocks.<i>.resnets.<j>" of feature k (0-based); NULL when out of range. */
const char *dhf_unet_feature_name(const dhf_unet *u, int k);
/* Feature k's [C, H, W] for a latent of latent_h x latent_w. */
int dhf_unet_feature_shape(const dhf_unet *u, int k, int64_t latent_h, int64_t latent_w,
                           int64_t chw[3]);

/* ---- forward ------------------------------------------------------------------------ */
#define DHF_UNET_MAX_SKIPS 128

/* Intermediates for localising a parity mismatch. All NEW (free with
 * dhf_unet_debug_free); names follow unet_single.safetensors. */
typedef struct {
    dhf_tensor t_sinusoid;                       /* [B, C0] float32 */
    dhf_tensor t_emb;                            /* [B, 4*C0] */
    dhf_tensor conv_in;                          /* [B, C0, H, W] */
    dhf_tensor skips[DHF_UNET_MAX_SKIPS];        /* dbg/skipNN, push order */
    int n_skips;
    dhf_tensor mid_out;
    dhf_tensor up_out[DHF_UNET_MAX_BLOCKS];      /* output of up block i (after upsampler) */
    int n_up;
    dhf_tensor *blocks;                          /* [n_features] full ResNet outputs */
    int n_blocks;
} dhf_unet_debug;

void dhf_unet_debug_free(dhf_unet_debug *d);

/* One UNet call. sample [B, in_channels, H, W]; timesteps: B floats (per sample,
 * may be -1); context [B or 1, L, cross_attention_dim]. Inputs are converted to
 * the model's placement. Outputs (each may be NULL): eps NEW [B, out_channels, H, W];
 * feats: array of dhf_unet_n_features() NEW handles [B, C_k, H_k, W_k]; dbg: NEW
 * debug tensors (t_sinusoid/t_emb/conv_in/skips/mid_out/up_out/blocks). Runs in its
 * own shim scope (nothing else survives the call) and in inference mode (outputs are
 * inference tensors: clone them outside inference mode before autograd uses them). */
int dhf_unet_forward(const dhf_unet *u, dhf_tensor sample, const float *timesteps,
                     dhf_tensor context, dhf_tensor *eps, dhf_tensor *feats,
                     dhf_unet_debug *dbg);

/* Analytic multiply-add count x2 (FLOP) of one UNet call: convolutions, linear layers
 * and the two attention products (norms and elementwise ops excluded), for a batch of
 * B latents of h x w and a context of ctx_len tokens. */
double dhf_unet_flops(const dhf_unet_config *c, int64_t B, int64_t h, int64_t w,
                      int64_t ctx_len);

/* The sinusoidal timestep embedding as diffusers computes it, in float32:
 * freq_j = exp(-ln(10000) * j / (half - freq_shift)), arg = t * freq_j,
 * [sin, cos] then [cos, sin] when flip_sin_to_cos. NEW [B, dim] float32 CPU. */
int dhf_timestep_embedding(const float *timesteps, int n, int dim, bool flip_sin_to_cos,
                           double freq_shift, dhf_tensor *out);

#endif
