/* hyperfeature_provider.h — Diffusion Hyperfeatures as a `dhf eval` descriptor
 * provider (eval/provider.h): an image's cached features (the config's cache_path)
 * through a trained aggregation network, giving a P x R x R map that covers the
 * image stretched to a square (so eval.resize must be "stretch").
 *
 *   dhf eval CONFIG --provider hyperfeatures --checkpoint RUN/best.safetensors
 *
 * The network's shape (projection_dim, output_resolution, layers and channels) comes
 * from the checkpoint; the cache must be the one it was trained on (same model,
 * timesteps, layer shapes and extraction settings: dhf_cache_identity_check). The
 * protocol records the checkpoint's path, name, run, step and best metric. The
 * trainer's validation uses the same describe() on its live network. */
#ifndef DHF_TRAIN_HYPERFEATURE_PROVIDER_H
#define DHF_TRAIN_HYPERFEATURE_PROVIDER_H

#include "eval/provider.h"
#include "cache/feature_cache.h"
#include "shim/torch_shim.h"
#include "engine/engine.h"
#include "train/aggregator.h"

/* Factory for the provider table: needs args->checkpoint and args->cfg->cache_path;
 * args->arg must be NULL. Order (aggregation_order) and device from args->cfg. */
int dhf_provider_hyperfeatures_open(const dhf_provider_args *args, dhf_provider *out);

/* Ours-Pruned of the paper's Table 1: `bottleneck[:L@LABEL] --checkpoint CKPT`, the
 * checkpoint's trained bottleneck of layer L applied to the cached map (L, LABEL) alone
 * (no retraining); without an argument the map with the largest mixing weight. */
int dhf_provider_bottleneck_open(const dhf_provider_args *args, dhf_provider *out);
/* SD-Layer-Pruned: `pruned --checkpoint CKPT`, the raw cached map with the checkpoint's
 * largest mixing weight, through the layer provider (== layer:L@LABEL). */
int dhf_provider_pruned_open(const dhf_provider_args *args, dhf_provider *out);

/* A provider over a network, engine runner (may be NULL: libtorch) and cache the
 * caller owns (BORROWED: they must outlive the provider; the network is only read). `name` goes into out->name. */
int dhf_provider_hyperfeatures_live(const dhf_aggregator *a, dhf_runner *r,
                                    dhf_agg_order order, dhf_feature_cache *cache,
                                    dhf_device dev, const char *name, dhf_provider *out);

#endif
