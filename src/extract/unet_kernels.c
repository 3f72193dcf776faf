/* unet_kernels.c — the extractor's matrix products on oneDNN or libtorch
 * (unet_kernels.h): which tensors qualify for oneDNN, their shapes and strides as a
 * dhf_dmm_shape, and the libtorch op for everything else. */
#include "extract/unet_kernels.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/dnnl_matmul.h"

/* -1: not chosen yet; the first dhf_kernels_get takes DHF_EXTRACT_KERNELS from the
 * environment (how the parity tests run the libtorch path), else onednn */
static int g_kernels = -1;

int dhf_kernels_parse(const char *s, dhf_extract_kernels *out)
{
    if (strcmp(s, "onednn") == 0)
        *out = DHF_KERNELS_ONEDNN;
    else if (strcmp(s, "libtorch") == 0)
        *out = DHF_KERNELS_LIBTORCH;
    else
        return dhf_err_set("extract_kernels '%s': expected onednn or libtorch", s);
    return 0;
}

void dhf_kernels_set(dhf_extract_kernels k) { g_kernels = (int)k; }

dhf_extract_kernels dhf_kernels_get(void)
{
    if (g_kernels < 0) {
        const char *e = getenv("DHF_EXTRACT_KERNELS");
        dhf_extract_kernels k = DHF_KERNELS_ONEDNN;
        if (e && *e && dhf_kernels_parse(e, &k) != 0)
            dhf_err_clear();   /* an unknown value: the default */
        g_kernels = (int)k;
    }
    return (dhf_extract_kernels)g_kernels;
}

const char *dhf_kernels_name(dhf_extract_kernels k)
{
    return k == DHF_KERNELS_LIBTORCH ? "libtorch" : "onednn";
}

/* Is the oneDNN path to be tried at all? */
static bool use_dnnl(void)
{
    return dhf_kernels_get() == DHF_KERNELS_ONEDNN && dhf_dmm_available();
}

const char *dhf_kernels_active(void)
{
    return dhf_kernels_name(use_dnnl() ? DHF_KERNELS_ONEDNN : DHF_KERNELS_LIBTORCH);
}

/* The oneDNN dtype of t when the oneDNN path may take it (CPU, float32 or bfloat16). */
static bool dnnl_dtype(dhf_tensor t, dhf_dmm_dtype *dt)
{
    if (!t || dhf_get_device(t).type != DHF_CPU)
        return false;
    dhf_dtype d = dhf_get_dtype(t);
    if (d != DHF_F32 && d != DHF_BF16)
        return false;
    *dt = d == DHF_BF16 ? DHF_DMM_BF16 : DHF_DMM_F32;
    return true;
}

/* A 3-D tensor's sizes and strides; false for any other rank. */
static bool dims3(dhf_tensor t, int64_t size[3], int64_t stride[3])
{
    int nd = 0, ns = 0;
    int64_t sh[DHF_MAX_DIMS], st[DHF_MAX_DIMS];
    if (dhf_shape(t, sh, &nd) != DHF_OK || dhf_strides(t, st, &ns) != DHF_OK || nd != 3)
        return false;
    memcpy(size, sh, 3 * sizeof *size);
    memcpy(stride, st, 3 * sizeof *stride);
    return true;
}

static int shim_fail(const char *op)
{
    return dhf_err_set("%s: %s", op, dhf_last_error());
}

