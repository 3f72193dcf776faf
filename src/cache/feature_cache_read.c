/* feature_cache_read.c — the reader side of the feature cache: committed maps as
 * float32 (float16 bits are read without HDF5 conversion and widened here, which
 * is exact and far faster than HDF5's generic float conversion), raw blocks for
 * merging, and the finiteness check behind `dhf cache verify`. */
#include "cache/feature_cache_internal.h"
#include "cache/h5_util.h"
#include "cache/half_float.h"
#include "core/error.h"

#include <string.h>

#include <math.h>
#include <stdlib.h>

static int check_read_args(const dhf_feature_cache *c, int64_t row, int step, int layer)
{
    if (row < 0 || row >= c->n_images)
        return dhf_err_set("%s: row %lld out of range (%lld images)", c->path, (long long)row,
                           (long long)c->n_images);
    if (c->status[row] != DHF_CACHE_COMMITTED)
        return dhf_err_set("%s: image '%s' is not finished (extraction interrupted? re-run "
                           "dhf extract)", c->path, c->images[row].key);
    if (step < 0 || step >= c->layout.num_steps)
        return dhf_err_set("%s: step %d out of range (0..%d)", c->path, step,
                           c->layout.num_steps - 1);
    if (layer < 0 || layer >= c->layout.num_layers)
        return dhf_err_set("%s: layer %d out of range (1..%d)", c->path, layer + 1,
                           c->layout.num_layers);
    return 0;
}

/* Every chunk about to be read must be stored whole with every filter applied: HDF5
 * copies a chunk whose index entry lies about its filters or size past its own buffer
 * (found by fuzzing), so such a map is refused before HDF5 reads it. The stored size of
 * an uncompressed map is exact (the map and Fletcher-32's 4 bytes); a deflated one may
 * grow by deflate's worst case. */
static int check_chunks(dhf_feature_cache *c, int64_t row, int step0, int nsteps, int layer)
{
    size_t map = dhf_cache_map_numel(c, layer) * (c->layout.dtype == DHF_CACHE_F32 ? 4 : 2);
    hsize_t most = c->layout.compression ? map + map / 1000 + 64 + 4 : map + 4;
    for (int s = step0; s < step0 + nsteps; s++) {
        hsize_t off[5] = {(hsize_t)row, (hsize_t)s, 0, 0, 0}, size = 0;
        unsigned mask = 0;
        haddr_t addr = HADDR_UNDEF;
        herr_t st = H5Dget_chunk_info_by_coord(c->layer[layer], off, &mask, &addr, &size);
        H5Eclear2(H5E_DEFAULT);
        if (st < 0 || addr == HADDR_UNDEF || mask != 0 || size < 5 || size > most ||
            (!c->layout.compression && size != most))
            return dhf_err_set("%s: image '%s' step %d layer %d: the map's chunk is damaged "
                               "(%s); re-extract this image", c->path, c->images[row].key, s,
                               layer + 1,
                               st < 0 ? "its index entry is unreadable"
                               : addr == HADDR_UNDEF ? "it was never written"
                               : mask ? "stored with a filter skipped"
                                      : "stored size does not fit the map");
    }
    return 0;
}

/* Reads steps [step0, step0+nsteps) of (row, layer) in the file's dtype into buf. */
static int read_raw(dhf_feature_cache *c, int64_t row, int step0, int nsteps, int layer,
                    void *buf)
{
    if (check_chunks(c, row, step0, nsteps, layer) != 0)
        return -1;
    hid_t fs, ms;
    if (dhf_cache__select(c, layer, row, step0, nsteps, &fs, &ms) != 0)
        return -1;
    herr_t st = H5Dread(c->layer[layer], dhf_cache__mem_type(c), ms, fs, H5P_DEFAULT, buf);
    /* Read HDF5's message before the closes below clear its error stack. */
    const char *why = st < 0 ? dhf_h5_error() : NULL;
    H5Sclose(fs);
    H5Sclose(ms);
    if (st < 0 && nsteps > 1) {
        /* name the damaged map: the first step that does not read on its own */
        for (int s = step0; s < step0 + nsteps; s++) {
            size_t one = dhf_cache_map_numel(c, layer) * (c->layout.dtype == DHF_CACHE_F32 ? 4 : 2);
            if (read_raw(c, row, s, 1, layer, (char *)buf + (size_t)(s - step0) * one) != 0)
                return -1;
        }
    }
    if (st < 0)
        return dhf_err_set("%s: cannot read image '%s' step %d layer %d (%s%s)", c->path,
                           c->images[row].key, step0, layer + 1,
                           why && strstr(why, "checksum") ? "checksum mismatch: the file is "
                                                            "damaged; re-extract this image; "
                                                          : "",
                           why);
    return 0;
}

