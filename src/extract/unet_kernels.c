/* unet_kernels.c — the extractor's kernels on oneDNN or libtorch (unet_kernels.h):
 * which tensors qualify for the engine's kernels, their shapes and strides as the
 * engine's shape structs, the channels-last tensors, the packing of weights (and their
 * restore for the libtorch path), and the libtorch op for everything else. */
#include "extract/unet_kernels.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/dnnl_iconv.h"
#include "engine/dnnl_matmul.h"
#include "engine/groupnorm_nhwc.h"

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

/* the plain oneDNN matmul / libtorch Linear */
static int linear_matmul(dhf_tensor x, dhf_tensor w, dhf_tensor b, dhf_tensor *out)
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

/* ---- convolutions and GroupNorm on channels-last activations ------------------- */

static bool g_keep_oihw;
static dhf_kern_stats g_stats;

void dhf_kernels_keep_oihw(bool keep) { g_keep_oihw = keep; }

void dhf_kern_stats_get(dhf_kern_stats *s) { *s = g_stats; }

void dhf_kern_stats_reset(void) { memset(&g_stats, 0, sizeof g_stats); }

bool dhf_kern_fast_layout(dhf_tensor x)
{
    dhf_dmm_dtype dt;
    return dhf_kernels_get() == DHF_KERNELS_ONEDNN && dhf_iconv_available() &&
           dnnl_dtype(x, &dt) && dhf_ndim(x) == 4;
}

bool dhf_kern_fast(dhf_tensor x)
{
    dhf_dmm_dtype dt;
    return use_dnnl() && dnnl_dtype(x, &dt);
}

void dhf_kern_count_attention(void) { g_stats.attn_rows++; }

bool dhf_kern_is_channels_last(dhf_tensor x)
{
    int nd = 0, ns = 0;
    int64_t sz[DHF_MAX_DIMS], st[DHF_MAX_DIMS];
    if (dhf_shape(x, sz, &nd) != DHF_OK || dhf_strides(x, st, &ns) != DHF_OK || nd != 4)
        return false;
    const int64_t want[4] = {sz[2] * sz[3] * sz[1], 1, sz[3] * sz[1], sz[1]};
    for (int i = 0; i < 4; i++)
        if (sz[i] != 1 && st[i] != want[i])
            return false;
    return true;
}

/* NEW channels-last [N, C, H, W] of dtype dt on the CPU (a permuted NHWC tensor) */
static int empty_channels_last(dhf_dtype dt, int64_t N, int64_t C, int64_t H, int64_t W,
                               dhf_tensor *out)
{
    const int64_t nhwc[4] = {N, H, W, C}, to_nchw[4] = {0, 3, 1, 2};
    dhf_tensor base = NULL;
    if (dhf_empty(dt, (dhf_device){DHF_CPU, 0}, nhwc, 4, &base) != DHF_OK)
        return shim_fail("empty");
    dhf_status st = dhf_permute(base, to_nchw, 4, out);
    dhf_free(base);
    return st == DHF_OK ? 0 : shim_fail("permute");
}

int dhf_kern_channels_last(dhf_tensor x, dhf_tensor *out)
{
    const int64_t same[4] = {0, 1, 2, 3}, to_nhwc[4] = {0, 2, 3, 1}, to_nchw[4] = {0, 3, 1, 2};
    if (dhf_kern_is_channels_last(x))   /* another handle on the same view */
        return dhf_permute(x, same, 4, out) == DHF_OK ? 0 : shim_fail("channels_last");
    dhf_tensor p = NULL, c = NULL;
    dhf_status st = dhf_permute(x, to_nhwc, 4, &p);
    if (st == DHF_OK)
        st = dhf_contiguous(p, &c);
    if (st == DHF_OK)
        st = dhf_permute(c, to_nchw, 4, out);
    dhf_free(p);
    dhf_free(c);
    return st == DHF_OK ? 0 : shim_fail("channels_last");
}

