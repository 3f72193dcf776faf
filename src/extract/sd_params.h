/* sd_params.h — where the networks of src/extract get their parameters: a
 * safetensors file (strict: every tensor must exist with the expected shape, and
 * every tensor of the file must be used or explicitly ignored), or seeded random
 * values (in memory for benchmarks, or written to a safetensors writer by
 * `dhf init-model`). The network constructors are the single description of names
 * and shapes; the three modes only change where values come from, so init-model
 * can never write a file the loader would refuse.
 *
 * Tensors made here are unscoped (they outlive any shim scope open at load time)
 * and are appended to a dhf_tensor_list that the owning network frees. */
#ifndef DHF_EXTRACT_SD_PARAMS_H
#define DHF_EXTRACT_SD_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "shim/torch_shim.h"

/* A growable list of owned handles (a network's parameters). */
typedef struct {
    dhf_tensor *items;
    int n, cap;
} dhf_tensor_list;

int dhf_tensor_list_push(dhf_tensor_list *l, dhf_tensor t);
void dhf_tensor_list_free(dhf_tensor_list *l);   /* frees every handle and the array */

typedef enum {
    DHF_PARAMS_FILE = 0,   /* values read from a safetensors file */
    DHF_PARAMS_RANDOM,     /* seeded random values as in-memory tensors (benchmarks) */
    DHF_PARAMS_GENERATE    /* seeded random values added to a writer; no tensor is made:
                              layers get NULL handles (used only to enumerate) */
} dhf_params_mode;

/* How a random value is drawn (ignored in FILE mode). Roughly torch's defaults, so
 * activations stay O(1): FAN_IN U(+-1/sqrt(fan_in)) for conv/linear weights and
 * biases; NORM_WEIGHT 1 + 0.1 N(0,1); NORM_BIAS 0.1 N(0,1); EMBEDDING 0.5 N(0,1). */
typedef enum {
    DHF_INIT_FAN_IN = 0, DHF_INIT_NORM_WEIGHT, DHF_INIT_NORM_BIAS, DHF_INIT_EMBEDDING
} dhf_param_init;

typedef struct {
    dhf_params_mode mode;
    char path[4096];            /* the file, or a label for random sources (messages) */
    dhf_st_file *st;            /* FILE: owned */
    unsigned char *used;        /* FILE: one flag per tensor (name order) */
    uint64_t seed;              /* RANDOM / GENERATE */
    dhf_st_writer *writer;      /* GENERATE: borrowed */
    dhf_st_dtype write_dtype;   /* GENERATE: F32, F16 or BF16 */
    dhf_tensor_list *dst;       /* FILE / RANDOM: every NEW tensor goes here */
    dhf_device device;          /* tensors are moved there (default CPU) */
    dhf_dtype dtype;            /* and converted to this floating dtype (default F32) */
    int64_t n_values;           /* scalars delivered so far */
    int n_tensors;              /* tensors delivered so far */
} dhf_params;

/* Opens `path` (fully validated by the safetensors reader). */
int dhf_params_open_file(dhf_params *p, const char *path, dhf_tensor_list *dst);
void dhf_params_init_random(dhf_params *p, uint64_t seed, const char *label,
                            dhf_tensor_list *dst);
void dhf_params_init_generate(dhf_params *p, uint64_t seed, const char *label,
                              dhf_st_writer *w, dhf_st_dtype write_dtype);
void dhf_params_close(dhf_params *p);   /* closes the file; never frees tensors */

/* The parameter `name` (printf format) with exactly `shape`. FILE: converted to F32
 * (then to p->dtype / p->device); missing or wrong shape -> error naming tensor and
 * file. `fan_in` is used by DHF_INIT_FAN_IN only. *out is NULL in GENERATE mode. */
int dhf_params_get(dhf_params *p, dhf_param_init init, int64_t fan_in,
                   const int64_t *shape, int ndim, dhf_tensor *out, const char *fmt, ...)
    DHF_PRINTF(7, 8);

/* FILE mode: whether the file holds `name`; other modes: false. */
bool dhf_params_has(const dhf_params *p, const char *name);
/* FILE mode: the stored shape of `name` (ndim -1 when absent). */
int dhf_params_stored_shape(const dhf_params *p, const char *name, int64_t *shape);
/* FILE mode: marks `name` as used without loading it (optional buffers we ignore,
 * e.g. CLIP's position_ids after checking it). No-op when absent or in other modes. */
void dhf_params_mark_used(dhf_params *p, const char *name);
/* FILE mode: error naming the first tensor that was neither loaded nor under one of
 * `ignored_prefixes` (NULL-terminated list, may be NULL): an unexpected tensor
 * means the file and the config describe different networks. */
int dhf_params_check_all_used(const dhf_params *p, const char *const *ignored_prefixes);

/* Where the weights live and in which floating dtype they are computed
 * (default CPU float32; float16 on CUDA only, bfloat16 on CUDA or AVX512-BF16 CPUs). */
typedef struct {
    dhf_device device;
    dhf_dtype dtype;
} dhf_model_placement;

/* Opens the weights of one diffusers component folder (<dir>/<stem>.safetensors or
 * its .fp16 variant) in FILE mode, placed as given (NULL: CPU float32). */
int dhf_params_open_component(dhf_params *p, const char *dir, const char *stem,
                              const dhf_model_placement *placement);


#endif
