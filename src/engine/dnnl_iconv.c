/* dnnl_iconv.c — oneDNN inference convolutions on NHWC buffers (dnnl_iconv.h): a
 * table of packed-weights layouts by weights key, a table of primitives by shape,
 * the OIHW <-> packed reorders, and the one scratchpad buffer every primitive shares
 * (user scratchpad mode: no per-primitive allocation). Written against oneDNN 2.x's
 * C API, on dnnl_env.h's engine and stream. */
#include "engine/dnnl_iconv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int64_t dhf_iconv_out_h(const dhf_iconv_shape *s)
{
    return (s->H + s->pad_t + s->pad_b - s->k) / s->stride + 1;
}

int64_t dhf_iconv_out_w(const dhf_iconv_shape *s)
{
    return (s->W + s->pad_l + s->pad_r - s->k) / s->stride + 1;
}

#ifndef DHF_HAVE_DNNL

bool dhf_iconv_available(void) { return false; }

static int no_dnnl(void)
{
    return dhf_err_set("dnnl_iconv: dhf built without oneDNN (libdnnl-dev)");
}

int dhf_iconv_packed_bytes(const dhf_iconv_shape *s, size_t *bytes)
{
    (void)s, (void)bytes;
    return no_dnnl();
}

int dhf_iconv_pack(const dhf_iconv_shape *s, const void *w_oihw, void *packed)
{
    (void)s, (void)w_oihw, (void)packed;
    return no_dnnl();
}

int dhf_iconv_unpack(const dhf_iconv_shape *s, const void *packed, void *w_oihw)
{
    (void)s, (void)packed, (void)w_oihw;
    return no_dnnl();
}

int dhf_iconv_forward(const dhf_iconv_shape *s, const void *src, const void *packed,
                      const void *bias, void *dst)
{
    (void)s, (void)src, (void)packed, (void)bias, (void)dst;
    return no_dnnl();
}

const char *dhf_iconv_impl(const dhf_iconv_shape *s)
{
    (void)s;
    return "";
}

#else /* DHF_HAVE_DNNL */

#include <dnnl.h>
#include <dnnl_debug.h>
#include <pthread.h>

#include "engine/dnnl_env.h"

/* a UNet + VAE has about two hundred distinct (shape, weights layout) pairs; the
 * table never evicts */
#define SHAPE_SLOTS 2048
/* a packed buffer starts with the oneDNN memory descriptor of its weights, so each
 * layer keeps the layout its own first shape chose (a layout shared by every layer of
 * the same sizes made other shapes reorder their weights on every call) */
#define HEADER_BYTES ((sizeof(dnnl_memory_desc_t) + 63) / 64 * 64)

typedef struct {
    bool used;
    dhf_iconv_shape key;
    dnnl_memory_desc_t packed_md;   /* the weights layout the caller hands in */
    dnnl_memory_desc_t src_md, dst_md, bias_md, own_w_md;
    dnnl_primitive_t prim;
    /* when oneDNN will not take packed_md for this shape: a reorder into the layout it
     * wants, into a buffer of its own, per call (rare: another input size) */
    dnnl_primitive_t w_reorder;
    void *w_tmp;
    size_t scratch_bytes;
    char impl[96];
} entry;

static entry g_shapes[SHAPE_SLOTS];
static int g_n_shapes;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static void *g_scratch;
static size_t g_scratch_bytes;

bool dhf_iconv_available(void) { return true; }

static char *shape_str(const dhf_iconv_shape *s, char *buf, size_t n)
{
    snprintf(buf, n, "conv %lldx%lldx%lldx%lld -> %lld k%d s%d pad %d,%d,%d,%d %s%s%s",
             (long long)s->N, (long long)s->C, (long long)s->H, (long long)s->W,
             (long long)s->O, s->k, s->stride, s->pad_t, s->pad_l, s->pad_b, s->pad_r,
             s->dtype == DHF_DMM_BF16 ? "bf16" : "f32", s->bias ? " +bias" : "",
             s->accumulate ? " +sum" : "");
    return buf;
}

