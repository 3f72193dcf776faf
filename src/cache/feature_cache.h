/* feature_cache.h — the HDF5 feature cache: one file per extraction holding the
 * diffusion features of every image, written crash-safely by `dhf extract` and read
 * by the trainer, `dhf eval`'s raw-feature providers and `dhf cache ...`.
 *
 * File layout (schema version 1; h5py-readable):
 *   /                         attributes: dhf_kind = "dhf-feature-cache",
 *                             dhf_schema_version, model_name, model_hash,
 *                             config_json (the full resolved config),
 *                             identity_json (the keys that determine the features),
 *                             cache_dtype ("float16"|"float32"), compression,
 *                             unet_timesteps f64[S], save_timestep i64[S],
 *                             layer_names str[L], layer_shapes i64[L,3] (C,H,W)
 *   /images/key     str[N]    "category/name", unique
 *   /images/path    str[N]    source image path
 *   /images/width   i32[N]    original size
 *   /images/height  i32[N]
 *   /images/status  u8[N]     0 = pending, 1 = committed (all its maps written)
 *   /layers/layerNN [N,S,C,H,W] float16 ('<f2') or float32, one chunk per
 *                             [1,1,C,H,W] map, optional shuffle+deflate
 *
 * Crash safety: the writer uses HDF5's single-writer/multiple-reader mode (SWMR),
 * whose ordered, checksummed metadata writes keep the file readable at any instant,
 * so a killed extraction leaves a readable file. An image becomes visible only
 * through its status flag, which is set after all its maps are written, flushed
 * and fsync'ed (then flushed and fsync'ed again), so it is never half-visible.
 * Reopening a killed file for writing clears HDF5's "open for writing" marks.
 *
 * Handles are not thread-safe (neither is the serial HDF5 library). */
#ifndef DHF_CACHE_FEATURE_CACHE_H
#define DHF_CACHE_FEATURE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DHF_CACHE_SCHEMA_VERSION 2
#define DHF_CACHE_MAX_LAYERS 32
#define DHF_CACHE_MAX_STEPS 64
#define DHF_CACHE_NAME_LEN 64
#define DHF_CACHE_KEY_LEN 256     /* stored width of /images/key, NUL included */
#define DHF_CACHE_PATH_LEN 1024   /* stored width of /images/path */
#define DHF_CACHE_MAX_PENDING 64  /* rows written side by side before their commits */

typedef enum { DHF_CACHE_F16 = 0, DHF_CACHE_F32 = 1 } dhf_cache_dtype;

/* Everything that is fixed for a cache file. On open, config_json and
 * identity_json point into strings owned by the handle. */
typedef struct {
    int num_layers;                                      /* L */
    char layer_name[DHF_CACHE_MAX_LAYERS][DHF_CACHE_NAME_LEN];
    int64_t layer_chw[DHF_CACHE_MAX_LAYERS][3];          /* C, H, W per layer */
    int num_steps;                                       /* S */
    double unet_timestep[DHF_CACHE_MAX_STEPS];           /* UNet t of each saved step */
    int64_t save_label[DHF_CACHE_MAX_STEPS];             /* save_timestep label */
    dhf_cache_dtype dtype;
    int compression;                                     /* 0 off, 1..9 deflate level */
    char model_name[256];                                /* model folder name */
    char model_hash[64];                                 /* model_identity.h */
    const char *config_json;                             /* full resolved config */
    const char *identity_json;                           /* compared on resume/merge */
} dhf_cache_layout;

typedef struct {
    char key[DHF_CACHE_KEY_LEN];    /* "category/name" */
    char path[DHF_CACHE_PATH_LEN];  /* source image */
    int width, height;              /* original size in pixels */
} dhf_cache_image;

typedef struct dhf_feature_cache dhf_feature_cache;

const char *dhf_cache_dtype_name(dhf_cache_dtype dt);   /* "float16" | "float32" */
int dhf_cache_dtype_parse(const char *s, dhf_cache_dtype *out);
size_t dhf_cache_dtype_size(dhf_cache_dtype dt);

/* Zeroes *l and sets dtype float16, no compression, empty JSON objects. */
void dhf_cache_layout_init(dhf_cache_layout *l);
/* 0 when files with layouts a and b hold comparable features (same identity JSON,
 * model hash, dtype, steps, timesteps, layers and shapes); otherwise -1 with a
 * message naming the first difference, the sides called name_a and name_b. */
int dhf_cache_layout_check_same(const dhf_cache_layout *a, const char *name_a,
                                const dhf_cache_layout *b, const char *name_b);

/* ---- writing ----------------------------------------------------------------
 * Opens `path` for extraction: creates it with `layout` if absent; otherwise checks
 * it is a dhf cache of the same layout (dhf_cache_layout_check_same; compression
 * may differ, the file's wins) and resumes it, repairing the marks a killed writer
 * left. Takes an exclusive lock (<path>.lock) so that two extractions cannot write
 * the same file. */
