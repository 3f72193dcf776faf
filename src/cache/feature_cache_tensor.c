/* feature_cache_tensor.c — cache maps read straight into new shim tensors' storage. */
#include "cache/feature_cache_tensor.h"
#include "core/error.h"

static int read_into_new(dhf_feature_cache *c, int64_t row, int step, int layer,
                         dhf_tensor *out)
{
    int64_t chw[3];
    if (dhf_cache_layer_shape(c, layer, chw) != 0)
        return -1;
    int64_t shape[4] = {step < 0 ? dhf_cache_num_steps(c) : 1, chw[0], chw[1], chw[2]};
    dhf_tensor t = NULL;
    if (dhf_empty(DHF_F32, (dhf_device){DHF_CPU, 0}, shape, 4, &t) != DHF_OK)
        return dhf_err_set("%s: cannot allocate a [%lld, %lld, %lld, %lld] tensor: %s",
                           dhf_cache_path(c), (long long)shape[0], (long long)shape[1],
                           (long long)shape[2], (long long)shape[3], dhf_last_error());
    size_t count = (size_t)shape[0] * (size_t)chw[0] * (size_t)chw[1] * (size_t)chw[2];
    float *data = dhf_data_ptr(t);
    int rc = step < 0 ? dhf_cache_read_layer(c, row, layer, data, count)
                      : dhf_cache_read_map(c, row, step, layer, data, count);
    if (rc != 0) {
        dhf_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int dhf_cache_read_map_tensor(dhf_feature_cache *c, int64_t row, int step, int layer,
                              dhf_tensor *out)
{
    if (step < 0)
        return dhf_err_set("%s: step %d out of range", dhf_cache_path(c), step);
    return read_into_new(c, row, step, layer, out);
}

int dhf_cache_read_layer_tensor(dhf_feature_cache *c, int64_t row, int layer, dhf_tensor *out)
{
    return read_into_new(c, row, -1, layer, out);
}
