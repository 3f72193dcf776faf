/* dnnl_conv.c — owns the oneDNN side of the blocked-layout convolutions (dnnl_conv.h):
 * per dhf_dconv the forward, backward-data
 * and backward-weights primitive descriptors and primitives, the memory objects that
 * wrap the caller's buffers, and the cached OIHW <-> oneDNN-layout weights reorders
 * with their buffers. Written against oneDNN 2.x's C API (libdnnl-dev 2.6: op
 * descriptors + dnnl_primitive_desc_create, dnnl_memory_desc_t is a struct). The
 * engine and stream are dnnl_env.h's.
 * Without DHF_HAVE_DNNL the file compiles to stubs. */
#include "engine/dnnl_conv.h"

#include <stddef.h>

#include "core/error.h"

#ifndef DHF_HAVE_DNNL

bool dhf_dconv_available(void) { return false; }

int dhf_dconv_create(dhf_dconv **out, int N, int C, int O, int H, int W, int k,
                     bool need_bwd_data, dhf_dconv_algo algo)
{
    if (out)
        *out = NULL;
    return dhf_err_set("dnnl_conv: dhf built without oneDNN (libdnnl-dev)");
}

void dhf_dconv_free(dhf_dconv *c) {}

const char *dhf_dconv_impl(const dhf_dconv *c) { return "none (built without oneDNN)"; }

int dhf_dconv_forward(dhf_dconv *c, const float *src, const float *w, float *dst)
{
    return dhf_err_set("dnnl_conv forward: dhf built without oneDNN (libdnnl-dev)");
}

int dhf_dconv_backward_data(dhf_dconv *c, const float *ddst, const float *w, float *dsrc)
{
    return dhf_err_set("dnnl_conv backward_data: dhf built without oneDNN (libdnnl-dev)");
}

int dhf_dconv_backward_weights(dhf_dconv *c, const float *src, const float *ddst, float *dw)
{
    return dhf_err_set("dnnl_conv backward_weights: dhf built without oneDNN (libdnnl-dev)");
}

#else /* DHF_HAVE_DNNL */

#include <dnnl.h>
#include <dnnl_debug.h>

#include "engine/dnnl_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the process-wide engine and stream (dnnl_env.h), set by dhf_dconv_create */
static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;

/* ---- the object ----------------------------------------------------------- */

typedef enum { OP_FWD = 0, OP_BWD_D = 1, OP_BWD_W = 2, OP_COUNT } op_kind;
static const char *const op_name[OP_COUNT] = {"fwd", "bwd_d", "bwd_w"};

typedef struct {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t w_int;            /* weights in the pd's layout; NULL when plain OIHW */
    dnnl_primitive_desc_t r_pd;     /* OIHW -> w_int (fwd, bwd_d) or w_int -> OIHW (bwd_w) */
    dnnl_primitive_t reorder;
} dconv_op;

struct dhf_dconv {
    int N, C, O, H, W, k;
    bool has_bwd_d;
    char shape[96];                 /* "N=.. C=.. O=.. H=.. W=.. k=.." for messages */
    char impl[512];
    dnnl_memory_desc_t src_md, dst_md, w_md;   /* blocked, blocked, OIHW */
    dnnl_memory_t m_src, m_dst, m_w; /* wrap the caller's buffers (handle set per call) */
    dconv_op op[OP_COUNT];
};

bool dhf_dconv_available(void) { return true; }

static const char *st_str(dnnl_status_t st) { return dnnl_status2str(st); }

static const char *pd_impl(const_dnnl_primitive_desc_t pd)
{
    const char *s = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s) != dnnl_success || !s)
        return "?";
    return s;
}

static void op_destroy(dconv_op *o)
{
    if (o->reorder)
        dnnl_primitive_destroy(o->reorder);
    if (o->r_pd)
        dnnl_primitive_desc_destroy(o->r_pd);
    if (o->w_int)
        dnnl_memory_destroy(o->w_int);
    if (o->prim)
        dnnl_primitive_destroy(o->prim);
    if (o->pd)
        dnnl_primitive_desc_destroy(o->pd);
    memset(o, 0, sizeof *o);
}

void dhf_dconv_free(dhf_dconv *c)
{
    if (!c)
        return;
    for (int i = 0; i < OP_COUNT; i++)
        op_destroy(&c->op[i]);
    if (c->m_src)
        dnnl_memory_destroy(c->m_src);
    if (c->m_dst)
        dnnl_memory_destroy(c->m_dst);
    if (c->m_w)
        dnnl_memory_destroy(c->m_w);
    free(c);
}

const char *dhf_dconv_impl(const dhf_dconv *c) { return c ? c->impl : "(null)"; }