int dhf_cache_open_write(const char *path, const dhf_cache_layout *layout,
                         dhf_feature_cache **out);
/* Makes rows for images whose key is not in the file yet (existing keys keep their
 * row and status); rows[i] (may be NULL) receives image i's row. Duplicate keys in
 * `images` are an error. */
int dhf_cache_add_images(dhf_feature_cache *c, const dhf_cache_image *images, int64_t n,
                         int64_t *rows);
/* Writes one [C,H,W] map (count = C*H*W values) of an uncommitted row. */
int dhf_cache_write_map(dhf_feature_cache *c, int64_t row, int step, int layer,
                        const float *chw, size_t count);
/* Writes one map already in the file's dtype (float16 bits or float32). */
int dhf_cache_write_map_raw(dhf_feature_cache *c, int64_t row, int step, int layer,
                            const void *chw, size_t count);
/* Publishes a row: flush + fsync its data, then set and flush + fsync its status. */
int dhf_cache_commit(dhf_feature_cache *c, int64_t row);

/* ---- reading ------------------------------------------------------------------
 * Opens read-only (also a file a killed or running writer left). The chunk cache
 * of each layer dataset holds chunk_cache_images images' worth of maps (all steps),
 * so re-reading the maps of the last few images costs no I/O or decompression;
 * 0 means 1. */
int dhf_cache_open_read(const char *path, int chunk_cache_images, dhf_feature_cache **out);
/* Flushes (writer), releases everything; returns -1 if the final flush failed. */
int dhf_cache_close(dhf_feature_cache *c);   /* NULL ok */

const char *dhf_cache_path(const dhf_feature_cache *c);
const dhf_cache_layout *dhf_cache_get_layout(const dhf_feature_cache *c);
int dhf_cache_num_steps(const dhf_feature_cache *c);
int dhf_cache_num_layers(const dhf_feature_cache *c);
/* C, H, W of layer l (0-based); 0 on success, -1 (message) when out of range. */
int dhf_cache_layer_shape(const dhf_feature_cache *c, int layer, int64_t chw[3]);
size_t dhf_cache_map_numel(const dhf_feature_cache *c, int layer);  /* C*H*W; 0 if bad */

int64_t dhf_cache_num_images(const dhf_feature_cache *c);      /* rows, any status */
int64_t dhf_cache_num_committed(const dhf_feature_cache *c);
/* BORROWED row data; NULL when out of range. */
const dhf_cache_image *dhf_cache_image_at(const dhf_feature_cache *c, int64_t row);
bool dhf_cache_is_committed(const dhf_feature_cache *c, int64_t row);
/* Row of `key`, or -1 when absent. */
int64_t dhf_cache_find(const dhf_feature_cache *c, const char *key);
/* Row of a committed image; absent or unfinished is an error naming file and key. */
int dhf_cache_lookup(const dhf_feature_cache *c, const char *key, int64_t *row);

/* One committed (row, step, layer) map as float32 into dst (count = C*H*W). */
int dhf_cache_read_map(dhf_feature_cache *c, int64_t row, int step, int layer,
                       float *dst, size_t count);
/* All S steps of one layer of a committed row: dst [S,C,H,W] (count = S*C*H*W). */
int dhf_cache_read_layer(dhf_feature_cache *c, int64_t row, int layer, float *dst,
                         size_t count);
/* Reads every map of a committed row; *nonfinite = number of NaN/inf values. */
int dhf_cache_check_row(dhf_feature_cache *c, int64_t row, int64_t *nonfinite);

/* Sizes for `dhf cache info` and the docs. */
typedef struct {
    int64_t values_per_image;     /* sum over layers of S*C*H*W */
    int64_t bytes_per_image;      /* values_per_image * dtype size (uncompressed) */
    int64_t stored_bytes;         /* bytes the layer datasets occupy in the file */
    int64_t stored_maps;          /* allocated chunks (= maps written) */
    double compression_ratio;     /* uncompressed / stored bytes of written maps */
    int64_t file_bytes;
} dhf_cache_stats;
int dhf_cache_get_stats(const dhf_feature_cache *c, dhf_cache_stats *st);

/* ---- merging ------------------------------------------------------------------
 * Writes `out` (atomically: temp file + rename; an existing `out` is an error)
 * holding every committed image of the inputs, in input order; an image key found
 * committed in several inputs is taken from the first. Inputs must have the same
 * layout (dhf_cache_layout_check_same); the attributes are the first input's.
 * progress (may be NULL) is called after each copied image. */
typedef void (*dhf_cache_progress_fn)(void *user, int64_t done, int64_t total);
int dhf_cache_merge(const char *out, const char *const *inputs, int n_inputs,
                    dhf_cache_progress_fn progress, void *user, int64_t *n_merged);

#endif
