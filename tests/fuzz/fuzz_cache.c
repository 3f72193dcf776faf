/* fuzz_cache.c — the HDF5 feature-cache reader (cache/feature_cache.h) on arbitrary
 * bytes: open, the image index, a lookup, the first committed image's maps. */
#include "fuzz_util.h"

#include "cache/feature_cache.h"

#include <hdf5.h>

/* One map buffer for the whole run: a fresh multi-MiB malloc per map made page faults
 * most of the harness's time. */
enum { MAX_MAP = 1 << 22 };
static float map_buf[MAX_MAP];

/* HDF5 frees a block larger than its free-list limits at once; the metadata cache of
 * every H5Fopen is such a block, and under ASan each one was a fresh mapping zeroed page
 * by page. Unlimited free lists keep it for the next input (HDF5's own allocator, the
 * parsing unchanged). */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    H5set_free_list_limits(-1, -1, -1, -1, -1, -1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("cache.h5", data, size);
    dhf_feature_cache *c = NULL;
    if (dhf_cache_open_read(path, 1, &c) != 0)
        return 0;
    int64_t n = dhf_cache_num_images(c);
    for (int64_t r = 0; r < n && r < 4; r++) {
        const dhf_cache_image *im = dhf_cache_image_at(c, r);
        int64_t row = -1;
        dhf_cache_lookup(c, im->key, &row);
        if (!dhf_cache_is_committed(c, r))
            continue;
        for (int l = 0; l < dhf_cache_num_layers(c); l++) {
            int64_t chw[3];
            if (dhf_cache_layer_shape(c, l, chw) != 0)
                continue;
            size_t m = (size_t)(chw[0] * chw[1] * chw[2]);
            if (m == 0 || m > MAX_MAP)
                continue;
            dhf_cache_read_map(c, r, 0, l, map_buf, m);
        }
        int64_t bad = 0;
        dhf_cache_check_row(c, r, &bad);
    }
    dhf_cache_close(c);
    return 0;
}
