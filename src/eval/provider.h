/* provider.h — the descriptor provider interface: where `dhf eval` gets a
 * descriptor map (C × h × w floats) for an image. The image-based provider
 * lives in provider_image.h; the extractor adds providers over cached
 * features (layer:N, concat) and the trainer one over the aggregation network.
 * A provider is opened by a factory with the common signature below, so adding
 * one to the CLI is one table entry (src/cli/cmd_eval.c).
 *
 * Contract for a map: it covers the evaluator's load frame — the whole image
 * stretched to a square (resize "stretch"), or the image centred in a
 * max(W,H)² square with padding (resize "pad", see dhf_frame in match.h).
 * Any h × w works; the matcher resizes it bilinearly to load_size². */
#ifndef DHF_EVAL_PROVIDER_H
#define DHF_EVAL_PROVIDER_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/image.h"
#include "eval/match.h"

/* What the evaluator knows about an image when it asks for its descriptors. */
typedef struct {
    const char *key;           /* "category/name.jpg": identity across pairs (cache key) */
    const char *path;          /* the file on disk */
    int width, height;         /* original size W × H */
    const dhf_image *image;    /* decoded RGB when the provider sets needs_image, else NULL */
    int load_size;             /* the evaluator's L */
    dhf_resize_policy resize;  /* which frame the map must cover */
} dhf_provider_input;

typedef struct {
    float *data;               /* c × h × w row-major, malloc'd; the caller free()s it */
    int c, h, w;
} dhf_descriptors;

typedef struct dhf_provider {
    char name[64];             /* "image", "layer:4", ...: recorded in the protocol */
    char description[512];     /* one line: what the descriptors are */
    bool needs_image;          /* the evaluator decodes the image for describe() */
    void *ctx;
    /* Returns 0 and fills out, or -1 with the error set (naming in->key). */
    int (*describe)(void *ctx, const dhf_provider_input *in, dhf_descriptors *out);
    /* Optional: extra protocol fields (cache file, checkpoint, layer, ...) as a
     * new JSON object the caller owns; NULL when nothing to add. */
    cJSON *(*protocol)(void *ctx);
    void (*destroy)(void *ctx);   /* optional */
} dhf_provider;

/* What a factory gets: the part after "name:" of --provider, --checkpoint and
 * the resolved configuration. */
typedef struct {
    const char *arg;           /* NULL when --provider had no ":arg" */
    const char *checkpoint;    /* NULL when not given */
    const dhf_config *cfg;
} dhf_provider_args;

/* Fills *out (zeroed first) or returns -1 with the error set. */
typedef int (*dhf_provider_open_fn)(const dhf_provider_args *args, dhf_provider *out);

/* Calls destroy and zeroes *p; safe on a zeroed provider. */
void dhf_provider_close(dhf_provider *p);

/* {"provider": name, "description": ..., + the provider's protocol fields}. */
cJSON *dhf_provider_protocol_json(const dhf_provider *p);

#endif
