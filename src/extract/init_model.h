/* init_model.h — seeded random-weight Stable Diffusion folders in diffusers layout
 * (`dhf init-model`), and the same presets as in-memory configs for benchmarks.
 * Presets: tiny-sd15 and tiny-sd21 (the sizes of the parity fixtures' tiny models:
 * SD-1.5 structure with conv projections and one head count, SD-2.x structure with
 * linear projections, a per-block head list and exact-GELU CLIP), sd15-shapes and
 * sd21-shapes (the real SD 1.5 / SD 2.1-base sizes, for benchmarks).
 * Weights come from the networks' own constructors (extract/sd_params.h GENERATE
 * mode), so a written folder always loads. */
#ifndef DHF_EXTRACT_INIT_MODEL_H
#define DHF_EXTRACT_INIT_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/safetensors.h"
#include "extract/diffusers_config.h"

/* NULL-terminated list of preset names. */
const char *const *dhf_init_model_presets(void);

/* config.json texts of a preset (malloc'd; free()). pad_token: "<|endoftext|>" or "!"
 * (static). Any output pointer may be NULL. Error for an unknown preset. */
int dhf_init_model_configs(const char *preset, char **unet_json, char **vae_json,
                           char **text_encoder_json, const char **pad_token);
/* The preset's UNet config, parsed (for in-memory random models). */
int dhf_init_model_unet_config(const char *preset, dhf_unet_config *cfg);

typedef struct {
    const char *preset;
    uint64_t seed;
    dhf_st_dtype dtype;     /* F32 (default), F16 or BF16 weights in the files */
    bool force;             /* write into an existing non-empty folder */
} dhf_init_model_opts;

/* Writes out_dir/{model_index.json, unet/, vae/, text_encoder/, tokenizer/,
 * scheduler/}. A new folder is built beside out_dir and renamed into place, so an
 * interrupted run leaves no half-written model. Returns the number of parameters
 * written in *n_params (may be NULL). */
int dhf_init_model_write(const char *out_dir, const dhf_init_model_opts *opts,
                         int64_t *n_params);

#endif
