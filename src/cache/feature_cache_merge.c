/* feature_cache_merge.c — joins shard caches (from `dhf extract --shard K/N`) into one
 * file. Maps are copied in the file dtype (bit-exact, no float conversion); the
 * output is built under a temporary name and renamed into place when complete. */
#include "cache/feature_cache_internal.h"
#include "cache/h5_util.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int input;
    int64_t row;
} merge_source;

static int copy_image(dhf_feature_cache *dst, int64_t dst_row, dhf_feature_cache *src,
                      int64_t src_row, void *buf)
{
    for (int l = 0; l < src->layout.num_layers; l++)
        if (dhf_cache__read_layer_raw(src, src_row, l, buf) != 0 ||
            dhf_cache__write_layer_raw(dst, dst_row, l, buf) != 0)
            return -1;
    return dhf_cache_commit(dst, dst_row);
}

/* True when an input before `input` holds `key` committed (the first one wins). */
static bool taken_earlier(dhf_feature_cache *const *in, int input, const char *key)
{
    for (int j = 0; j < input; j++) {
        int64_t r = dhf_cache_find(in[j], key);
        if (r >= 0 && in[j]->status[r] == DHF_CACHE_COMMITTED)
            return true;
    }
    return false;
}

int dhf_cache_merge(const char *out, const char *const *inputs, int n_inputs,
                    dhf_cache_progress_fn progress, void *user, int64_t *n_merged)
{
    if (n_inputs < 1)
        return dhf_err_set("cache merge: no input files");
    if (access(out, F_OK) == 0)
        return dhf_err_set("%s: exists; cache merge writes a new file", out);
    for (int i = 0; i < n_inputs; i++)
        if (strcmp(inputs[i], out) == 0)
            return dhf_err_set("%s: the output is also an input", out);

    dhf_feature_cache **in = calloc((size_t)n_inputs, sizeof *in);
    merge_source *src = NULL;
    dhf_cache_image *images = NULL;
    dhf_feature_cache *dst = NULL;
    void *buf = NULL;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    int rc = -1;
    if (!in) {
        dhf_err_set("cache merge: out of memory");
        goto done;
    }
    int64_t total = 0;
    for (int i = 0; i < n_inputs; i++) {
        if (dhf_cache_open_read(inputs[i], 1, &in[i]) != 0)
            goto done;
        if (i > 0 && dhf_cache_layout_check_same(&in[0]->layout, inputs[0], &in[i]->layout,
                                                 inputs[i]) != 0)
            goto done;
        total += in[i]->n_committed;
    }
    src = malloc((size_t)(total ? total : 1) * sizeof *src);
    images = malloc((size_t)(total ? total : 1) * sizeof *images);
    if (!src || !images) {
        dhf_err_set("cache merge: out of memory for %lld images", (long long)total);
        goto done;
    }

    if (dhf_cache_open_write(tmp, &in[0]->layout, &dst) != 0)
        goto done;
    dst->skip_fsync = true;
    int64_t n = 0;
    for (int i = 0; i < n_inputs; i++)
        for (int64_t r = 0; r < in[i]->n_images; r++) {
            if (in[i]->status[r] != DHF_CACHE_COMMITTED ||
                taken_earlier(in, i, in[i]->images[r].key))
                continue;
            images[n] = in[i]->images[r];
            src[n] = (merge_source){i, r};
            n++;
        }
    if (dhf_cache_add_images(dst, images, n, NULL) != 0)
        goto done;

    size_t biggest = 0;
    for (int l = 0; l < dst->layout.num_layers; l++)
        if (dhf_cache_map_numel(dst, l) > biggest)
            biggest = dhf_cache_map_numel(dst, l);
    buf = malloc(biggest * (size_t)dst->layout.num_steps *
                 dhf_cache_dtype_size(dst->layout.dtype));
    if (!buf) {
        dhf_err_set("cache merge: out of memory for one image's layer");
        goto done;
    }
    for (int64_t k = 0; k < n; k++) {
        if (copy_image(dst, k, in[src[k].input], src[k].row, buf) != 0)
            goto done;
        if (progress)
            progress(user, k + 1, n);
    }
    dst->skip_fsync = false;   /* one durable flush before the rename */
    int close_rc = dhf_cache_close(dst);
    dst = NULL;
    if (close_rc != 0)
        goto done;
    if (rename(tmp, out) != 0) {
        dhf_err_set("%s: cannot rename %s into place", out, tmp);
        goto done;
    }
    if (n_merged)
        *n_merged = n;
    rc = 0;
done:
    if (dst) {
        dst->writable = false;   /* keep the error message; the temp file goes anyway */
        dhf_cache_close(dst);
    }
    if (rc != 0)
        unlink(tmp);
    if (in)
        for (int i = 0; i < n_inputs; i++)
            dhf_cache_close(in[i]);
    free(in);
    free(src);
    free(images);
    free(buf);
    return rc;
}
