/* feature_cache_write.c — the writer side of the feature cache: adding image rows,
 * writing maps (float32 -> the file's dtype) and publishing a finished row. The
 * order (data, flush, fsync, status, flush, fsync) is what makes a row either fully
 * there or invisible after a crash. */
#include "cache/feature_cache_internal.h"
#include "cache/h5_util.h"
#include "cache/half_float.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

static int check_writable(const dhf_feature_cache *c)
{
    if (!c->writable)
        return dhf_err_set("%s: opened read-only", c->path);
    return 0;
}

static int set_rows(dhf_feature_cache *c, hid_t d, int64_t n, const char *what)
{
    hid_t s = H5Dget_space(d);
    int nd = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
    hsize_t dims[5];
    if (nd >= 1 && nd <= 5)
        H5Sget_simple_extent_dims(s, dims, NULL);
    if (s >= 0)
        H5Sclose(s);
    if (nd < 1 || nd > 5)
        return dhf_err_set("%s: %s: %s", c->path, what, dhf_h5_error());
    if ((int64_t)dims[0] >= n)
        return 0;
    dims[0] = (hsize_t)n;
    if (H5Dset_extent(d, dims) < 0)
        return dhf_err_set("%s: cannot extend %s to %lld rows: %s", c->path, what,
                           (long long)n, dhf_h5_error());
    return 0;
}

static int write_column(dhf_feature_cache *c, hid_t d, hid_t mem_type, int64_t first,
                        int64_t n, const void *buf, const char *what)
{
    hsize_t off[1] = {(hsize_t)first}, cnt[1] = {(hsize_t)n};
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, cnt, NULL);
    herr_t st = (fs < 0 || ms < 0) ? -1
                                   : H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL);
    if (st >= 0)
        st = H5Dwrite(d, mem_type, ms, fs, H5P_DEFAULT, buf);
    /* Read HDF5's message before the closes below clear its error stack. */
    const char *why = st < 0 ? dhf_h5_error() : NULL;
    if (fs >= 0)
        H5Sclose(fs);
    if (ms >= 0)
        H5Sclose(ms);
    if (st < 0)
        return dhf_err_set("%s: cannot write %s: %s", c->path, what, why);
    return 0;
}