/* Primitive descriptors of the three ops for one algorithm. Returns 0 when every
 * needed op has a non-ref implementation; 1 when one has none or only "ref" (why
 * written to why[]); -1 on any other error (dhf_err_set). On non-zero the pds made
 * are destroyed. */
static int make_pds(dhf_dconv *c, dnnl_alg_kind_t alg, char *why, size_t why_sz)
{
    const dnnl_dims_t strides = {1, 1};
    const dnnl_dims_t pad = {c->k / 2, c->k / 2};
    dnnl_memory_desc_t w_any;
    const dnnl_dims_t wdims = {c->O, c->C, c->k, c->k};
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&w_any, 4, wdims, dnnl_f32,
                                                    dnnl_format_tag_any);
    if (st != dnnl_success)
        return dhf_err_set("dnnl_conv %s: weights memory desc: %s", c->shape, st_str(st));

    for (int i = 0; i < OP_COUNT; i++) {
        if (i == OP_BWD_D && !c->has_bwd_d)
            continue;
        dnnl_convolution_desc_t d;
        const char *what;
        if (i == OP_FWD) {
            what = "dnnl_convolution_forward_desc_init";
            st = dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, alg, &c->src_md,
                                                    &w_any, NULL, &c->dst_md, strides, pad, pad);
        } else if (i == OP_BWD_D) {
            /* weights: format_tag_any, NOT the forward pd's weights md (that gets ref:any) */
            what = "dnnl_convolution_backward_data_desc_init";
            st = dnnl_convolution_backward_data_desc_init(&d, alg, &c->src_md, &w_any,
                                                          &c->dst_md, strides, pad, pad);
        } else {
            what = "dnnl_convolution_backward_weights_desc_init";
            st = dnnl_convolution_backward_weights_desc_init(&d, alg, &c->src_md, &w_any, NULL,
                                                             &c->dst_md, strides, pad, pad);
        }
        if (st == dnnl_success) {
            what = "dnnl_primitive_desc_create";
            st = dnnl_primitive_desc_create(&c->op[i].pd, &d, NULL, g_engine,
                                            i == OP_FWD ? NULL : c->op[OP_FWD].pd);
        }
        if (st != dnnl_success) {
            c->op[i].pd = NULL;
            for (int j = 0; j < OP_COUNT; j++)
                op_destroy(&c->op[j]);
            if (st == dnnl_unimplemented) {
                snprintf(why, why_sz, "%s: %s: %s", op_name[i], what, st_str(st));
                return 1;
            }
            return dhf_err_set("dnnl_conv %s %s: %s: %s", op_name[i], c->shape, what, st_str(st));
        }
        const char *impl = pd_impl(c->op[i].pd);
        if (strncmp(impl, "ref", 3) == 0) {
            snprintf(why, why_sz, "%s: only oneDNN's reference implementation (%s)", op_name[i],
                     impl);
            for (int j = 0; j < OP_COUNT; j++)
                op_destroy(&c->op[j]);
            return 1;
        }
    }
    return 0;
}

/* The primitive of op i, and its weights buffer and reorder when the pd's weights
 * layout is not OIHW. */
static int make_prims(dhf_dconv *c, int i)
{
    dconv_op *o = &c->op[i];
    dnnl_status_t st = dnnl_primitive_create(&o->prim, o->pd);
    if (st != dnnl_success) {
        o->prim = NULL;
        return dhf_err_set("dnnl_conv %s %s: dnnl_primitive_create: %s", op_name[i], c->shape,
                           st_str(st));
    }
    /* activations must be exactly the blocked layout the caller uses */
    const dnnl_query_t sq = i == OP_FWD || i == OP_BWD_W ? dnnl_query_src_md
                                                         : dnnl_query_diff_src_md;
    const dnnl_query_t dq = i == OP_FWD ? dnnl_query_dst_md : dnnl_query_diff_dst_md;
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(o->pd, sq, 0);
    const dnnl_memory_desc_t *dmd = dnnl_primitive_desc_query_md(o->pd, dq, 0);
    if (!smd || !dmd || !dnnl_memory_desc_equal(smd, &c->src_md) ||
        !dnnl_memory_desc_equal(dmd, &c->dst_md))
        return dhf_err_set("dnnl_conv %s %s: oneDNN changed the activation layout", op_name[i],
                           c->shape);

    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(
        o->pd, i == OP_BWD_W ? dnnl_query_diff_weights_md : dnnl_query_weights_md, 0);
    if (!wmd)
        return dhf_err_set("dnnl_conv %s %s: weights memory desc query failed", op_name[i],
                           c->shape);
    if (dnnl_memory_desc_equal(wmd, &c->w_md))
        return 0; /* plain OIHW: the caller's buffer is used directly */

    st = dnnl_memory_create(&o->w_int, wmd, g_engine, DNNL_MEMORY_ALLOCATE);
    if (st != dnnl_success) {
        o->w_int = NULL;
        return dhf_err_set("dnnl_conv %s %s: weights buffer: %s", op_name[i], c->shape,
                           st_str(st));
    }
    const dnnl_memory_desc_t *from = i == OP_BWD_W ? wmd : &c->w_md;
    const dnnl_memory_desc_t *to = i == OP_BWD_W ? &c->w_md : wmd;
    st = dnnl_reorder_primitive_desc_create(&o->r_pd, from, g_engine, to, g_engine, NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&o->reorder, o->r_pd);
    else
        o->r_pd = NULL;
    if (st != dnnl_success) {
        o->reorder = NULL;
        return dhf_err_set("dnnl_conv %s %s: weights reorder: %s", op_name[i], c->shape,
                           st_str(st));
    }
    return 0;
}

