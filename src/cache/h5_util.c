/* h5_util.c — HDF5 error capture, types and attribute helpers (see h5_util.h). */
#include "cache/h5_util.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

void dhf_h5_quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static _Thread_local char h5_err_buf[512];

static herr_t keep_innermost(unsigned n, const H5E_error2_t *e, void *client)
{
    (void)client;
    /* Walking upward, entry 0 is the innermost, i.e. the most specific. */
    if (n == 0 && e->desc)
        snprintf(h5_err_buf, sizeof h5_err_buf, "%s", e->desc);
    return 0;
}

const char *dhf_h5_error(void)
{
    snprintf(h5_err_buf, sizeof h5_err_buf, "unknown HDF5 error");
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, NULL);
    H5Eclear2(H5E_DEFAULT);
    return h5_err_buf;
}

hid_t dhf_h5_half_type(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0)
        return -1;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 ||
        H5Tset_ebias(t, 15) < 0 || H5Tset_precision(t, 16) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

int dhf_h5_is_half_type(hid_t t)
{
    size_t spos, epos, esize, mpos, msize;
    if (H5Tget_class(t) != H5T_FLOAT || H5Tget_size(t) != 2)
        return 0;
    if (H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) < 0)
        return 0;
    return spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 &&
           H5Tget_ebias(t) == 15 && H5Tget_order(t) == H5T_ORDER_LE;
}

hid_t dhf_h5_fixed_str_type(size_t n)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return -1;
    if (H5Tset_size(t, n) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0 ||
        H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

/* Creates (replacing any existing) attribute `name` and writes `buf` as mem_type. */
static int write_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type,
                      hid_t space, const void *buf)
{
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0)
        return dhf_err_set("attribute '%s': cannot replace: %s", name, dhf_h5_error());
    hid_t a = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0)
        return dhf_err_set("attribute '%s': cannot create: %s", name, dhf_h5_error());
    herr_t st = H5Awrite(a, mem_type, buf);
    const char *why = st < 0 ? dhf_h5_error() : NULL;   /* before H5Aclose clears it */
    H5Aclose(a);
    if (st < 0)
        return dhf_err_set("attribute '%s': cannot write: %s", name, why);
    return 0;
}

int dhf_h5_attr_write_str(hid_t obj, const char *name, const char *value)
{
    size_t n = strlen(value);
    hid_t t = dhf_h5_fixed_str_type(n > 0 ? n : 1);
    hid_t s = H5Screate(H5S_SCALAR);
    int rc = (t < 0 || s < 0) ? dhf_err_set("attribute '%s': %s", name, dhf_h5_error())
                              : write_attr(obj, name, t, t, s, n > 0 ? value : "");
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    return rc;
}

/* Opens attribute `name`, failing with a clear message if it is absent. */
static hid_t open_attr(hid_t obj, const char *name)
{
    htri_t ex = H5Aexists(obj, name);
    if (ex <= 0) {
        dhf_err_set("attribute '%s' is missing%s", name, ex < 0 ? " (unreadable)" : "");
        if (ex < 0)
            H5Eclear2(H5E_DEFAULT);
        return -1;
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        dhf_err_set("attribute '%s': cannot open: %s", name, dhf_h5_error());
    return a;
}

/* Only fixed-length strings are read: a variable-length string lives in the file's
 * global heap, and HDF5 reads a damaged global heap with overlapping copies (found by
 * fuzzing), so dhf files never hold one and a reader never follows one. */
static int check_fixed_str(hid_t ft, const char *name)
{
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING)
        return dhf_err_set("attribute '%s': expected a string", name);
    if (H5Tis_variable_str(ft) != 0)
        return dhf_err_set("attribute '%s': expected a fixed-length string, found a "
                           "variable-length one", name);
    size_t n = H5Tget_size(ft);
    if (n < 1 || n > DHF_H5_MAX_STR)
        return dhf_err_set("attribute '%s': expected a string of 1..%d bytes, found %zu",
                           name, DHF_H5_MAX_STR, n);
    return 0;
}

int dhf_h5_attr_read_str(hid_t obj, const char *name, char **value)
{
    hid_t a = open_attr(obj, name);
    if (a < 0)
        return -1;
    int rc = -1;
    hid_t ft = H5Aget_type(a), space = H5Aget_space(a), mt = -1;
    if (check_fixed_str(ft, name) != 0)
        goto done;
    if (space < 0 || H5Sget_simple_extent_npoints(space) != 1) {
        dhf_err_set("attribute '%s': expected a scalar string", name);
        goto done;
    }
    size_t n = H5Tget_size(ft);
    mt = dhf_h5_fixed_str_type(n);
    char *buf = calloc(n + 1, 1);
    if (!buf || mt < 0 || H5Aread(a, mt, buf) < 0) {
        free(buf);
        dhf_err_set("attribute '%s': cannot read: %s", name, dhf_h5_error());
        goto done;
    }
    *value = buf;
    rc = 0;
done:
    if (mt >= 0)
        H5Tclose(mt);
    if (ft >= 0)
        H5Tclose(ft);
    if (space >= 0)
        H5Sclose(space);
    H5Aclose(a);
    return rc;
}

