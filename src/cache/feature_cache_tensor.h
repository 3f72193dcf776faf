/* feature_cache_tensor.h — cache reads as shim tensors, for the trainer and the
 * raw-feature providers: NEW contiguous float32 CPU tensors (free with dhf_free or
 * let the enclosing scope do it). Errors: -1 with dhf_err_msg(). */
#ifndef DHF_CACHE_FEATURE_CACHE_TENSOR_H
#define DHF_CACHE_FEATURE_CACHE_TENSOR_H

#include "cache/feature_cache.h"
#include "shim/torch_shim.h"

/* One committed map: [1, C, H, W]. */
int dhf_cache_read_map_tensor(dhf_feature_cache *c, int64_t row, int step, int layer,
                              dhf_tensor *out);
/* All saved steps of one layer: [S, C, H, W] (step order = save_timestep order). */
int dhf_cache_read_layer_tensor(dhf_feature_cache *c, int64_t row, int layer,
                                dhf_tensor *out);

#endif