/* float32 values of steps [step0, step0+nsteps) of (row, layer); count checked. */
static int read_f32_unchecked(dhf_feature_cache *c, int64_t row, int step0, int nsteps,
                              int layer, float *dst, size_t count)
{
    size_t want = (size_t)nsteps * dhf_cache_map_numel(c, layer);
    if (count != want)
        return dhf_err_set("%s: layer %d: buffer holds %zu values, expected %zu (%d step(s) "
                           "of [%lld, %lld, %lld])", c->path, layer + 1, count, want, nsteps,
                           (long long)c->layout.layer_chw[layer][0],
                           (long long)c->layout.layer_chw[layer][1],
                           (long long)c->layout.layer_chw[layer][2]);
    if (c->layout.dtype == DHF_CACHE_F32)
        return read_raw(c, row, step0, nsteps, layer, dst);
    if (dhf_cache__scratch(c, want * sizeof(uint16_t)) != 0 ||
        read_raw(c, row, step0, nsteps, layer, c->scratch) != 0)
        return -1;
    dhf_half_to_float_n(c->scratch, dst, want);
    return 0;
}

/* The same, refusing a map that holds NaN or Inf (a float16 overflow at extraction, or
 * a file edited by hand): a reader gets an error naming the map, never the values. */
static int read_f32(dhf_feature_cache *c, int64_t row, int step0, int nsteps, int layer,
                    float *dst, size_t count)
{
    if (read_f32_unchecked(c, row, step0, nsteps, layer, dst, count) != 0)
        return -1;
    size_t per = dhf_cache_map_numel(c, layer);
    for (int s = 0; s < nsteps; s++) {
        const float *m = dst + (size_t)s * per;
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < per; i++)
            if (!isfinite(m[i]) && bad++ == 0)
                first = i;
        if (bad)
            return dhf_err_set("%s: image '%s' step %d (save_timestep %lld) layer %d: %zu "
                               "values are not finite (the first, at index %zu, is %g); "
                               "re-extract this image", c->path, c->images[row].key,
                               step0 + s, (long long)c->layout.save_label[step0 + s],
                               layer + 1, bad, first, (double)m[first]);
    }
    return 0;
}

int dhf_cache_read_map(dhf_feature_cache *c, int64_t row, int step, int layer, float *dst,
                       size_t count)
{
    if (check_read_args(c, row, step, layer) != 0)
        return -1;
    return read_f32(c, row, step, 1, layer, dst, count);
}

int dhf_cache_read_layer(dhf_feature_cache *c, int64_t row, int layer, float *dst, size_t count)
{
    if (check_read_args(c, row, 0, layer) != 0)
        return -1;
    return read_f32(c, row, 0, c->layout.num_steps, layer, dst, count);
}

int dhf_cache__read_layer_raw(dhf_feature_cache *c, int64_t row, int layer, void *buf)
{
    if (check_read_args(c, row, 0, layer) != 0)
        return -1;
    return read_raw(c, row, 0, c->layout.num_steps, layer, buf);
}

int dhf_cache_check_row(dhf_feature_cache *c, int64_t row, int64_t *nonfinite)
{
    *nonfinite = 0;
    size_t biggest = 0;
    for (int l = 0; l < c->layout.num_layers; l++)
        if (dhf_cache_map_numel(c, l) > biggest)
            biggest = dhf_cache_map_numel(c, l);
    size_t cap = biggest * (size_t)c->layout.num_steps;
    float *buf = malloc(cap * sizeof *buf);
    if (!buf)
        return dhf_err_set("%s: out of memory (%zu values)", c->path, cap);
    int rc = 0;
    for (int l = 0; l < c->layout.num_layers && rc == 0; l++) {
        size_t n = dhf_cache_map_numel(c, l) * (size_t)c->layout.num_steps;
        rc = check_read_args(c, row, 0, l) != 0
                 ? -1
                 : read_f32_unchecked(c, row, 0, c->layout.num_steps, l, buf, n);
        for (size_t i = 0; rc == 0 && i < n; i++)
            if (!isfinite(buf[i]))
                (*nonfinite)++;
    }
    free(buf);
    return rc;
}
