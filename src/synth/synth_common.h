/* synth_common.h — what the `dhf synth` writers share (synth_common.c implements
 * it): the parallel picture renderer, JSON file output and the provenance
 * manifest. Not for use outside src/synth/. */
#ifndef DHF_SYNTH_COMMON_H
#define DHF_SYNTH_COMMON_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "core/error.h"
#include "synth/synth.h"

typedef struct {
    const char *category; /* static or owned by the caller */
    int style;            /* -1, or the bird class */
    uint64_t seed;
    char jpg_path[4096];
    dhf_synth_instance inst; /* filled by dhf_synth_render_jobs */
    int failed;
    char err[512];
} dhf_synth_job;

/* Renders every job and writes its JPEG, on o->threads threads; the result
 * does not depend on the thread count (each job has its own seed). Fails with
 * the first failing job's message (in job order). */
int dhf_synth_render_jobs(dhf_synth_job *jobs, int n, const dhf_synth_options *o, const char *label);

/* Pretty-prints j and writes it atomically. Does not free j. */
int dhf_synth_write_json(const char *path, const cJSON *j);
/* Writes a text buffer atomically. */
int dhf_synth_write_text(const char *path, const char *text, size_t len);

/* The provenance object of dhf_synth.json (generator, version, seed, options,
 * conventions); the caller adds dataset-specific members. NULL on OOM. */
cJSON *dhf_synth_manifest(const dhf_synth_options *o, const char *format);

/* Growable text buffer for the list files. */
typedef struct {
    char *data;
    size_t len, cap;
    int oom;
} dhf_synth_text;
void dhf_synth_text_printf(dhf_synth_text *t, const char *fmt, ...) DHF_PRINTF(2, 3);
void dhf_synth_text_free(dhf_synth_text *t);

/* The deterministic seed of one picture: (run seed, namespace, name, index). */
uint64_t dhf_synth_item_seed(uint64_t seed, const char *ns, const char *name, int index);

#endif