int dhf_kern_linear(dhf_tensor x, dhf_tensor w, dhf_tensor b, dhf_tensor *out)
{
    dhf_dmm_dtype dt, wt, bt = DHF_DMM_F32;
    int nd = 0;
    int64_t xs[DHF_MAX_DIMS];
    if (use_dnnl() && dnnl_dtype(x, &dt) && dnnl_dtype(w, &wt) && wt == dt &&
        (!b || (dnnl_dtype(b, &bt) && bt == dt && dhf_is_contiguous(b))) &&
        dhf_is_contiguous(x) && dhf_is_contiguous(w) && dhf_ndim(w) == 2 &&
        dhf_shape(x, xs, &nd) == DHF_OK && nd >= 1 && xs[nd - 1] == dhf_size(w, 1)) {
        int64_t K = dhf_size(w, 1), N = dhf_size(w, 0), M = K ? dhf_numel(x) / K : 0;
        dhf_dmm_shape s = {.batch = 1, .M = M, .K = K, .N = N,
                           .a_stride = {M * K, K, 1},
                           .b_stride = {N * K, 1, K},   /* W^T: a view of [N, K] */
                           .c_stride = {M * N, N, 1},
                           .dtype = dt, .bias = b != NULL};
        xs[nd - 1] = N;
        dhf_tensor y = NULL;
        if (M > 0 && dhf_empty(dhf_get_dtype(x), dhf_get_device(x), xs, nd, &y) == DHF_OK) {
            if (dhf_dmm_run(&s, dhf_data_ptr(x), dhf_data_ptr(w), b ? dhf_data_ptr(b) : NULL,
                            dhf_data_ptr(y)) == 0) {
                *out = y;
                return 0;
            }
            dhf_free(y);
        }
        dhf_err_clear();   /* no usable oneDNN kernel: the libtorch op below */
    }
    return dhf_linear(x, w, b, out) == DHF_OK ? 0 : shim_fail("linear");
}

/* c = a . b through oneDNN when the three qualify; 1 when they do not (or oneDNN has
 * no kernel), 0 done. */
static int try_dnnl_bmm(dhf_tensor c, dhf_tensor a, dhf_tensor b)
{
    dhf_dmm_dtype da, db, dc;
    int64_t as[3], ast[3], bs[3], bst[3], cs[3], cst[3];
    if (!use_dnnl() || !dnnl_dtype(a, &da) || !dnnl_dtype(b, &db) || !dnnl_dtype(c, &dc) ||
        da != db || da != dc || !dims3(a, as, ast) || !dims3(b, bs, bst) ||
        !dims3(c, cs, cst) || as[0] != bs[0] || as[0] != cs[0] || as[2] != bs[1] ||
        cs[1] != as[1] || cs[2] != bs[2])
        return 1;
    dhf_dmm_shape s = {.batch = as[0], .M = as[1], .K = as[2], .N = bs[2], .dtype = da,
                       .bias = false};
    memcpy(s.a_stride, ast, sizeof ast);
    memcpy(s.b_stride, bst, sizeof bst);
    memcpy(s.c_stride, cst, sizeof cst);
    void *pa = dhf_strided_data_ptr(a), *pb = dhf_strided_data_ptr(b),
         *pc = dhf_strided_data_ptr(c);
    if (!pa || !pb || !pc || dhf_dmm_run(&s, pa, pb, NULL, pc) != 0) {
        dhf_err_clear();
        return 1;
    }
    return 0;
}

int dhf_kern_bmm(dhf_tensor a, dhf_tensor b, dhf_tensor *out)
{
    if (use_dnnl() && dhf_ndim(a) == 3 && dhf_ndim(b) == 3) {
        int64_t shape[3] = {dhf_size(a, 0), dhf_size(a, 1), dhf_size(b, 2)};
        dhf_tensor c = NULL;
        if (dhf_empty(dhf_get_dtype(a), dhf_get_device(a), shape, 3, &c) == DHF_OK) {
            if (try_dnnl_bmm(c, a, b) == 0) {
                *out = c;
                return 0;
            }
            dhf_free(c);
        }
    }
    return dhf_bmm(a, b, out) == DHF_OK ? 0 : shim_fail("bmm");
}

int dhf_kern_bmm_out(dhf_tensor out, dhf_tensor a, dhf_tensor b)
{
    if (try_dnnl_bmm(out, a, b) == 0)
        return 0;
    return dhf_bmm_out(out, a, b) == DHF_OK ? 0 : shim_fail("bmm_out");
}
