/* sd_model.h — a Stable Diffusion folder in diffusers layout as one object: the
 * UNet, the VAE encoder, the CLIP text encoder and the tokenizer's pad id when the
 * folder has them, plus what an extractor needs around them: the conditioning
 * (empty prompt or a user's prompt_embeds file), image -> latent, the feature layout
 * and a model identity for cache files. This is the API `dhf extract` builds on. */
#ifndef DHF_EXTRACT_SD_MODEL_H
#define DHF_EXTRACT_SD_MODEL_H

#include "core/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "extract/clip_text.h"
#include "extract/clip_tokenizer.h"
#include "extract/image_prep.h"
#include "extract/inversion.h"
#include "extract/unet.h"
#include "extract/vae.h"

typedef struct {
    char dir[4096];
    char name[256];                 /* the folder's basename */
    char identity[128];             /* "<name>:<16 hex digits>", see dhf_sd_model_identity (cache/model_identity.h) */
    dhf_unet *unet;
    dhf_vae *vae;
    dhf_clip_text *text_encoder;    /* NULL: folder has none, or not requested */
    int64_t pad_token_id;           /* -1 when the folder has no tokenizer/ */
    dhf_clip_tokenizer *tokenizer;  /* NULL: tokenizer/ has no vocab.json + merges.txt */
} dhf_sd_model;

typedef struct {
    dhf_model_placement placement;  /* default CPU float32 */
    bool load_text_encoder;         /* default true (if the folder has text_encoder/) */
    bool load_vae_decoder;          /* default false: the encoder only */
} dhf_sd_load_opts;

dhf_sd_load_opts dhf_sd_load_opts_default(void);

/* The placement of the config keys device ("cpu", "cuda:0") and dtype ("float32",
 * "float16", "bfloat16"). bfloat16 on the CPU is refused unless the CPU has the
 * AVX512-BF16 instructions (without them oneDNN emulates bf16, slower than float32);
 * float16 is refused on the CPU (libtorch has no CPU half convolutions). */
int dhf_sd_placement_parse(const char *device, const char *dtype, dhf_model_placement *out);

/* The run's settings of a model load: lo->placement from the config keys device and
 * dtype, and the process-wide extract_kernels (unet_kernels.h). */
int dhf_sd_runtime_from_config(const dhf_config *cfg, dhf_sd_load_opts *lo);

/* Loads <dir>/unet and <dir>/vae (required), <dir>/text_encoder and the pad token of
 * <dir>/tokenizer (optional). Errors name the file and key/tensor. */
int dhf_sd_model_load(const char *dir, const dhf_sd_load_opts *opts, dhf_sd_model **out);
void dhf_sd_model_free(dhf_sd_model *m);

/* ---- conditioning ---------------------------------------------------------------- */
/* CLIP("") : NEW [1, max_position_embeddings, hidden] on the model's placement. Error
 * when the folder has no text encoder or no tokenizer (then use prompt_embeds). */
int dhf_sd_empty_prompt_embeds(const dhf_sd_model *m, dhf_tensor *out);
/* CLIP(text) as the paper's get_tokens_embedding: the tokenizer's 77 ids (truncated,
 * max_length padding, no attention mask) through the text encoder: NEW [1, 77, hidden].
 * Error when the folder has no text encoder or no BPE vocabulary. */
int dhf_sd_prompt_embeds(const dhf_sd_model *m, const char *text, dhf_tensor *out);
/* A user's conditioning file: tensor `encoder_hidden_states` [1, L, D] (F32/F16/BF16)
 * with D = cross_dim (the UNet's cross_attention_dim). NEW float32 CPU. */
int dhf_load_prompt_embeds(const char *path, int64_t cross_dim, dhf_tensor *out);

/* ---- image -> latent --------------------------------------------------------------- */
/* rgb (height*width*3) -> [-1,1] at resolution^2 (image_prep.h's `resize` order) ->
 * VAE -> latent (MEAN, or SAMPLE with `seed`) * scaling_factor: NEW [1, latent, r/f,
 * r/f] where f = the VAE's down factor; on the model's placement. resolution must be a
 * multiple of f. */
int dhf_sd_encode_image(const dhf_sd_model *m, const uint8_t *rgb, int width, int height,
                        int resolution, dhf_image_resize_mode resize, int load_size,
                        dhf_latent_mode mode, uint64_t seed, dhf_tensor *latent);
/* Per-image seed for DHF_LATENT_SAMPLE: FNV-1a 64 of the key mixed with base_seed. */
uint64_t dhf_sd_latent_seed(uint64_t base_seed, const char *image_key);

/* ---- features ------------------------------------------------------------------------ */
/* Number of features (12 for SD), their names ("up_blocks.i.resnets.j") and their
 * [C, H, W] for a diffusion_resolution: see dhf_unet_n_features etc. This helper fills
 * shapes[k] for k < n_features and returns n_features (or -1). */
int dhf_sd_feature_layout(const dhf_sd_model *m, int resolution, int64_t (*shapes)[3],
                          int max_features);

#endif