int dhf_cache_add_images(dhf_feature_cache *c, const dhf_cache_image *images, int64_t n,
                         int64_t *rows)
{
    if (check_writable(c) != 0)
        return -1;
    int64_t first = c->n_images;
    if (dhf_cache__reserve_rows(c, first + n) != 0)
        return -1;
    for (int64_t i = 0; i < n; i++) {
        const dhf_cache_image *im = &images[i];
        size_t klen = strnlen(im->key, DHF_CACHE_KEY_LEN);
        if (klen == 0 || klen >= DHF_CACHE_KEY_LEN)
            return dhf_err_set("%s: image %lld: key must be 1..%d bytes ('%.40s...')", c->path,
                               (long long)i, DHF_CACHE_KEY_LEN - 1, im->key);
        if (strnlen(im->path, DHF_CACHE_PATH_LEN) >= DHF_CACHE_PATH_LEN)
            return dhf_err_set("%s: image '%s': source path longer than %d bytes", c->path,
                               im->key, DHF_CACHE_PATH_LEN - 1);
        int64_t r = dhf_cache_find(c, im->key);
        if (r >= first)
            return dhf_err_set("%s: image key '%s' given twice (%s and %s)", c->path, im->key,
                               c->images[r].path, im->path);
        if (r < 0) {
            r = c->n_images++;
            c->images[r] = *im;
            c->status[r] = DHF_CACHE_PENDING;
            if (dhf_cache__index_insert(c, r) != 0)
                return -1;
        }
        if (rows)
            rows[i] = r;
    }
    int64_t added = c->n_images - first;
    if (added == 0)
        return 0;

    /* Layers first and the status column last: a reader trusts rows < len(status). */
    for (int l = 0; l < c->layout.num_layers; l++)
        if (set_rows(c, c->layer[l], c->n_images, "a layer dataset") != 0)
            return -1;
    char *keys = calloc((size_t)added, DHF_CACHE_KEY_LEN);
    char *paths = calloc((size_t)added, DHF_CACHE_PATH_LEN);
    int32_t *w = malloc((size_t)added * sizeof *w), *h = malloc((size_t)added * sizeof *h);
    int rc = -1;
    if (!keys || !paths || !w || !h) {
        dhf_err_set("%s: out of memory adding %lld images", c->path, (long long)added);
        goto done;
    }
    for (int64_t i = 0; i < added; i++) {
        const dhf_cache_image *im = &c->images[first + i];
        memcpy(keys + i * DHF_CACHE_KEY_LEN, im->key, strlen(im->key));
        memcpy(paths + i * DHF_CACHE_PATH_LEN, im->path, strlen(im->path));
        w[i] = im->width;
        h[i] = im->height;
    }
    if (set_rows(c, c->idx_key, c->n_images, "/images/key") != 0 ||
        set_rows(c, c->idx_path, c->n_images, "/images/path") != 0 ||
        set_rows(c, c->idx_width, c->n_images, "/images/width") != 0 ||
        set_rows(c, c->idx_height, c->n_images, "/images/height") != 0 ||
        write_column(c, c->idx_key, c->key_type, first, added, keys, "/images/key") != 0 ||
        write_column(c, c->idx_path, c->path_type, first, added, paths, "/images/path") != 0 ||
        write_column(c, c->idx_width, H5T_NATIVE_INT32, first, added, w, "/images/width") != 0 ||
        write_column(c, c->idx_height, H5T_NATIVE_INT32, first, added, h,
                     "/images/height") != 0 ||
        dhf_cache__sync(c) != 0 ||
        set_rows(c, c->idx_status, c->n_images, "/images/status") != 0 ||
        write_column(c, c->idx_status, H5T_NATIVE_UINT8, first, added, c->status + first,
                     "/images/status") != 0)
        goto done;
    rc = dhf_cache__sync(c);
done:
    free(keys);
    free(paths);
    free(w);
    free(h);
    return rc;
}

static int check_map_args(dhf_feature_cache *c, int64_t row, int step, int layer, size_t count)
{
    if (check_writable(c) != 0)
        return -1;
    if (row < 0 || row >= c->n_images)
        return dhf_err_set("%s: row %lld out of range (%lld images)", c->path, (long long)row,
                           (long long)c->n_images);
    if (c->status[row] == DHF_CACHE_COMMITTED)
        return dhf_err_set("%s: image '%s' is already committed; its maps are final",
                           c->path, c->images[row].key);
    if (step < 0 || step >= c->layout.num_steps)
        return dhf_err_set("%s: step %d out of range (0..%d)", c->path, step,
                           c->layout.num_steps - 1);
    if (layer < 0 || layer >= c->layout.num_layers)
        return dhf_err_set("%s: layer %d out of range (1..%d)", c->path, layer + 1,
                           c->layout.num_layers);
    size_t want = dhf_cache_map_numel(c, layer);
    if (count != want)
        return dhf_err_set("%s: layer %d map: expected %zu values [%lld, %lld, %lld], got %zu",
                           c->path, layer + 1, want, (long long)c->layout.layer_chw[layer][0],
                           (long long)c->layout.layer_chw[layer][1],
                           (long long)c->layout.layer_chw[layer][2], count);
    return 0;
}

/* The pending slot of row (made when make is set), or -1. */
static int pending_slot(dhf_feature_cache *c, int64_t row, bool make)
{
    int free_slot = -1;
    for (int i = 0; i < DHF_CACHE_MAX_PENDING; i++) {
        if (c->pending[i].row == row)
            return i;
        if (c->pending[i].row < 0 && free_slot < 0)
            free_slot = i;
    }
    if (!make)
        return -1;
    if (free_slot < 0)
        return dhf_err_set("%s: more than %d images written at once", c->path,
                           DHF_CACHE_MAX_PENDING);
    memset(&c->pending[free_slot], 0, sizeof c->pending[free_slot]);
    c->pending[free_slot].row = row;
    return free_slot;
}