static uint64_t mix(uint64_t h, int64_t v) { return (h ^ (uint64_t)v) * 1099511628211ull; }

static bool same_shape(const dhf_iconv_shape *a, const dhf_iconv_shape *b)
{
    return a->N == b->N && a->C == b->C && a->O == b->O && a->H == b->H && a->W == b->W &&
           a->k == b->k && a->stride == b->stride && a->pad_t == b->pad_t &&
           a->pad_l == b->pad_l && a->pad_b == b->pad_b && a->pad_r == b->pad_r &&
           a->dtype == b->dtype && a->bias == b->bias && a->accumulate == b->accumulate;
}

static dnnl_data_type_t dnnl_dt(dhf_dmm_dtype d) { return d == DHF_DMM_BF16 ? dnnl_bf16 : dnnl_f32; }

/* A primitive descriptor for s with weights in w_md (or format any when NULL); NULL
 * when oneDNN has none or only its reference kernel. */
static dnnl_primitive_desc_t make_pd(entry *e, const dnnl_memory_desc_t *w_md,
                                     dnnl_engine_t eng, dnnl_status_t *st_out)
{
    const dhf_iconv_shape *s = &e->key;
    dnnl_data_type_t dt = dnnl_dt(s->dtype);
    dnnl_memory_desc_t any_w;
    const dnnl_dims_t wd = {s->O, s->C, s->k, s->k};
    dnnl_status_t st = dnnl_success;
    if (!w_md) {
        st = dnnl_memory_desc_init_by_tag(&any_w, 4, wd, dt, dnnl_format_tag_any);
        w_md = &any_w;
    }
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    if (st == dnnl_success)
        st = dnnl_primitive_attr_create(&attr);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success && s->accumulate) {
        st = dnnl_post_ops_create(&po);
        if (st == dnnl_success)
            st = dnnl_post_ops_append_sum(po, 1.0f);
        if (st == dnnl_success)
            st = dnnl_primitive_attr_set_post_ops(attr, po);
    }
    dnnl_convolution_desc_t d;
    const dnnl_dims_t strides = {s->stride, s->stride}, pl = {s->pad_t, s->pad_l},
                      pr = {s->pad_b, s->pad_r};
    if (st == dnnl_success)
        st = dnnl_convolution_forward_desc_init(&d, dnnl_forward_inference,
                                                dnnl_convolution_direct, &e->src_md, w_md,
                                                s->bias ? &e->bias_md : NULL, &e->dst_md,
                                                strides, pl, pr);
    dnnl_primitive_desc_t pd = NULL;
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&pd, &d, attr, eng, NULL);
    if (po)
        dnnl_post_ops_destroy(po);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    *st_out = st;
    if (st != dnnl_success)
        return NULL;
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (!impl || strncmp(impl, "ref", 3) == 0) {
        dnnl_primitive_desc_destroy(pd);
        *st_out = dnnl_unimplemented;
        return NULL;
    }
    snprintf(e->impl, sizeof e->impl, "%s", impl);
    return pd;
}

/* A reorder primitive between two weights layouts; NULL with the error set. */
static dnnl_primitive_t make_reorder(const dnnl_memory_desc_t *from,
                                     const dnnl_memory_desc_t *to, dnnl_engine_t eng)
{
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&rpd, from, eng, to, eng, NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&r, rpd);
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    if (st != dnnl_success) {
        dhf_err_set("dnnl_iconv: weights reorder: %s", dnnl_status2str(st));
        return NULL;
    }
    return r;
}

/* Fills e (key and packed_md set; packed_md.ndims == 0: not packed yet, the layout
 * is oneDNN's choice) with its primitive. Caller holds g_mu. */
