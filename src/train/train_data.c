/* train_data.c — training / validation pairs over the feature cache, keypoint
 * mapping and feature reads (see train_data.h). */
#include "train/train_data.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "train/loss.h"
#include "core/torch/shim_try.h"

/* The image of one pair side: committed in the cache, sizes filled or checked. */
static int bind_image(dhf_feature_cache *cache, const dhf_pair *p, const char *key, int size[2],
                      const char *split, int64_t *row)
{
    *row = dhf_cache_find(cache, key);
    if (*row < 0 || !dhf_cache_is_committed(cache, *row))
        return dhf_err_set("pair %s: image '%s' is %s the feature cache %s; run `dhf extract` "
                           "with the same config and split=%s first",
                           p->id, key, *row < 0 ? "not in" : "unfinished in",
                           dhf_cache_path(cache), split);
    const dhf_cache_image *im = dhf_cache_image_at(cache, *row);
    if (size[0] <= 0 || size[1] <= 0) {
        size[0] = im->width;
        size[1] = im->height;
    } else if (size[0] != im->width || size[1] != im->height) {
        return dhf_err_set("pair %s: image '%s' is %dx%d in the annotation but was cached at "
                           "%dx%d in %s (another file with the same key?)",
                           p->id, key, size[0], size[1], im->width, im->height,
                           dhf_cache_path(cache));
    }
    return 0;
}

static bool has_common_keypoint(const dhf_pair *p)
{
    for (int k = 0; k < p->n_kps; k++)
        if (!p->visible || p->visible[k])
            return true;
    return false;
}

int dhf_train_pairs_load(const dhf_config *cfg, dhf_train_set_kind kind,
                         dhf_feature_cache *cache, dhf_train_pairs *out)
{
    memset(out, 0, sizeof *out);
    if (strcmp(cfg->dataset, "spair") != 0)
        return dhf_err_set("dataset '%s': dhf train trains on SPair-71k-format data (dataset "
                           "spair), as the paper; evaluate other datasets with dhf eval",
                           cfg->dataset);
    bool train = kind == DHF_TRAIN_SET;
    const char *split = train ? "trn" : "val";
    const char *list = train ? cfg->train_path : cfg->val_path;
    dhf_dataset_spec spec = {
        .dataset = cfg->dataset,
        .root = cfg->data_root,
        .split = split,
        .pair_list = list[0] ? list : NULL,
        .pairs_per_category = train ? cfg->pairs_per_category : cfg->val_pairs_per_category,
        .seed = (uint64_t)cfg->subset_seed,
    };
    if (dhf_dataset_open(&spec, &out->ds) != 0)
        return dhf_err_wrap("%s pairs", train ? "training" : "validation");
    dhf_dataset *ds = &out->ds;

    /* Training: keep only pairs that can give a loss (in order, so the subset and
     * the sampler's indices are reproducible). */
    if (train) {
        size_t w = 0;
        for (size_t i = 0; i < ds->n_pairs; i++) {
            if (has_common_keypoint(&ds->pairs[i])) {
                if (w != i)
                    ds->pairs[w] = ds->pairs[i];
                w++;
            } else {
                dhf_pair_free(&ds->pairs[i]);
                out->dropped++;
            }
        }
        ds->n_pairs = w;
        if (out->dropped)
            dhf_subset_update_hash(ds);
    }
    if (ds->n_pairs == 0) {
        dhf_train_pairs_free(out);
        return dhf_err_set("%s pairs: none selected from %s split %s%s%s", split, cfg->data_root,
                           split, list[0] ? " list " : "", list);
    }
    size_t n = ds->n_pairs;
    out->src_row = malloc(n * sizeof *out->src_row);
    out->trg_row = malloc(n * sizeof *out->trg_row);
    if (!out->src_row || !out->trg_row) {
        dhf_train_pairs_free(out);
        return dhf_err_set("out of memory for %zu pairs", n);
    }
    for (size_t i = 0; i < n; i++) {
        dhf_pair *p = &ds->pairs[i];
        if (bind_image(cache, p, p->src_key, p->src_size, split, &out->src_row[i]) != 0 ||
            bind_image(cache, p, p->trg_key, p->trg_size, split, &out->trg_row[i]) != 0) {
            dhf_train_pairs_free(out);
            return dhf_err_wrap("%s pairs", train ? "training" : "validation");
        }
    }
    return 0;
}

void dhf_train_pairs_free(dhf_train_pairs *p)
{
    if (!p)
        return;
    dhf_dataset_free(&p->ds);
    free(p->src_row);
    free(p->trg_row);
    memset(p, 0, sizeof *p);
}

double dhf_train_kp_to_grid(double v, double size, int R)
{
    /* rescale_points: scale = new / old first, then point * scale */
    double scale = (double)R / size;
    return v * scale;
}

int dhf_train_pair_indices(const dhf_pair *p, int R, int64_t *src_idx, int64_t *trg_idx)
{
    int k = 0;
    for (int i = 0; i < p->n_kps; i++) {
        if (p->visible && !p->visible[i])
            continue;
        const double *s = p->src_kps + 2 * i, *t = p->trg_kps + 2 * i;
        src_idx[k] = dhf_grid_index(dhf_train_kp_to_grid(s[0], p->src_size[0], R),
                                    dhf_train_kp_to_grid(s[1], p->src_size[1], R), R);
        trg_idx[k] = dhf_grid_index(dhf_train_kp_to_grid(t[0], p->trg_size[0], R),
                                    dhf_train_kp_to_grid(t[1], p->trg_size[1], R), R);
        k++;
    }
    return k;
}

int dhf_train_read_features(dhf_feature_cache *c, const int64_t *rows, int n, dhf_device dev,
                            dhf_tensor *feats)
{
    const int L = dhf_cache_num_layers(c);
    const int64_t S = dhf_cache_num_steps(c);
    int done = 0;
    for (int l = 0; l < L; l++)
        feats[l] = NULL;
    for (int l = 0; l < L; l++, done++) {
        int64_t chw[3];
        if (dhf_cache_layer_shape(c, l, chw) != 0)
            goto fail;
        int64_t shape[5] = { n, S, chw[0], chw[1], chw[2] };
        size_t per_image = (size_t)(S * chw[0] * chw[1] * chw[2]);
        dhf_tensor t = NULL;
        DHF_TRY(dhf_empty(DHF_F32, dhf_cpu_device(), shape, 5, &t), "cached features");
        feats[l] = t;
        float *data = dhf_data_ptr(t);
        for (int i = 0; i < n; i++)
            if (dhf_cache_read_layer(c, rows[i], l, data + (size_t)i * per_image, per_image) != 0)
                goto fail;
        if (dev.type != DHF_CPU) {
            dhf_tensor moved = NULL;
            DHF_TRY(dhf_to(t, DHF_F32, dev, &moved), "features to the device");
            dhf_free(t);
            feats[l] = moved;
        }
    }
    return 0;
fail:
    for (int l = 0; l <= done && l < L; l++) {
        dhf_free(feats[l]);
        feats[l] = NULL;
    }
    return dhf_err_wrap("reading features of layer %d from %s", done, dhf_cache_path(c));
}
