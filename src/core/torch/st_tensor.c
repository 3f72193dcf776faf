/* st_tensor.c — loads safetensors tensors into NEW CPU shim tensors (floating
 * dtypes converted to F32, integer dtypes kept) and adds shim tensors to a writer. */
#include "core/torch/st_tensor.h"
#include "core/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)DHF_ST_F32 == (int)DHF_F32 && (int)DHF_ST_F16 == (int)DHF_F16 &&
               (int)DHF_ST_BF16 == (int)DHF_BF16 && (int)DHF_ST_F64 == (int)DHF_F64 &&
               (int)DHF_ST_I64 == (int)DHF_I64 && (int)DHF_ST_I32 == (int)DHF_I32 &&
               (int)DHF_ST_U8 == (int)DHF_U8 && (int)DHF_ST_BOOL == (int)DHF_BOOL,
               "safetensors and shim dtype enums must share their order");

/* The dtype a stored tensor gets in memory: floats widen/narrow to F32. */
static dhf_dtype loaded_dtype(dhf_st_dtype dt)
{
    switch (dt) {
    case DHF_ST_F16:
    case DHF_ST_BF16:
    case DHF_ST_F64:
    case DHF_ST_F32:
        return DHF_F32;
    case DHF_ST_I64:
        return DHF_I64;
    case DHF_ST_I32:
        return DHF_I32;
    case DHF_ST_U8:
        return DHF_U8;
    case DHF_ST_BOOL:
        return DHF_BOOL;
    }
    return DHF_F32;
}

int dhf_st_load(const dhf_st_file *f, const char *name, dhf_tensor *out)
{
    const dhf_st_info *info;
    if (!out)
        return dhf_err_set("dhf_st_load: NULL output");
    if (dhf_st_get(f, name, &info) != 0)
        return -1;
    const char *path = dhf_st_path(f);
    if (info->dtype == DHF_ST_BOOL) {
        const unsigned char *b = info->data;
        for (uint64_t i = 0; i < info->nbytes; i++)
            if (b[i] > 1)
                return dhf_err_set("%s: tensor '%s': BOOL element %" PRIu64 " is not 0 or 1 "
                                   "(got %u)", path, name, i, b[i]);
    }
    /* Allocate, then fill: the mapped data may be unaligned for its dtype, so it
     * is never handed to torch directly. */
    dhf_dtype dt = loaded_dtype(info->dtype);
    dhf_device cpu = {DHF_CPU, 0};
    dhf_tensor t = NULL;
    if (dhf_empty(dt, cpu, info->shape, info->ndim, &t) != DHF_OK)
        return dhf_err_set("%s: tensor '%s': cannot allocate: %s", path, name,
                           dhf_last_error());
    if (info->numel > 0) {
        void *dst = dhf_data_ptr(t);
        if (!dst) {
            dhf_free(t);
            return dhf_err_set("%s: tensor '%s': new tensor has no CPU data pointer", path,
                               name);
        }
        if (dt == DHF_F32 && info->dtype != DHF_ST_F32)
            dhf_st_convert_f32(info->dtype, info->data, dst, (size_t)info->numel);
        else
            memcpy(dst, info->data, (size_t)info->nbytes);
    }
    *out = t;
    return 0;
}

int dhf_st_load_expect(const dhf_st_file *f, const char *name, const int64_t *shape,
                       int ndim, dhf_tensor *out)
{
    const dhf_st_info *info;
    if (ndim < 0 || ndim > DHF_MAX_DIMS || (ndim > 0 && !shape))
        return dhf_err_set("%s: tensor '%s': bad expected shape (rank %d)", dhf_st_path(f),
                           name ? name : "(null)", ndim);
    if (dhf_st_get(f, name, &info) != 0)
        return -1;
    bool same = info->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = info->shape[i] == shape[i];
    if (!same) {
        char want[256], got[256];
        dhf_format_shape(want, sizeof want, shape, ndim);
        dhf_format_shape(got, sizeof got, info->shape, info->ndim);
        return dhf_err_set("%s: tensor '%s': shape mismatch (expected %s, got %s)",
                           dhf_st_path(f), name, want, got);
    }
    return dhf_st_load(f, name, out);
}

int dhf_st_writer_add_tensor(dhf_st_writer *w, const char *name, dhf_tensor t)
{
    if (!w || !name || !t)
        return dhf_err_set("dhf_st_writer_add_tensor: NULL writer, name or tensor");
    int64_t shape[DHF_MAX_DIMS];
    int ndim = 0;
    if (dhf_shape(t, shape, &ndim) != DHF_OK)
        return dhf_err_set("safetensors writer: tensor '%s': %s", name, dhf_last_error());
    dhf_dtype dt = dhf_get_dtype(t);
    int64_t numel = dhf_numel(t);
    if (numel < 0)
        return dhf_err_set("safetensors writer: tensor '%s': %s", name, dhf_last_error());
    size_t nbytes = (size_t)numel * dhf_dtype_size(dt);
    void *buf = NULL;
    if (nbytes) {
        buf = malloc(nbytes);
        if (!buf)
            return dhf_err_set("safetensors writer: tensor '%s': out of memory for %zu bytes",
                               name, nbytes);
        if (dhf_to_buffer(t, dt, buf, nbytes) != DHF_OK) {
            free(buf);
            return dhf_err_set("safetensors writer: tensor '%s': %s", name,
                               dhf_last_error());
        }
    }
    /* dhf_dtype and dhf_st_dtype share their order (see safetensors.h). */
    return dhf_st_writer_add_owned(w, name, (dhf_st_dtype)dt, shape, ndim, buf);
}