static int make_entry(entry *e, dnnl_engine_t eng)
{
    const dhf_iconv_shape *s = &e->key;
    char sh[192];
    dnnl_data_type_t dt = dnnl_dt(s->dtype);
    const dnnl_dims_t sd = {s->N, s->C, s->H, s->W},
                      dd = {s->N, s->O, dhf_iconv_out_h(s), dhf_iconv_out_w(s)},
                      bd = {s->O};
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&e->src_md, 4, sd, dt, dnnl_nhwc);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_tag(&e->dst_md, 4, dd, dt, dnnl_nhwc);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_tag(&e->bias_md, 1, bd, dt, dnnl_x);
    if (st != dnnl_success)
        return dhf_err_set("dnnl_iconv %s: %s", shape_str(s, sh, sizeof sh),
                           dnnl_status2str(st));
    bool fixed = e->packed_md.ndims != 0;
    dnnl_primitive_desc_t pd = make_pd(e, fixed ? &e->packed_md : NULL, eng, &st);
    if (!pd && fixed)
        pd = make_pd(e, NULL, eng, &st);   /* oneDNN wants its own layout for this shape */
    if (!pd)
        return dhf_err_set("dnnl_iconv %s: no oneDNN kernel but the reference one (%s)",
                           shape_str(s, sh, sizeof sh), dnnl_status2str(st));
    e->own_w_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (!fixed)
        e->packed_md = e->own_w_md;
    if (!dnnl_memory_desc_equal(&e->own_w_md, &e->packed_md)) {
        e->w_reorder = make_reorder(&e->packed_md, &e->own_w_md, eng);
        e->w_tmp = e->w_reorder ? malloc(dnnl_memory_desc_get_size(&e->own_w_md)) : NULL;
        if (!e->w_tmp) {
            dnnl_primitive_desc_destroy(pd);
            return e->w_reorder ? dhf_err_set("dnnl_iconv: out of memory") : -1;
        }
    }
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    e->scratch_bytes = sp ? dnnl_memory_desc_get_size(sp) : 0;
    st = dnnl_primitive_create(&e->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success)
        return dhf_err_set("dnnl_iconv %s: dnnl_primitive_create: %s",
                           shape_str(s, sh, sizeof sh), dnnl_status2str(st));
    return 0;
}

/* The entry of (s, packed_md) — packed_md NULL: the layout oneDNN prefers for s —
 * made on first use; NULL with the error set. Caller holds g_mu. */
static entry *lookup(const dhf_iconv_shape *s, const dnnl_memory_desc_t *packed_md,
                     dnnl_engine_t eng)
{
    uint64_t h = 1469598103934665603ull;
    const int64_t v[] = {s->N, s->C, s->O, s->H, s->W, s->k, s->stride, s->pad_t, s->pad_l,
                         s->pad_b, s->pad_r, s->dtype, s->bias, s->accumulate};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        h = mix(h, v[i]);
    for (int i = 0; i < SHAPE_SLOTS; i++) {
        entry *e = &g_shapes[(h + (uint64_t)i) % SHAPE_SLOTS];
        if (e->used && same_shape(&e->key, s) &&
            (!packed_md || dnnl_memory_desc_equal(&e->packed_md, packed_md)))
            return e;
        if (!e->used) {
            if (g_n_shapes >= SHAPE_SLOTS * 3 / 4) {
                dhf_err_set("dnnl_iconv: more than %d distinct shapes", SHAPE_SLOTS * 3 / 4);
                return NULL;
            }
            memset(e, 0, sizeof *e);
            e->key = *s;
            if (packed_md)
                e->packed_md = *packed_md;
            if (make_entry(e, eng) != 0) {
                if (e->w_reorder)
                    dnnl_primitive_destroy(e->w_reorder);
                free(e->w_tmp);
                memset(e, 0, sizeof *e);
                return NULL;
            }
            e->used = true;
            g_n_shapes++;
            return e;
        }
    }
    dhf_err_set("dnnl_iconv: shape table full");
    return NULL;
}

static int check_shape(const dhf_iconv_shape *s)
{
    if (s->N < 1 || s->C < 1 || s->O < 1 || s->H < 1 || s->W < 1 || s->k < 1 ||
        s->stride < 1 || s->pad_t < 0 || s->pad_l < 0 || s->pad_b < 0 || s->pad_r < 0 ||
        dhf_iconv_out_h(s) < 1 || dhf_iconv_out_w(s) < 1)
        return dhf_err_set("dnnl_iconv: bad convolution shape");
    return 0;
}

