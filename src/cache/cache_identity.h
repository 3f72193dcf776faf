/* cache_identity.h — what the features a network was trained on depend on: the
 * model (name and weights fingerprint), the feature settings (the cache's identity
 * JSON), the saved timesteps and the layer shapes. Checkpoints store it (as the JSON
 * below) and a cache whose identity differs is refused. */
#ifndef DHF_CACHE_CACHE_IDENTITY_H
#define DHF_CACHE_CACHE_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "cache/feature_cache.h"

#define DHF_CACHE_ID_MAX_STEPS 64
#define DHF_CACHE_ID_MAX_LAYERS 64

/* What the features a network was trained on depend on; a cache whose identity
 * differs is refused. features_json is BORROWED (the cache's identity JSON: the
 * config keys that determine the features; NULL means "{}"). */
typedef struct {
    char model_name[256];
    char model_hash[64];
    const char *features_json;
    int num_steps;                                   /* S */
    int64_t save_timestep[DHF_CACHE_ID_MAX_STEPS];       /* labels, storage order */
    int num_layers;                                  /* L */
    int64_t layer_chw[DHF_CACHE_ID_MAX_LAYERS][3];       /* C, H, W */
} dhf_cache_identity;

/* From a cache layout (features_json points into the layout). */
int dhf_cache_identity_from_layout(const dhf_cache_layout *l, dhf_cache_identity *out);
/* "model NAME (hash H), save_timestep [..], layers [CxHxW, ...], features {...}". */
void dhf_cache_identity_describe(const dhf_cache_identity *id, char *buf, size_t n);
/* 0 when `have` (e.g. the cache the trainer opened) matches `want` (e.g. what the
 * checkpoint was trained on); else -1 with a message naming the first difference,
 * then both descriptions on their own lines. Generation features match inversion
 * features (the paper applies inversion-trained networks to generated images) when
 * all but the mode, prompts, guidance and image-loading settings agree. */
int dhf_cache_identity_check(const dhf_cache_identity *want, const char *want_name,
                             const dhf_cache_identity *have, const char *have_name);

/* {"model_name", "model_hash", "features": {...}, "save_timestep": [...],
 * "layer_shapes": [[C,H,W],...]}: malloc'd (free()), NULL when out of memory. */
char *dhf_cache_identity_to_json(const dhf_cache_identity *id);
/* Parses that JSON (the checkpoint metadata 'cache_identity' of file `path`, named in
 * messages); id->features_json points to *features, malloc'd here (free() it). */
int dhf_cache_identity_from_json(const char *path, const char *text, dhf_cache_identity *id,
                                 char **features);

#endif