int dhf_dconv_create(dhf_dconv **out, int N, int C, int O, int H, int W, int k,
                     bool need_bwd_data, dhf_dconv_algo algo)
{
    if (!out)
        return dhf_err_set("dnnl_conv create: out is NULL");
    *out = NULL;
    if (N < 1 || C < 1 || O < 1 || H < 1 || W < 1 || (k != 1 && k != 3))
        return dhf_err_set("dnnl_conv create: bad shape N=%d C=%d O=%d H=%d W=%d k=%d "
                           "(all >= 1, k 1 or 3)", N, C, O, H, W, k);
    if (algo != DHF_DCONV_AUTO && algo != DHF_DCONV_DIRECT && algo != DHF_DCONV_WINOGRAD)
        return dhf_err_set("dnnl_conv create: bad algorithm %d", (int)algo);
    if (dhf_dnnl_env("dnnl_conv", &g_engine, &g_stream) != 0)
        return -1;

    dhf_dconv *c = calloc(1, sizeof *c);
    if (!c)
        return dhf_err_set("dnnl_conv create: out of memory");
    c->N = N, c->C = C, c->O = O, c->H = H, c->W = W, c->k = k;
    c->has_bwd_d = need_bwd_data;
    snprintf(c->shape, sizeof c->shape, "N=%d C=%d O=%d H=%d W=%d k=%d", N, C, O, H, W, k);

    const dnnl_dims_t sdims = {N, C, H, W}, ddims = {N, O, H, W}, wdims = {O, C, k, k};
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&c->src_md, 4, sdims, dnnl_f32, dnnl_aBcd16b);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_tag(&c->dst_md, 4, ddims, dnnl_f32, dnnl_aBcd16b);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_tag(&c->w_md, 4, wdims, dnnl_f32, dnnl_oihw);
    if (st == dnnl_success)
        st = dnnl_memory_create(&c->m_src, &c->src_md, g_engine, DNNL_MEMORY_NONE);
    if (st == dnnl_success)
        st = dnnl_memory_create(&c->m_dst, &c->dst_md, g_engine, DNNL_MEMORY_NONE);
    if (st == dnnl_success)
        st = dnnl_memory_create(&c->m_w, &c->w_md, g_engine, DNNL_MEMORY_NONE);
    if (st != dnnl_success) {
        dhf_err_set("dnnl_conv create %s: memory descs/objects: %s", c->shape, st_str(st));
        dhf_dconv_free(c);
        return -1;
    }

    /* winograd first where asked for (3x3 only), direct as the fallback */
    dnnl_alg_kind_t algs[2];
    int nalg = 0;
    if (k == 3 && algo != DHF_DCONV_DIRECT)
        algs[nalg++] = dnnl_convolution_winograd;
    algs[nalg++] = dnnl_convolution_direct;
    char why[2][256] = {"", ""};
    int r = 1, a;
    for (a = 0; a < nalg && r == 1; a++)
        r = make_pds(c, algs[a], why[a], sizeof why[a]);
    if (r != 0) {
        if (r == 1)
            dhf_err_set("dnnl_conv create %s: no usable oneDNN convolution (a reference "
                        "implementation would take hours)%s%s; direct: %s", c->shape,
                        nalg > 1 ? "; winograd: " : "", nalg > 1 ? why[0] : "", why[nalg - 1]);
        dhf_dconv_free(c);
        return -1;
    }
    for (int i = 0; i < OP_COUNT; i++) {
        if (!c->op[i].pd)
            continue;
        if (make_prims(c, i) != 0) {
            dhf_dconv_free(c);
            return -1;
        }
    }
    snprintf(c->impl, sizeof c->impl, "fwd %s, bwd_d %s, bwd_w %s", pd_impl(c->op[OP_FWD].pd),
             c->op[OP_BWD_D].pd ? pd_impl(c->op[OP_BWD_D].pd) : "(none)",
             pd_impl(c->op[OP_BWD_W].pd));
    *out = c;
    return 0;
}