static int write_numeric(hid_t obj, const char *name, hid_t file_type, hid_t mem_type,
                         const void *v, int rows, int cols)
{
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    hid_t s = H5Screate_simple(cols > 0 ? 2 : 1, dims, NULL);
    if (s < 0)
        return dhf_err_set("attribute '%s': %s", name, dhf_h5_error());
    int rc = write_attr(obj, name, file_type, mem_type, s, v);
    H5Sclose(s);
    return rc;
}

int dhf_h5_attr_write_i64(hid_t obj, const char *name, const int64_t *v, int rows, int cols)
{
    return write_numeric(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, v, rows, cols);
}

int dhf_h5_attr_write_f64(hid_t obj, const char *name, const double *v, int rows)
{
    return write_numeric(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v, rows, 0);
}

static int read_numeric(hid_t obj, const char *name, hid_t mem_type, H5T_class_t want,
                        void *v, int cap, int *n)
{
    hid_t a = open_attr(obj, name);
    if (a < 0)
        return -1;
    int rc = -1;
    hid_t ft = H5Aget_type(a), space = H5Aget_space(a);
    hssize_t count = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    H5T_class_t cls = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    if (cls != want && !(want == H5T_FLOAT && cls == H5T_INTEGER))
        dhf_err_set("attribute '%s': expected %s values", name,
                    want == H5T_FLOAT ? "numeric" : "integer");
    else if (count < 0 || count > cap)
        dhf_err_set("attribute '%s': expected at most %d values, got %lld", name, cap,
                    (long long)count);
    else if (count > 0 && H5Aread(a, mem_type, v) < 0)
        dhf_err_set("attribute '%s': cannot read: %s", name, dhf_h5_error());
    else {
        *n = (int)count;
        rc = 0;
    }
    if (ft >= 0)
        H5Tclose(ft);
    if (space >= 0)
        H5Sclose(space);
    H5Aclose(a);
    return rc;
}

int dhf_h5_attr_read_i64(hid_t obj, const char *name, int64_t *v, int cap, int *n)
{
    return read_numeric(obj, name, H5T_NATIVE_INT64, H5T_INTEGER, v, cap, n);
}

int dhf_h5_attr_read_f64(hid_t obj, const char *name, double *v, int cap, int *n)
{
    return read_numeric(obj, name, H5T_NATIVE_DOUBLE, H5T_FLOAT, v, cap, n);
}

int dhf_h5_attr_write_str_array(hid_t obj, const char *name, const char *names, size_t width,
                                int count)
{
    /* One fixed width for all: the longest name (at least 1 byte), NUL-padded. */
    size_t w = 1;
    for (int i = 0; i < count; i++) {
        size_t n = strnlen(names + (size_t)i * width, width);
        if (n > w)
            w = n;
    }
    char *packed = calloc(count > 0 ? (size_t)count : 1, w);
    if (!packed)
        return dhf_err_set("attribute '%s': out of memory", name);
    for (int i = 0; i < count; i++)
        memcpy(packed + (size_t)i * w, names + (size_t)i * width,
               strnlen(names + (size_t)i * width, width));
    hid_t t = dhf_h5_fixed_str_type(w);
    hsize_t dims[1] = {(hsize_t)count};
    hid_t s = H5Screate_simple(1, dims, NULL);
    int rc = (t < 0 || s < 0) ? dhf_err_set("attribute '%s': %s", name, dhf_h5_error())
                              : write_attr(obj, name, t, t, s, packed);
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    free(packed);
    return rc;
}

int dhf_h5_attr_read_str_array(hid_t obj, const char *name, char *names, size_t width,
                               int cap, int *count)
{
    hid_t a = open_attr(obj, name);
    if (a < 0)
        return -1;
    int rc = -1;
    hid_t ft = H5Aget_type(a), space = H5Aget_space(a), mt = -1;
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    char *packed = NULL;
    if (check_fixed_str(ft, name) != 0)
        goto done;
    if (n < 0 || n > cap) {
        dhf_err_set("attribute '%s': expected at most %d strings, got %lld", name, cap,
                    (long long)n);
        goto done;
    }
    size_t w = H5Tget_size(ft);
    if (w >= width) {
        dhf_err_set("attribute '%s': expected strings of at most %zu bytes, found %zu", name,
                    width - 1, w);
        goto done;
    }
    mt = dhf_h5_fixed_str_type(w);
    packed = calloc(n > 0 ? (size_t)n : 1, w);
    if (!packed || mt < 0 || (n > 0 && H5Aread(a, mt, packed) < 0)) {
        dhf_err_set("attribute '%s': cannot read: %s", name, dhf_h5_error());
        goto done;
    }
    for (hssize_t i = 0; i < n; i++) {
        char *dst = names + (size_t)i * width;
        memcpy(dst, packed + (size_t)i * w, w);
        dst[w] = '\0';
    }
    *count = (int)n;
    rc = 0;
done:
    free(packed);
    if (mt >= 0)
        H5Tclose(mt);
    if (ft >= 0)
        H5Tclose(ft);
    if (space >= 0)
        H5Sclose(space);
    H5Aclose(a);
    return rc;
}
