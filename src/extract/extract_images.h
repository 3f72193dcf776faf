/* extract_images.h — which images `dhf extract` caches: the unique images of the
 * configured dataset's selected pairs, or the lines of an image-list file
 * (config key image_list). Keys follow the datasets' convention
 * ("category/name.jpg", what eval/dataset.h calls src_key/trg_key); for a list,
 * the key is "<parent folder>/<file name>". The set is sorted by key, so the order
 * (and hence --shard K/N) does not depend on pair or file order. */
#ifndef DHF_EXTRACT_EXTRACT_IMAGES_H
#define DHF_EXTRACT_EXTRACT_IMAGES_H

#include <stdint.h>

#include "core/config.h"
#include "cache/feature_cache.h"

typedef struct {
    dhf_cache_image *v;   /* key, path, width, height (read from the file header) */
    int64_t n;
    char source[4200];    /* "image list <path>" or "spair test (per-category-20, ...)" */
} dhf_image_set;

void dhf_image_set_free(dhf_image_set *s);
/* One path per line; blank lines and lines starting with '#' are skipped; relative
 * paths are relative to the list file's folder. A missing or undecodable image is an
 * error naming the list line. Two lines with the same key are an error unless they
 * name the same file. */
int dhf_image_set_from_list(const char *list_path, dhf_image_set *out);
/* The images of cfg's dataset selection: dataset, data_root, split, and for that
 * split its pair list (train_path / val_path / test_path) and subset size
 * (pairs_per_category; val_pairs_per_category for val) with subset_seed. */
int dhf_image_set_from_dataset(const dhf_config *cfg, dhf_image_set *out);
/* image_list when set, else the dataset. */
int dhf_image_set_from_config(const dhf_config *cfg, dhf_image_set *out);

#endif