/* ---- execution ------------------------------------------------------------ */

static int set_handle(dhf_dconv *c, int i, dnnl_memory_t m, const float *p, const char *arg)
{
    if (!p)
        return dhf_err_set("dnnl_conv %s %s: %s is NULL", op_name[i], c->shape, arg);
    /* oneDNN (re)writes zeros into the padding channels of a padded layout here */
    dnnl_status_t st = dnnl_memory_set_data_handle(m, (void *)p);
    if (st != dnnl_success)
        return dhf_err_set("dnnl_conv %s %s: dnnl_memory_set_data_handle(%s): %s", op_name[i],
                           c->shape, arg, st_str(st));
    return 0;
}

static int exec(dhf_dconv *c, int i, dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args,
                const char *what)
{
    dnnl_status_t st = dnnl_primitive_execute(p, g_stream, nargs, args);
    if (st == dnnl_success)
        st = dnnl_stream_wait(g_stream);
    if (st != dnnl_success)
        return dhf_err_set("dnnl_conv %s %s: %s: %s", op_name[i], c->shape, what, st_str(st));
    return 0;
}

/* Weights argument for op i: the caller's OIHW buffer, reordered into the op's
 * layout when that differs. */
static int weights_in(dhf_dconv *c, int i, const float *w, dnnl_memory_t *wm)
{
    dconv_op *o = &c->op[i];
    if (set_handle(c, i, c->m_w, w, "w") != 0)
        return -1;
    if (!o->w_int) {
        *wm = c->m_w;
        return 0;
    }
    const dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, c->m_w}, {DNNL_ARG_TO, o->w_int}};
    if (exec(c, i, o->reorder, 2, args, "weights reorder") != 0)
        return -1;
    *wm = o->w_int;
    return 0;
}

int dhf_dconv_forward(dhf_dconv *c, const float *src, const float *w, float *dst)
{
    if (!c)
        return dhf_err_set("dnnl_conv forward: NULL conv");
    dnnl_memory_t wm;
    if (set_handle(c, OP_FWD, c->m_src, src, "src") != 0 ||
        set_handle(c, OP_FWD, c->m_dst, dst, "dst") != 0 || weights_in(c, OP_FWD, w, &wm) != 0)
        return -1;
    const dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_SRC, c->m_src}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, c->m_dst}};
    return exec(c, OP_FWD, c->op[OP_FWD].prim, 3, args, "dnnl_primitive_execute");
}

int dhf_dconv_backward_data(dhf_dconv *c, const float *ddst, const float *w, float *dsrc)
{
    if (!c)
        return dhf_err_set("dnnl_conv backward_data: NULL conv");
    if (!c->op[OP_BWD_D].prim)
        return dhf_err_set("dnnl_conv bwd_d %s: created with need_bwd_data = false", c->shape);
    dnnl_memory_t wm;
    if (set_handle(c, OP_BWD_D, c->m_dst, ddst, "ddst") != 0 ||
        set_handle(c, OP_BWD_D, c->m_src, dsrc, "dsrc") != 0 ||
        weights_in(c, OP_BWD_D, w, &wm) != 0)
        return -1;
    const dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_DIFF_DST, c->m_dst}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, c->m_src}};
    return exec(c, OP_BWD_D, c->op[OP_BWD_D].prim, 3, args, "dnnl_primitive_execute");
}

int dhf_dconv_backward_weights(dhf_dconv *c, const float *src, const float *ddst, float *dw)
{
    if (!c)
        return dhf_err_set("dnnl_conv backward_weights: NULL conv");
    dconv_op *o = &c->op[OP_BWD_W];
    if (set_handle(c, OP_BWD_W, c->m_src, src, "src") != 0 ||
        set_handle(c, OP_BWD_W, c->m_dst, ddst, "ddst") != 0 ||
        set_handle(c, OP_BWD_W, c->m_w, dw, "dw") != 0)
        return -1;
    const dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, c->m_src},
                                     {DNNL_ARG_DIFF_DST, c->m_dst},
                                     {DNNL_ARG_DIFF_WEIGHTS, o->w_int ? o->w_int : c->m_w}};
    if (exec(c, OP_BWD_W, o->prim, 3, args, "dnnl_primitive_execute") != 0)
        return -1;
    if (!o->w_int)
        return 0;
    const dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, o->w_int}, {DNNL_ARG_TO, c->m_w}};
    return exec(c, OP_BWD_W, o->reorder, 2, rargs, "weights reorder");
}

#endif /* DHF_HAVE_DNNL */