static int note_written(dhf_feature_cache *c, int64_t row, int step, int layer)
{
    int i = pending_slot(c, row, true);
    if (i < 0)
        return -1;
    if (!c->pending[i].written[step][layer]) {
        c->pending[i].written[step][layer] = true;
        c->pending[i].n_written++;
    }
    return 0;
}

int dhf_cache_write_map_raw(dhf_feature_cache *c, int64_t row, int step, int layer,
                            const void *chw, size_t count)
{
    if (check_map_args(c, row, step, layer, count) != 0)
        return -1;
    hid_t fs, ms;
    if (dhf_cache__select(c, layer, row, step, 1, &fs, &ms) != 0)
        return -1;
    herr_t st = H5Dwrite(c->layer[layer], dhf_cache__mem_type(c), ms, fs, H5P_DEFAULT, chw);
    const char *why = st < 0 ? dhf_h5_error() : NULL;
    H5Sclose(fs);
    H5Sclose(ms);
    if (st < 0)
        return dhf_err_set("%s: cannot write image '%s' step %d layer %d: %s", c->path,
                           c->images[row].key, step, layer + 1, why);
    return note_written(c, row, step, layer);
}

int dhf_cache_write_map(dhf_feature_cache *c, int64_t row, int step, int layer,
                        const float *chw, size_t count)
{
    if (check_map_args(c, row, step, layer, count) != 0)
        return -1;
    if (c->layout.dtype == DHF_CACHE_F32)
        return dhf_cache_write_map_raw(c, row, step, layer, chw, count);
    if (dhf_cache__scratch(c, count * sizeof(uint16_t)) != 0)
        return -1;
    dhf_half_from_float_n(chw, c->scratch, count);
    return dhf_cache_write_map_raw(c, row, step, layer, c->scratch, count);
}

int dhf_cache__write_layer_raw(dhf_feature_cache *c, int64_t row, int layer, const void *buf)
{
    if (check_map_args(c, row, 0, layer, dhf_cache_map_numel(c, layer)) != 0)
        return -1;
    hid_t fs, ms;
    if (dhf_cache__select(c, layer, row, 0, c->layout.num_steps, &fs, &ms) != 0)
        return -1;
    herr_t st = H5Dwrite(c->layer[layer], dhf_cache__mem_type(c), ms, fs, H5P_DEFAULT, buf);
    const char *why = st < 0 ? dhf_h5_error() : NULL;
    H5Sclose(fs);
    H5Sclose(ms);
    if (st < 0)
        return dhf_err_set("%s: cannot write image '%s' layer %d: %s", c->path,
                           c->images[row].key, layer + 1, why);
    for (int s = 0; s < c->layout.num_steps; s++)
        if (note_written(c, row, s, layer) != 0)
            return -1;
    return 0;
}

int dhf_cache_commit(dhf_feature_cache *c, int64_t row)
{
    if (check_writable(c) != 0)
        return -1;
    if (row < 0 || row >= c->n_images)
        return dhf_err_set("%s: row %lld out of range", c->path, (long long)row);
    if (c->status[row] == DHF_CACHE_COMMITTED)
        return 0;
    int want = c->layout.num_steps * c->layout.num_layers;
    int slot = pending_slot(c, row, false);
    int have = slot >= 0 ? c->pending[slot].n_written : 0;
    if (have != want)
        return dhf_err_set("%s: image '%s': only %d of %d maps written; not committing",
                           c->path, c->images[row].key, have, want);
    if (dhf_cache__sync(c) != 0)
        return -1;
    uint8_t one = DHF_CACHE_COMMITTED;
    if (write_column(c, c->idx_status, H5T_NATIVE_UINT8, row, 1, &one, "/images/status") != 0)
        return -1;
    if (dhf_cache__sync(c) != 0)
        return -1;
    c->status[row] = DHF_CACHE_COMMITTED;
    c->n_committed++;
    if (slot >= 0)
        c->pending[slot].row = -1;
    return 0;
}
