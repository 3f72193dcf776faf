/* generate_run.h — `dhf generate` as a library call: for every prompt, n images from
 * seeded noise (or a given initial latent) through the paper's generation sampler
 * (generation.h) with classifier-free guidance, their decoder features at the saved
 * labels streamed into an HDF5 feature cache of the same format as `dhf extract`'s
 * (diffusion_mode generation in its identity), the decoded images as PNG, the initial
 * latents as safetensors and one JSON line per image (prompt, negative prompt, seed,
 * guidance, latent file). Resumable: a prompt whose images are all committed is
 * skipped.
 *
 * Cache slot order (the paper's flip rule): its generation extractor reverses
 * save_timestep when flip_timesteps is set and always flips the stacked features
 * back, so with flip_timesteps true slot k holds the generation label save_timestep[k]
 * (the order an inversion-trained network expects), and with it false the reverse. */
#ifndef DHF_EXTRACT_GENERATE_RUN_H
#define DHF_EXTRACT_GENERATE_RUN_H

#include <stdint.h>

#include "core/config.h"

typedef struct {
    const char *prompt;            /* UTF-8 */
    const char *negative_prompt;   /* NULL: the config's negative_prompt */
    int64_t seed;                  /* of the initial noise */
    int n;                         /* images (the batch) */
} dhf_gen_prompt;

typedef struct {
    const dhf_gen_prompt *prompts;
    int n_prompts;
    const char *init_latent;       /* safetensors with one tensor [n, C, h, w] (NULL: noise) */
    const char *out_dir;           /* images/, latents/, generations.jsonl */
    const char *cache_path;        /* NULL / "": <out_dir>/features.h5 */
} dhf_generate_options;

typedef struct {
    int prompts_done_before, prompts_generated;
    int64_t images;                /* in the cache, committed */
    double seconds;
    char cache_path[4200];
} dhf_generate_summary;

int dhf_generate_run(const dhf_config *cfg, const dhf_generate_options *o,
                     dhf_generate_summary *s);

/* The cache key of image b of prompt i: "<iiii>-<slug>/<b>.png" (slug: the prompt's
 * first letters and digits, lower case, '-' between words, at most 40 bytes). */
void dhf_generate_key(int i, const char *prompt, int b, char *out, size_t n);

#endif