static dhf_iconv_shape iconv_shape(dhf_tensor x, const dhf_kern_conv_geom *g, dhf_dtype dt,
                                   bool bias, bool accumulate)
{
    dhf_iconv_shape s = {.N = dhf_size(x, 0), .C = g->in_ch, .O = g->out_ch,
                         .H = dhf_size(x, 2), .W = dhf_size(x, 3), .k = g->k,
                         .stride = g->stride, .pad_t = g->pad_t, .pad_l = g->pad_l,
                         .pad_b = g->pad_b, .pad_r = g->pad_r,
                         .dtype = dt == DHF_BF16 ? DHF_DMM_BF16 : DHF_DMM_F32,
                         .bias = bias, .accumulate = accumulate};
    return s;
}

/* w_packed = w in oneDNN's layout; w emptied unless the OIHW copy is to be kept */
static int pack_weights(const dhf_iconv_shape *s, dhf_tensor w, dhf_tensor w_packed)
{
    size_t bytes = 0;
    if (dhf_iconv_packed_bytes(s, &bytes) != 0)
        return -1;
    int64_t n = (int64_t)bytes, zero = 0;
    dhf_tensor p = NULL, e = NULL;
    if (dhf_empty(DHF_U8, dhf_get_device(w), &n, 1, &p) != DHF_OK)
        return shim_fail("empty");
    if (dhf_iconv_pack(s, dhf_data_ptr(w), dhf_data_ptr(p)) != 0) {
        dhf_free(p);
        return -1;
    }
    dhf_status st = dhf_set_(w_packed, p);
    dhf_free(p);
    if (st == DHF_OK && !g_keep_oihw) {
        st = dhf_empty(dhf_get_dtype(w), dhf_get_device(w), &zero, 1, &e);
        if (st == DHF_OK)
            st = dhf_set_(w, e);
        dhf_free(e);
        /* the OIHW block is free now: give it back to the system rather than keep it
         * cached (the model is then held once, packed) */
        if (st == DHF_OK && bytes >= ((size_t)1 << 20))
            st = dhf_cpu_allocator_trim();
    }
    return st == DHF_OK ? 0 : shim_fail("set_");
}

/* w [O, C, k, k] again from w_packed, for the libtorch path */
static int restore_weights(const dhf_kern_conv_geom *g, dhf_tensor w, dhf_tensor w_packed)
{
    int64_t shape[4] = {g->out_ch, g->in_ch, g->k, g->k};
    dhf_dtype dt = dhf_get_dtype(w);
    dhf_iconv_shape s = {.N = 1, .C = g->in_ch, .O = g->out_ch, .H = g->k, .W = g->k,
                         .k = g->k, .stride = g->stride, .pad_t = g->pad_t,
                         .pad_l = g->pad_l, .pad_b = g->pad_b, .pad_r = g->pad_r,
                         .dtype = dt == DHF_BF16 ? DHF_DMM_BF16 : DHF_DMM_F32};
    dhf_tensor t = NULL;
    if (dhf_empty(dt, dhf_get_device(w_packed), shape, 4, &t) != DHF_OK)
        return shim_fail("empty");
    if (dhf_iconv_unpack(&s, dhf_data_ptr(w_packed), dhf_data_ptr(t)) != 0) {
        dhf_free(t);
        return -1;
    }
    dhf_status st = dhf_set_(w, t);
    dhf_free(t);
    return st == DHF_OK ? 0 : shim_fail("set_");
}

/* 0 done on oneDNN, 1 not taken (the libtorch path runs), -1 error. in_place: acc is
 * the destination itself (out untouched), else out = a new tensor (+ a copy of acc). */
