/* cache_check.h — refusing a feature cache that does not hold the features a
 * training config asks for: another diffusion model, other saved timesteps, another
 * number of DDIM steps or diffusion mode. Both sides are printed in the paper-free
 * words of dhf_cache_identity_describe (checkpoint.h). */
#ifndef DHF_TRAIN_CACHE_CHECK_H
#define DHF_TRAIN_CACHE_CHECK_H

#include "core/config.h"
#include "cache/feature_cache.h"

/* 0 when the cache matches cfg; else -1 with a message naming the first difference
 * and both descriptions ("config <cfg_name>" and "feature cache <path>").
 * The model is compared by name and UNet fingerprint when cfg->model_id is a model
 * folder present here, by folder name when it is a path that does not exist here,
 * and not at all when model_id is "". Other extraction settings (prompt,
 * resolution, VAE latent, seed) are not compared: the cache's are recorded in the
 * checkpoint and `dhf eval --checkpoint` checks them. */
int dhf_train_check_cache(const dhf_config *cfg, const char *cfg_name, dhf_feature_cache *cache);

#endif
