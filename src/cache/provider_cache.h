/* provider_cache.h — `dhf eval` descriptor providers over the HDF5 feature cache
 * (the paper's raw-feature baselines; no training):
 *   "layer:N[@LABEL]"  one decoder layer N (1-based) of one saved step: SD-Layer-4
 *                      is "layer:4". Native resolution (C_N x H_N x W_N).
 *   "concat[:@LABEL]"  all layers of one step, each bilinearly resized
 *                      (align_corners false) to the finest layer's size and
 *                      concatenated in layer order: SD-Concat-All.
 * LABEL is a save_timestep label of the cache; without it the first saved step is
 * used (with the paper's save_timestep that is label 49 of 50 steps, or label 0 of
 * one step: either way the UNet call on the clean latent, t = -1).
 * The cache is the config's cache_path. Its features cover the image stretched to
 * a square, so eval.resize must be "stretch"; an image missing from the cache (or
 * with another size than the dataset says) is an error naming the key. */
#ifndef DHF_CACHE_PROVIDER_CACHE_H
#define DHF_CACHE_PROVIDER_CACHE_H

#include "eval/provider.h"

int dhf_provider_layer_open(const dhf_provider_args *args, dhf_provider *out);
int dhf_provider_concat_open(const dhf_provider_args *args, dhf_provider *out);

#endif