static int try_iconv(dhf_tensor x, dhf_tensor w, dhf_tensor w_packed, dhf_tensor b,
                     const dhf_kern_conv_geom *g, dhf_tensor acc, bool in_place,
                     dhf_tensor *out)
{
    dhf_dmm_dtype dt, wt, bt;
    bool packed = w_packed && dhf_numel(w_packed) > 0;
    if (!w_packed || !dhf_kern_fast_layout(x) || !dnnl_dtype(x, &dt) ||
        (g->k != 1 && g->k != 3) || g->stride < 1 || g->stride > 2 ||
        dhf_size(x, 1) != g->in_ch ||
        (b && (!dnnl_dtype(b, &bt) || bt != dt || !dhf_is_contiguous(b))) ||
        (acc && !dnnl_dtype(acc, &bt)) ||
        (!packed && (!dnnl_dtype(w, &wt) || wt != dt || !dhf_is_contiguous(w) ||
                     dhf_numel(w) != (int64_t)g->out_ch * g->in_ch * g->k * g->k)) ||
        (packed && dhf_get_dtype(w) != dhf_get_dtype(x)))
        return 1;
    dhf_iconv_shape s = iconv_shape(x, g, dhf_get_dtype(x), b != NULL, acc != NULL);
    if (!packed && pack_weights(&s, w, w_packed) != 0) {
        dhf_err_clear();   /* no usable oneDNN kernel: libtorch's */
        return 1;
    }
    int64_t OH = dhf_iconv_out_h(&s), OW = dhf_iconv_out_w(&s);
    if (acc && (dhf_ndim(acc) != 4 || dhf_size(acc, 0) != s.N || dhf_size(acc, 1) != s.O ||
                dhf_size(acc, 2) != OH || dhf_size(acc, 3) != OW))
        return dhf_err_set("conv2d: the tensor to accumulate into is not shaped like the output");
    if (in_place && (!dhf_kern_is_channels_last(acc) || dhf_get_dtype(acc) != dhf_get_dtype(x)))
        return 1;
    dhf_tensor xin = NULL, y = NULL;
    int rc = 0;
    if (dhf_kern_is_channels_last(x)) {
        xin = x;
    } else {
        if (dhf_kern_channels_last(x, &xin) != 0)
            return -1;
        g_stats.conv_relayout++;
    }
    if (in_place) {
        y = acc;
    } else {
        rc = empty_channels_last(dhf_get_dtype(x), s.N, s.O, OH, OW, &y);
        if (rc == 0 && acc && dhf_copy_(y, acc) != DHF_OK)
            rc = shim_fail("copy_");
    }
    if (rc == 0 && dhf_iconv_forward(&s, dhf_strided_data_ptr(xin), dhf_data_ptr(w_packed),
                                     b ? dhf_data_ptr(b) : NULL, dhf_strided_data_ptr(y)) != 0) {
        dhf_err_clear();   /* oneDNN refused this shape: libtorch's path */
        rc = 1;
    }
    if (xin != x)
        dhf_free(xin);
    if (rc != 0) {
        if (!in_place)
            dhf_free(y);
        return rc;
    }
    g_stats.conv_onednn++;
    if (!in_place)
        *out = y;
    return 0;
}

int dhf_kern_conv2d(dhf_tensor x, dhf_tensor w, dhf_tensor w_packed, dhf_tensor b,
                    const dhf_kern_conv_geom *g, dhf_tensor acc, dhf_tensor *out)
{
    int rc = try_iconv(x, w, w_packed, b, g, acc, false, out);
    if (rc <= 0)
        return rc;
    if (dhf_numel(w) == 0 && w_packed && dhf_numel(w_packed) > 0 &&
        restore_weights(g, w, w_packed) != 0)
        return -1;
    g_stats.conv_libtorch++;
    dhf_status st;
    dhf_tensor y = NULL;
    if (g->pad_t != g->pad_b || g->pad_l != g->pad_r) {
        /* asymmetric zero padding (the VAE's F.pad(x, (0, 1, 0, 1))): pad, then a
         * convolution with the symmetric part */
        int64_t pads[4] = {g->pad_l - (g->pad_l < g->pad_r ? g->pad_l : g->pad_r),
                           g->pad_r - (g->pad_l < g->pad_r ? g->pad_l : g->pad_r),
                           g->pad_t - (g->pad_t < g->pad_b ? g->pad_t : g->pad_b),
                           g->pad_b - (g->pad_t < g->pad_b ? g->pad_t : g->pad_b)};
        int ph = g->pad_t < g->pad_b ? g->pad_t : g->pad_b;
        int pw = g->pad_l < g->pad_r ? g->pad_l : g->pad_r;
        dhf_tensor padded = NULL;
        if (dhf_pad(x, pads, 4, 0.0, &padded) != DHF_OK)
            return shim_fail("pad");
        st = dhf_conv2d(padded, w, b, g->stride, g->stride, ph, pw, 1, &y);
        dhf_free(padded);
    } else {
        st = dhf_conv2d(x, w, b, g->stride, g->stride, g->pad_t, g->pad_l, 1, &y);
    }
    if (st != DHF_OK)
        return shim_fail("conv2d");
    if (acc && dhf_add_(y, acc) != DHF_OK) {
        dhf_free(y);
        return shim_fail("add_");
    }
    *out = y;
    return 0;
}