/* Runs one primitive on (DNNL_ARG, desc, buffer) triples. */
static dnnl_status_t run(dnnl_primitive_t prim, dnnl_engine_t eng, dnnl_stream_t strm, int n,
                         const int *arg, const dnnl_memory_desc_t *const *md, void *const *buf)
{
    dnnl_memory_t m[6] = {0};
    dnnl_exec_arg_t args[6];
    dnnl_status_t st = dnnl_success;
    for (int i = 0; i < n && st == dnnl_success; i++) {
        st = dnnl_memory_create(&m[i], md[i], eng, buf[i]);
        args[i].arg = arg[i];
        args[i].memory = m[i];
    }
    if (st == dnnl_success)
        st = dnnl_primitive_execute(prim, strm, n, args);
    if (st == dnnl_success)
        st = dnnl_stream_wait(strm);
    for (int i = 0; i < n; i++)
        if (m[i])
            dnnl_memory_destroy(m[i]);
    return st;
}

/* The header of a packed buffer: its weights layout (copied out: the buffer need not
 * be aligned for the struct). */
static dnnl_memory_desc_t packed_header(const void *packed)
{
    dnnl_memory_desc_t md;
    memcpy(&md, packed, sizeof md);
    return md;
}

int dhf_iconv_packed_bytes(const dhf_iconv_shape *s, size_t *bytes)
{
    dnnl_engine_t eng;
    if (check_shape(s) != 0 || dhf_dnnl_env("dnnl_iconv", &eng, NULL) != 0)
        return -1;
    pthread_mutex_lock(&g_mu);
    entry *e = lookup(s, NULL, eng);
    if (e)
        *bytes = HEADER_BYTES + dnnl_memory_desc_get_size(&e->packed_md);
    pthread_mutex_unlock(&g_mu);
    return e ? 0 : -1;
}

/* OIHW <-> packed: one reorder, made for the call (once per layer, or on a restore) */
static int pack_or_unpack(const dhf_iconv_shape *s, const void *from, void *to, bool pack)
{
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    if (check_shape(s) != 0 || dhf_dnnl_env("dnnl_iconv", &eng, &strm) != 0)
        return -1;
    int rc = 0;
    char sh[192];
    dnnl_memory_desc_t packed_md, oihw_md;
    const dnnl_dims_t wd = {s->O, s->C, s->k, s->k};
    pthread_mutex_lock(&g_mu);
    if (pack) {
        entry *e = lookup(s, NULL, eng);
        if (!e) {
            pthread_mutex_unlock(&g_mu);
            return -1;
        }
        packed_md = e->packed_md;
    } else {
        packed_md = packed_header(from);
    }
    pthread_mutex_unlock(&g_mu);
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&oihw_md, 4, wd, dnnl_dt(s->dtype),
                                                    dnnl_oihw);
    if (st != dnnl_success)
        return dhf_err_set("dnnl_iconv %s: %s", shape_str(s, sh, sizeof sh),
                           dnnl_status2str(st));
    if (!pack && (packed_md.ndims != 4 || packed_md.dims[0] != s->O ||
                  packed_md.dims[1] != s->C || packed_md.dims[2] != s->k))
        return dhf_err_set("dnnl_iconv %s: the packed weights are of another shape",
                           shape_str(s, sh, sizeof sh));
    dnnl_primitive_t r = pack ? make_reorder(&oihw_md, &packed_md, eng)
                              : make_reorder(&packed_md, &oihw_md, eng);
    if (!r)
        return -1;
    const int arg[2] = {DNNL_ARG_FROM, DNNL_ARG_TO};
    const dnnl_memory_desc_t *md[2] = {pack ? &oihw_md : &packed_md,
                                       pack ? &packed_md : &oihw_md};
    void *const buf[2] = {pack ? (void *)from : (char *)from + HEADER_BYTES,
                          pack ? (char *)to + HEADER_BYTES : to};
    if (pack)
        memcpy(to, &packed_md, sizeof packed_md);
    st = run(r, eng, strm, 2, arg, md, buf);
    dnnl_primitive_destroy(r);
    if (st != dnnl_success)
        rc = dhf_err_set("dnnl_iconv %s: weights %s: %s", shape_str(s, sh, sizeof sh),
                         pack ? "pack" : "unpack", dnnl_status2str(st));
    return rc;
}

