/* dnnl_matmul.c — oneDNN matmul primitives by shape (dnnl_matmul.h): a fixed-size
 * open-addressing table of primitive descriptor + primitive per dhf_dmm_shape,
 * filled on first use under a mutex, executed on dnnl_env.h's stream with memory
 * objects wrapping the caller's buffers. Written against oneDNN 2.x's C API. */
#include "engine/dnnl_matmul.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"

#ifndef DHF_HAVE_DNNL

bool dhf_dmm_available(void) { return false; }

int dhf_dmm_run(const dhf_dmm_shape *s, const void *a, const void *b, const void *bias,
                void *c)
{
    (void)s, (void)a, (void)b, (void)bias, (void)c;
    return dhf_err_set("dnnl_matmul: dhf built without oneDNN (libdnnl-dev)");
}

const char *dhf_dmm_last_impl(void) { return ""; }

#else /* DHF_HAVE_DNNL */

#include <dnnl.h>
#include <dnnl_debug.h>
#include <pthread.h>

#include "engine/dnnl_env.h"

/* distinct matmul shapes of one SD UNet call: a few dozen; the table never evicts */
#define TABLE_SLOTS 1024

typedef struct {
    bool used;
    dhf_dmm_shape key;
    dnnl_memory_desc_t a_md, b_md, bias_md, c_md;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
} entry;

static entry g_table[TABLE_SLOTS];
static int g_used;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_last_impl[128];

bool dhf_dmm_available(void) { return true; }

const char *dhf_dmm_last_impl(void) { return g_last_impl; }

static char *shape_str(const dhf_dmm_shape *s, char *buf, size_t n)
{
    snprintf(buf, n, "[%lld x %lld x %lld] x [%lld x %lld] %s%s", (long long)s->batch,
             (long long)s->M, (long long)s->K, (long long)s->K, (long long)s->N,
             s->dtype == DHF_DMM_BF16 ? "bf16" : "f32", s->bias ? " + bias" : "");
    return buf;
}

static uint64_t shape_hash(const dhf_dmm_shape *s)
{
    const int64_t v[] = {s->batch, s->M, s->K, s->N, s->a_stride[0], s->a_stride[1],
                         s->a_stride[2], s->b_stride[0], s->b_stride[1], s->b_stride[2],
                         s->c_stride[0], s->c_stride[1], s->c_stride[2], s->dtype, s->bias};
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        h = (h ^ (uint64_t)v[i]) * 1099511628211ull;
    return h;
}

static bool same_shape(const dhf_dmm_shape *a, const dhf_dmm_shape *b)
{
    return a->batch == b->batch && a->M == b->M && a->K == b->K && a->N == b->N &&
           !memcmp(a->a_stride, b->a_stride, sizeof a->a_stride) &&
           !memcmp(a->b_stride, b->b_stride, sizeof a->b_stride) &&
           !memcmp(a->c_stride, b->c_stride, sizeof a->c_stride) && a->dtype == b->dtype &&
           a->bias == b->bias;
}