int dhf_kern_conv2d_acc_(dhf_tensor acc, dhf_tensor x, dhf_tensor w, dhf_tensor w_packed,
                         dhf_tensor b, const dhf_kern_conv_geom *g)
{
    int rc = try_iconv(x, w, w_packed, b, g, acc, true, NULL);
    if (rc <= 0)
        return rc;
    dhf_tensor y = NULL;
    if (dhf_kern_conv2d(x, w, w_packed, b, g, NULL, &y) != 0)
        return -1;
    dhf_status st = dhf_add_(acc, y);
    dhf_free(y);
    return st == DHF_OK ? 0 : shim_fail("add_");
}

int dhf_kern_groupnorm(dhf_tensor x, int groups, dhf_tensor w, dhf_tensor b, double eps,
                       bool silu, dhf_tensor *out)
{
    dhf_dmm_dtype dt, wt, bt;
    if (dhf_kern_fast_layout(x) && dhf_kern_is_channels_last(x) && dnnl_dtype(x, &dt) &&
        dnnl_dtype(w, &wt) && dnnl_dtype(b, &bt) && wt == dt && bt == dt &&
        dhf_is_contiguous(w) && dhf_is_contiguous(b) && dhf_numel(w) == dhf_size(x, 1) &&
        dhf_numel(b) == dhf_size(x, 1)) {
        int64_t N = dhf_size(x, 0), C = dhf_size(x, 1), H = dhf_size(x, 2), W = dhf_size(x, 3);
        dhf_gn_shape s = {.N = N, .P = H * W, .C = C, .G = groups, .eps = eps, .silu = silu,
                          .bf16 = dt == DHF_DMM_BF16};
        dhf_tensor y = NULL;
        if (empty_channels_last(dhf_get_dtype(x), N, C, H, W, &y) != 0)
            return -1;
        if (dhf_gn_nhwc_forward(&s, dhf_strided_data_ptr(x), dhf_data_ptr(w), dhf_data_ptr(b),
                                dhf_strided_data_ptr(y)) != 0) {
            dhf_free(y);
            return -1;
        }
        g_stats.gn_fused++;
        *out = y;
        return 0;
    }
    g_stats.gn_libtorch++;
    if (dhf_group_norm(x, groups, w, b, eps, out) != DHF_OK)
        return shim_fail("group_norm");
    if (silu && dhf_silu_(*out) != DHF_OK) {
        dhf_free(*out);
        *out = NULL;
        return shim_fail("silu_");
    }
    return 0;
}

/* ---- Linear as a 1x1 convolution -------------------------------------------------- */

