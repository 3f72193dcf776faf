/* feature_cache_internal.h — the cache handle, shared by the feature_cache*.c files
 * (open/close and metadata, writing, reading, merging). Not a public header. */
#ifndef DHF_CACHE_FEATURE_CACHE_INTERNAL_H
#define DHF_CACHE_FEATURE_CACHE_INTERNAL_H

#include "cache/feature_cache.h"

#include <hdf5.h>
#include <stdbool.h>

#define DHF_CACHE_KIND "dhf-feature-cache"
#define DHF_CACHE_INDEX_CHUNK 256   /* rows per chunk of the /images datasets */

enum { DHF_CACHE_PENDING = 0, DHF_CACHE_COMMITTED = 1 };

struct dhf_feature_cache {
    char path[4096];
    bool writable;
    hid_t file;
    hid_t layer[DHF_CACHE_MAX_LAYERS];
    hid_t idx_key, idx_path, idx_width, idx_height, idx_status;
    hid_t half_type;          /* the file's float16 type (also the memory type) */
    hid_t key_type, path_type;

    dhf_cache_layout layout;
    char *config_json, *identity_json;   /* owned; layout points at them */

    /* The image index, mirrored in memory. */
    int64_t n_images, cap_images;
    dhf_cache_image *images;
    uint8_t *status;
    int64_t n_committed;
    int64_t *slots;           /* open-addressing hash: key -> row, -1 empty */
    size_t n_slots;           /* power of two, >= 2 * n_images */

    void *scratch;            /* one layer's maps in file dtype (conversions) */
    size_t scratch_bytes;
    int lock_fd;              /* writer: flock'ed <path>.lock, else -1 */
    bool skip_fsync;          /* merge output: atomic by rename, fsync once at the end */
    /* Writer: which maps of the rows being written are done ([step][layer]), so a
     * commit of an incomplete row is refused; rows being written (a batch of generated images is written side by side):
     * which of their maps exist; a slot is free when its row is -1 */
    struct {
        int64_t row;
        int n_written;
        bool written[DHF_CACHE_MAX_STEPS][DHF_CACHE_MAX_LAYERS];
    } pending[DHF_CACHE_MAX_PENDING];
    char lock_path[4160];
};

/* Index maintenance (feature_cache.c). */
int dhf_cache__index_insert(dhf_feature_cache *c, int64_t row);
int dhf_cache__reserve_rows(dhf_feature_cache *c, int64_t n);
/* Ensures c->scratch holds at least `bytes`. */
int dhf_cache__scratch(dhf_feature_cache *c, size_t bytes);
/* The HDF5 memory type matching the file's dtype. */
hid_t dhf_cache__mem_type(const dhf_feature_cache *c);
/* Selects the block [row, step0..step0+nsteps, :, :, :] of a layer dataset. */
int dhf_cache__select(const dhf_feature_cache *c, int layer, int64_t row, int step0,
                      int nsteps, hid_t *file_space, hid_t *mem_space);
/* Raw [S,C,H,W] block of one layer of one row, in the file's dtype. */
int dhf_cache__read_layer_raw(dhf_feature_cache *c, int64_t row, int layer, void *buf);
int dhf_cache__write_layer_raw(dhf_feature_cache *c, int64_t row, int layer, const void *buf);
/* fsync the HDF5 file's descriptor (after H5Fflush) so ordering survives an OS crash. */
int dhf_cache__sync(dhf_feature_cache *c);

#endif
