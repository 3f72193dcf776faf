/* cache_export.c — cached image -> safetensors (cache_export.h). */
#include "cache/cache_export.h"
#include "core/error.h"
#include "core/safetensors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

static char *json_numbers(const double *v, const int64_t *iv, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(iv ? (double)iv[i] : v[i]));
    char *s = a ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    return s;
}

int dhf_cache_export_image(dhf_feature_cache *c, const char *key, const char *out_path,
                           int *n_tensors)
{
    const dhf_cache_layout *l = dhf_cache_get_layout(c);
    int64_t row;
    if (dhf_cache_lookup(c, key, &row) != 0)
        return -1;
    dhf_st_writer *w = NULL;
    float *buf = NULL;
    char *labels = NULL, *timesteps = NULL;
    int rc = -1;
    if (dhf_st_writer_new(&w) != 0)
        return -1;
    size_t biggest = 0;
    for (int i = 0; i < l->num_layers; i++)
        if (dhf_cache_map_numel(c, i) > biggest)
            biggest = dhf_cache_map_numel(c, i);
    buf = malloc(biggest * sizeof *buf);
    if (!buf) {
        dhf_err_set("%s: out of memory", out_path);
        goto done;
    }
    for (int k = 0; k < l->num_steps; k++)
        for (int i = 0; i < l->num_layers; i++) {
            size_t n = dhf_cache_map_numel(c, i);
            char name[64];
            snprintf(name, sizeof name, "t%d/layer%02d", k, i + 1);
            int64_t shape[4] = {1, l->layer_chw[i][0], l->layer_chw[i][1], l->layer_chw[i][2]};
            if (dhf_cache_read_map(c, row, k, i, buf, n) != 0 ||
                dhf_st_writer_add(w, name, DHF_ST_F32, shape, 4, buf) != 0)
                goto done;
        }
    const dhf_cache_image *im = dhf_cache_image_at(c, row);
    char size[64];
    snprintf(size, sizeof size, "[%d, %d]", im->width, im->height);
    labels = json_numbers(NULL, l->save_label, l->num_steps);
    timesteps = json_numbers(l->unet_timestep, NULL, l->num_steps);
    if (!labels || !timesteps) {
        dhf_err_set("%s: out of memory", out_path);
        goto done;
    }
    if (dhf_st_writer_set_metadata(w, "format", "dhf-features-v1") != 0 ||
        dhf_st_writer_set_metadata(w, "key", im->key) != 0 ||
        dhf_st_writer_set_metadata(w, "source_path", im->path) != 0 ||
        dhf_st_writer_set_metadata(w, "original_size_wh", size) != 0 ||
        dhf_st_writer_set_metadata(w, "save_timestep", labels) != 0 ||
        dhf_st_writer_set_metadata(w, "unet_timesteps", timesteps) != 0 ||
        dhf_st_writer_set_metadata(w, "model_name", l->model_name) != 0 ||
        dhf_st_writer_set_metadata(w, "model_hash", l->model_hash) != 0 ||
        dhf_st_writer_set_metadata(w, "cache_dtype", dhf_cache_dtype_name(l->dtype)) != 0 ||
        dhf_st_writer_set_metadata(w, "extraction", l->identity_json) != 0 ||
        dhf_st_writer_set_metadata(w, "config", l->config_json) != 0 ||
        dhf_st_writer_save(w, out_path) != 0)
        goto done;
    if (n_tensors)
        *n_tensors = l->num_steps * l->num_layers;
    rc = 0;
done:
    free(labels);
    free(timesteps);
    free(buf);
    dhf_st_writer_free(w);
    return rc;
}