/* 0 done (into *out, or into acc when acc), 1 not taken, -1 error */
static int try_linear_iconv(dhf_tensor x, dhf_tensor w, dhf_tensor w_packed, dhf_tensor b,
                            int64_t K, int64_t N, dhf_tensor acc, dhf_tensor *out)
{
    dhf_dmm_dtype dt, wt, bt;
    int nd = 0;
    int64_t xs[DHF_MAX_DIMS];
    bool packed = w_packed && dhf_numel(w_packed) > 0;
    if (!w_packed || dhf_kernels_get() != DHF_KERNELS_ONEDNN || !dhf_iconv_available() ||
        !dnnl_dtype(x, &dt) || !dhf_is_contiguous(x) || dhf_shape(x, xs, &nd) != DHF_OK ||
        nd < 1 || (b && (!dnnl_dtype(b, &bt) || bt != dt || !dhf_is_contiguous(b))) ||
        dhf_get_dtype(w) != dhf_get_dtype(x) ||
        (!packed && (!dnnl_dtype(w, &wt) || !dhf_is_contiguous(w) || dhf_ndim(w) != 2)))
        return 1;
    if (K < 1 || N < 1 || xs[nd - 1] != K ||
        (dhf_numel(w) > 0 && (dhf_size(w, 0) != N || dhf_size(w, 1) != K)))
        return 1;
    int64_t M = dhf_numel(x) / K;
    if (M < 1)
        return 1;
    dhf_iconv_shape s = {.N = 1, .C = K, .O = N, .H = 1, .W = M, .k = 1, .stride = 1,
                         .dtype = dt, .bias = b != NULL, .accumulate = acc != NULL};
    if (!packed && pack_weights(&s, w, w_packed) != 0) {
        dhf_err_clear();
        return 1;
    }
    dhf_tensor y = NULL;
    if (acc) {
        if (!dhf_is_contiguous(acc) || dhf_numel(acc) != M * N || dhf_get_dtype(acc) !=
            dhf_get_dtype(x))
            return 1;
        y = acc;
    } else {
        xs[nd - 1] = N;
        if (dhf_empty(dhf_get_dtype(x), dhf_get_device(x), xs, nd, &y) != DHF_OK)
            return shim_fail("empty");
    }
    if (dhf_iconv_forward(&s, dhf_data_ptr(x), dhf_data_ptr(w_packed),
                          b ? dhf_data_ptr(b) : NULL, dhf_data_ptr(y)) != 0) {
        dhf_err_clear();
        if (!acc)
            dhf_free(y);
        return 1;
    }
    if (!acc)
        *out = y;
    g_stats.linear_1x1++;
    return 0;
}

/* w [N, K] again from w_packed (emptied by packing), for the other paths */
static int linear_restore(dhf_tensor w, dhf_tensor w_packed, int64_t K, int64_t N)
{
    if (dhf_numel(w) > 0 || !w_packed || dhf_numel(w_packed) == 0)
        return 0;
    dhf_kern_conv_geom g = {.in_ch = (int)K, .out_ch = (int)N, .k = 1, .stride = 1};
    int64_t s2[2] = {N, K};
    if (restore_weights(&g, w, w_packed) != 0)
        return -1;
    dhf_tensor v = NULL;   /* [N, K, 1, 1] -> [N, K] */
    dhf_status st = dhf_view(w, s2, 2, &v);
    if (st == DHF_OK)
        st = dhf_set_(w, v);
    dhf_free(v);
    return st == DHF_OK ? 0 : shim_fail("view");
}

int dhf_kern_linear(dhf_tensor x, dhf_tensor w, dhf_tensor w_packed, dhf_tensor b,
                    int64_t in_f, int64_t out_f, dhf_tensor *out)
{
    int rc = try_linear_iconv(x, w, w_packed, b, in_f, out_f, NULL, out);
    if (rc <= 0)
        return rc;
    if (linear_restore(w, w_packed, in_f, out_f) != 0)
        return -1;
    return linear_matmul(x, w, b, out);
}

int dhf_kern_linear_acc_(dhf_tensor acc, dhf_tensor x, dhf_tensor w, dhf_tensor w_packed,
                         dhf_tensor b, int64_t in_f, int64_t out_f)
{
    int rc = try_linear_iconv(x, w, w_packed, b, in_f, out_f, acc, NULL);
    if (rc <= 0)
        return rc;
    if (linear_restore(w, w_packed, in_f, out_f) != 0)
        return -1;
    dhf_tensor y = NULL;
    if (linear_matmul(x, w, b, &y) != 0)
        return -1;
    dhf_status st = dhf_add_(acc, y);
    dhf_free(y);
    return st == DHF_OK ? 0 : shim_fail("add_");
}