int dhf_iconv_pack(const dhf_iconv_shape *s, const void *w_oihw, void *packed)
{
    return pack_or_unpack(s, w_oihw, packed, true);
}

int dhf_iconv_unpack(const dhf_iconv_shape *s, const void *packed, void *w_oihw)
{
    return pack_or_unpack(s, packed, w_oihw, false);
}

int dhf_iconv_forward(const dhf_iconv_shape *s, const void *src, const void *packed,
                      const void *bias, void *dst)
{
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    if (check_shape(s) != 0 || dhf_dnnl_env("dnnl_iconv", &eng, &strm) != 0)
        return -1;
    if (s->bias && !bias)
        return dhf_err_set("dnnl_iconv: bias missing");
    int rc = 0;
    char sh[192];
    dnnl_memory_desc_t packed_md = packed_header(packed);
    if (packed_md.ndims != 4 || packed_md.dims[0] != s->O || packed_md.dims[1] != s->C ||
        packed_md.dims[2] != s->k)
        return dhf_err_set("dnnl_iconv %s: the packed weights are of another shape",
                           shape_str(s, sh, sizeof sh));
    /* one caller at a time: the scratchpad and the per-shape weights buffer are shared */
    pthread_mutex_lock(&g_mu);
    entry *e = lookup(s, &packed_md, eng);
    if (!e) {
        rc = -1;
        goto out;
    }
    if (e->scratch_bytes > g_scratch_bytes) {
        free(g_scratch);
        g_scratch = malloc(e->scratch_bytes);
        g_scratch_bytes = g_scratch ? e->scratch_bytes : 0;
        if (!g_scratch) {
            rc = dhf_err_set("dnnl_iconv: out of memory for a %zu-byte scratchpad",
                             e->scratch_bytes);
            goto out;
        }
    }
    const void *w = (const char *)packed + HEADER_BYTES;
    dnnl_status_t st = dnnl_success;
    if (e->w_reorder) {
        const int arg[2] = {DNNL_ARG_FROM, DNNL_ARG_TO};
        const dnnl_memory_desc_t *md[2] = {&e->packed_md, &e->own_w_md};
        void *const buf[2] = {(void *)w, e->w_tmp};
        st = run(e->w_reorder, eng, strm, 2, arg, md, buf);
        w = e->w_tmp;
    }
    if (st == dnnl_success) {
        dnnl_memory_desc_t sp_md;
        const dnnl_dims_t spd = {(dnnl_dim_t)(e->scratch_bytes ? e->scratch_bytes : 1)};
        st = dnnl_memory_desc_init_by_tag(&sp_md, 1, spd, dnnl_u8, dnnl_x);
        int arg[5] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_SCRATCHPAD,
                      DNNL_ARG_BIAS};
        const dnnl_memory_desc_t *md[5] = {&e->src_md, &e->own_w_md, &e->dst_md, &sp_md,
                                           &e->bias_md};
        void *const buf[5] = {(void *)src, (void *)w, dst, g_scratch, (void *)bias};
        if (st == dnnl_success)
            st = run(e->prim, eng, strm, s->bias ? 5 : 4, arg, md, buf);
    }
    if (st != dnnl_success)
        rc = dhf_err_set("dnnl_iconv %s: %s", shape_str(s, sh, sizeof sh),
                         dnnl_status2str(st));
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

const char *dhf_iconv_impl(const dhf_iconv_shape *s)
{
    dnnl_engine_t eng;
    if (check_shape(s) != 0 || dhf_dnnl_env("dnnl_iconv", &eng, NULL) != 0)
        return "";
    pthread_mutex_lock(&g_mu);
    entry *e = lookup(s, NULL, eng);
    pthread_mutex_unlock(&g_mu);
    if (!e) {
        dhf_err_clear();
        return "";
    }
    return e->impl;
}

#endif /* DHF_HAVE_DNNL */
