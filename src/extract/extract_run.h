/* extract_run.h — what `dhf extract` does, as a library call: select the images
 * (extract_images.h), load the diffusion model, and for every image not yet in the
 * cache run the paper's pipeline (RGB -> VAE latent -> DDIM inversion) streaming
 * the saved steps' features into the HDF5 cache (feature_cache.h); resumable,
 * shardable, with a progress line and a summary. */
#ifndef DHF_EXTRACT_EXTRACT_RUN_H
#define DHF_EXTRACT_EXTRACT_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "cache/feature_cache.h"
#include "cache/shard.h"

/* Exit status of the DHF_TEST_ABORT_AFTER test hook. */
#define DHF_EXTRACT_TEST_ABORT_STATUS 86

typedef struct {
    dhf_shard shard;      /* {0, 1}: everything */
    /* Test hook (env DHF_TEST_ABORT_AFTER): _exit(DHF_EXTRACT_TEST_ABORT_STATUS) right
     * after this many images were committed by this run, like a crash; 0 = off. */
    int abort_after;
} dhf_extract_options;

typedef struct {
    char cache_path[4200];    /* the file written (the shard's file with --shard) */
    char source[4200];        /* what was selected */
    char weights[4200];       /* the UNet weights file read (.safetensors, .fp16, .bin) */
    int64_t selected;         /* images of this shard */
    int64_t already_done;     /* committed before this run: skipped */
    int64_t extracted;        /* committed by this run */
    double seconds;           /* extraction loop wall time */
    int64_t cache_images, cache_committed;
    dhf_cache_stats stats;
} dhf_extract_summary;

int dhf_extract_run(const dhf_config *cfg, const dhf_extract_options *opt,
                    dhf_extract_summary *sum);

/* The settings that determine the features, as a JSON object (malloc'd): compared
 * on resume and merge. embeds_hash: fingerprint of prompt_embeds ("" when unset). */
char *dhf_extract_identity_json(const dhf_config *cfg, const char *embeds_hash);

#endif
