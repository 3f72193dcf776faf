/* cache_export.h — one cached image's features as a safetensors file, so Python
 * users (and the parity tests) can read dhf's features without HDF5: float32
 * tensors "t{k}/layer{ll}" [1, C, H, W], k = 0-based position in save_timestep,
 * ll = 01..L, and string metadata: format "dhf-features-v1", key, source_path,
 * original_size_wh, save_timestep and unet_timesteps (JSON lists), model_name,
 * model_hash, cache_dtype, extraction (identity JSON), config (resolved JSON). */
#ifndef DHF_CACHE_CACHE_EXPORT_H
#define DHF_CACHE_CACHE_EXPORT_H

#include "cache/feature_cache.h"

/* Writes out_path atomically; *n_tensors (may be NULL) = S * L. */
int dhf_cache_export_image(dhf_feature_cache *c, const char *key, const char *out_path,
                           int *n_tensors);

#endif
