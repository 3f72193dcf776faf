/* vae.h — AutoencoderKL (diffusers v0.14) built from its config.json. The encoder:
 * pixels in [-1, 1] -> posterior moments -> mean / clamped logvar -> latent (the mean,
 * or a seeded sample) times scaling_factor. The decoder (loaded on request; otherwise
 * its tensors in the weights file are accepted and ignored): z -> image, and the
 * pipeline's conversion to 8-bit. */
#ifndef DHF_EXTRACT_VAE_H
#define DHF_EXTRACT_VAE_H

#include <stdint.h>

#include "extract/diffusers_config.h"
#include "extract/sd_params.h"
#include "extract/unet.h"
#include "shim/torch_shim.h"

typedef struct dhf_vae dhf_vae;

/* `<vae_dir>/config.json` + `diffusion_pytorch_model.safetensors` (or .fp16); the
 * encoder only, or both halves. */
int dhf_vae_load(const char *vae_dir, const dhf_model_placement *placement, dhf_vae **out);
int dhf_vae_load_with_decoder(const char *vae_dir, const dhf_model_placement *placement,
                              bool with_decoder, dhf_vae **out);
/* From a config and any parameter source (see dhf_unet_build). The generating
 * source also gets the decoder's tensors when with_decoder is set (init-model writes
 * complete VAEs; the loader only reads the encoder). */
int dhf_vae_build(const dhf_vae_config *cfg, dhf_params *p, bool with_decoder, dhf_vae **out);
void dhf_vae_free(dhf_vae *v);

const dhf_vae_config *dhf_vae_config_of(const dhf_vae *v);
int dhf_vae_downsample_factor(const dhf_vae *v);   /* 2^(n_blocks-1): 8 for SD */

/* NEW tensors of one encoding. */
typedef struct {
    dhf_tensor moments;   /* [B, 2*latent, h, w] (quant_conv output) */
    dhf_tensor mean;      /* [B, latent, h, w] */
    dhf_tensor logvar;    /* clamp(., -30, 20) */
} dhf_vae_posterior;

void dhf_vae_posterior_free(dhf_vae_posterior *p);

/* pixels [B, in_channels, H, W] in [-1, 1] (converted to the model's placement).
 * Runs in its own scope and in inference mode. */
int dhf_vae_encode(const dhf_vae *v, dhf_tensor pixels, dhf_vae_posterior *post);

typedef enum { DHF_LATENT_MEAN = 0, DHF_LATENT_SAMPLE = 1 } dhf_latent_mode;

/* NEW latent = z * scaling_factor with z = mean (MEAN) or
 * mean + exp(0.5 logvar) * N(0, 1) drawn with `seed` in float32 on the CPU (SAMPLE:
 * the paper samples the posterior; a seed makes it reproducible). */
int dhf_vae_latent(const dhf_vae *v, const dhf_vae_posterior *post, dhf_latent_mode mode,
                   uint64_t seed, dhf_tensor *latent);

/* Intermediates of one decode (NEW handles): post_quant_conv, decoder conv_in, the
 * mid block's output and each up block's output (after its upsampler). */
typedef struct {
    dhf_tensor post_quant_conv, conv_in, mid_out;
    dhf_tensor up_out[DHF_UNET_MAX_BLOCKS];
} dhf_vae_decode_debug;
void dhf_vae_decode_debug_free(dhf_vae_decode_debug *d);

/* z [B, latent, h, w] (already divided by scaling_factor) -> NEW image [B, 3, 8h, 8w],
 * the raw decoder output (not clamped). dbg may be NULL. Own scope, inference mode. */
int dhf_vae_decode(const dhf_vae *v, dhf_tensor z, dhf_tensor *image, dhf_vae_decode_debug *dbg);
/* latents / scaling_factor (a float32 division) decoded: the paper's latents_to_images. */
int dhf_vae_decode_latents(const dhf_vae *v, dhf_tensor latents, dhf_tensor *image);
/* The pipeline's 8-bit image: clamp(x / 2 + 0.5, 0, 1) and round(x * 255) half to even,
 * in float32; image [B, C, H, W] -> out [B, H, W, C]. */
void dhf_vae_image_to_u8(const float *image, int B, int C, int H, int W, uint8_t *out);

#endif