/* Fills e (key already set) with its descriptors and primitive. */
static int make_entry(entry *e, dnnl_engine_t eng)
{
    const dhf_dmm_shape *s = &e->key;
    dnnl_data_type_t dt = s->dtype == DHF_DMM_BF16 ? dnnl_bf16 : dnnl_f32;
    const dnnl_dims_t ad = {s->batch, s->M, s->K}, bd = {s->batch, s->K, s->N},
                      cd = {s->batch, s->M, s->N}, biasd = {1, 1, s->N};
    const dnnl_dims_t as = {s->a_stride[0], s->a_stride[1], s->a_stride[2]},
                      bs = {s->b_stride[0], s->b_stride[1], s->b_stride[2]},
                      cs = {s->c_stride[0], s->c_stride[1], s->c_stride[2]},
                      biass = {s->N, s->N, 1};
    char sh[160];
    dnnl_status_t st = dnnl_memory_desc_init_by_strides(&e->a_md, 3, ad, dt, as);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_strides(&e->b_md, 3, bd, dt, bs);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_strides(&e->c_md, 3, cd, dt, cs);
    if (st == dnnl_success && s->bias)
        st = dnnl_memory_desc_init_by_strides(&e->bias_md, 3, biasd, dt, biass);
    dnnl_matmul_desc_t d;
    if (st == dnnl_success)
        st = dnnl_matmul_desc_init(&d, &e->a_md, &e->b_md, s->bias ? &e->bias_md : NULL,
                                   &e->c_md);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&e->pd, &d, NULL, eng, NULL);
    if (st != dnnl_success) {
        e->pd = NULL;
        return dhf_err_set("dnnl_matmul %s: no oneDNN matmul: %s",
                           shape_str(s, sh, sizeof sh), dnnl_status2str(st));
    }
    const char *impl = NULL;
    dnnl_primitive_desc_query(e->pd, dnnl_query_impl_info_str, 0, &impl);
    if (!impl || strncmp(impl, "ref", 3) == 0) {
        dnnl_primitive_desc_destroy(e->pd);
        e->pd = NULL;
        return dhf_err_set("dnnl_matmul %s: only oneDNN's reference implementation (%s)",
                           shape_str(s, sh, sizeof sh), impl ? impl : "?");
    }
    snprintf(g_last_impl, sizeof g_last_impl, "%s", impl);
    st = dnnl_primitive_create(&e->prim, e->pd);
    if (st != dnnl_success) {
        dnnl_primitive_desc_destroy(e->pd);
        e->pd = NULL;
        e->prim = NULL;
        return dhf_err_set("dnnl_matmul %s: dnnl_primitive_create: %s",
                           shape_str(s, sh, sizeof sh), dnnl_status2str(st));
    }
    return 0;
}

/* The table's entry for s, made on first use; NULL with the error set. */
static entry *lookup(const dhf_dmm_shape *s, dnnl_engine_t eng)
{
    pthread_mutex_lock(&g_mu);
    entry *found = NULL;
    uint64_t h = shape_hash(s);
    for (int i = 0; i < TABLE_SLOTS; i++) {
        entry *e = &g_table[(h + (uint64_t)i) % TABLE_SLOTS];
        if (e->used && same_shape(&e->key, s)) {
            found = e;
            break;
        }
        if (!e->used) {
            if (g_used >= TABLE_SLOTS * 3 / 4) {
                dhf_err_set("dnnl_matmul: more than %d distinct shapes", TABLE_SLOTS * 3 / 4);
                break;
            }
            e->key = *s;
            if (make_entry(e, eng) != 0)
                break;
            e->used = true;
            g_used++;
            found = e;
            break;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return found;
}

int dhf_dmm_run(const dhf_dmm_shape *s, const void *a, const void *b, const void *bias,
                void *c)
{
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    if (dhf_dnnl_env("dnnl_matmul", &eng, &strm) != 0)
        return -1;
    if (s->batch < 1 || s->M < 1 || s->K < 1 || s->N < 1 || (s->bias && !bias))
        return dhf_err_set("dnnl_matmul: bad shape or missing bias");
    entry *e = lookup(s, eng);
    if (!e)
        return -1;
    dnnl_memory_t m[4] = {NULL, NULL, NULL, NULL};
    dnnl_status_t st = dnnl_memory_create(&m[0], &e->a_md, eng, (void *)a);
    if (st == dnnl_success)
        st = dnnl_memory_create(&m[1], &e->b_md, eng, (void *)b);
    if (st == dnnl_success)
        st = dnnl_memory_create(&m[2], &e->c_md, eng, c);
    if (st == dnnl_success && s->bias)
        st = dnnl_memory_create(&m[3], &e->bias_md, eng, (void *)bias);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, m[0]}, {DNNL_ARG_WEIGHTS, m[1]},
                                   {DNNL_ARG_DST, m[2]}, {DNNL_ARG_BIAS, m[3]}};
        st = dnnl_primitive_execute(e->prim, strm, s->bias ? 4 : 3, args);
        if (st == dnnl_success)
            st = dnnl_stream_wait(strm);
    }
    for (int i = 0; i < 4; i++)
        if (m[i])
            dnnl_memory_destroy(m[i]);
    if (st != dnnl_success) {
        char sh[160];
        return dhf_err_set("dnnl_matmul %s: %s", shape_str(s, sh, sizeof sh),
                           dnnl_status2str(st));
    }
    return 0;
}

#endif /* DHF_HAVE_DNNL */
