/* attention.c — chunked multi-head attention core (see attention.h). */
#include "extract/attention.h"

#include <stdint.h>

#include "core/error.h"
#include "engine/attention_rows.h"
#include "extract/nn_layers.h"
#include "extract/unet_kernels.h"

#define DEFAULT_CHUNK_BYTES ((size_t)8 << 20)

static size_t g_chunk_bytes = DEFAULT_CHUNK_BYTES;

void dhf_attention_set_chunk_bytes(size_t bytes)
{
    g_chunk_bytes = bytes ? bytes : DEFAULT_CHUNK_BYTES;
}

size_t dhf_attention_chunk_bytes(void) { return g_chunk_bytes; }

/* [B, N, H*d] -> [B*H, N, d] (a copy unless H == 1). */
static int split_heads(dhf_tensor x, int64_t B, int64_t N, int64_t H, int64_t d,
                       dhf_tensor *out)
{
    int rc = 0;
    dhf_tensor v4 = NULL, perm = NULL;
    if (H == 1) {
        int64_t s3[3] = {B, N, d};
        DHF_SHIM(dhf_reshape(x, s3, 3, out));
        return 0;
    }
    int64_t s4[4] = {B, N, H, d}, p4[4] = {0, 2, 1, 3}, s3[3] = {B * H, N, d};
    DHF_SHIM(dhf_view(x, s4, 4, &v4));
    DHF_SHIM(dhf_permute(v4, p4, 4, &perm));
    DHF_SHIM(dhf_reshape(perm, s3, 3, out));
done:
    dhf_free(v4);
    dhf_free(perm);
    return rc;
}

/* [B*H, N, d] -> [B, N, H*d]. */
static int merge_heads(dhf_tensor x, int64_t B, int64_t N, int64_t H, int64_t d,
                       dhf_tensor *out)
{
    int rc = 0;
    dhf_tensor v4 = NULL, perm = NULL;
    int64_t s3[3] = {B, N, H * d};
    if (H == 1) {
        DHF_SHIM(dhf_reshape(x, s3, 3, out));
        return 0;
    }
    int64_t s4[4] = {B, H, N, d}, p4[4] = {0, 2, 1, 3};
    DHF_SHIM(dhf_view(x, s4, 4, &v4));
    DHF_SHIM(dhf_permute(v4, p4, 4, &perm));
    DHF_SHIM(dhf_reshape(perm, s3, 3, out));
done:
    dhf_free(v4);
    dhf_free(perm);
    return rc;
}

int dhf_attention_core(dhf_tensor q, dhf_tensor k, dhf_tensor v, int heads, double scale,
                       bool causal, dhf_tensor *out)
{
    if (dhf_ndim(q) != 3 || dhf_ndim(k) != 3 || dhf_ndim(v) != 3)
        return dhf_err_set("attention: q, k, v must be [B, tokens, channels]");
    int64_t B = dhf_size(q, 0), N = dhf_size(q, 1), C = dhf_size(q, 2);
    int64_t M = dhf_size(k, 1), Cv = dhf_size(v, 2);
    if (heads <= 0 || C % heads != 0 || Cv % heads != 0)
        return dhf_err_set("attention: %lld query channels / %lld value channels cannot be "
                           "split into %d heads", (long long)C, (long long)Cv, heads);
    if (dhf_size(k, 0) != B || dhf_size(v, 0) != B || dhf_size(k, 2) != C ||
        dhf_size(v, 1) != M)
        return dhf_err_set("attention: k/v shapes do not match q");
    if (causal && N != M)
        return dhf_err_set("attention: a causal mask needs as many queries as keys");
    int64_t H = heads, d = C / H, dv = Cv / H, BH = B * H;

    int rc = 0;
    dhf_tensor qh = NULL, kh = NULL, vh = NULL, kt = NULL, o = NULL, merged = NULL;
    dhf_scope_begin();
    DHF_CHECK(split_heads(q, B, N, H, d, &qh));
    if (scale != 1.0) {
        /* (scale q) k^T instead of scale (q k^T): one pass over the [BH, N, d] queries
         * instead of over the [BH, N, M] scores (differs by float rounding only) */
        dhf_tensor qs = NULL;
        DHF_SHIM(dhf_mul_scalar(qh, scale, &qs));
        qh = qs;
    }
    DHF_CHECK(split_heads(k, B, M, H, d, &kh));
    DHF_CHECK(split_heads(v, B, M, H, dv, &vh));
    {
        /* [BH, d, M] made contiguous once: every query chunk's product then reads plain
         * rows (oneDNN's fast kernels want them; a copy of M*d per head is nothing next
         * to the N*M*d multiply-adds) */
        dhf_tensor ktv = NULL;
        DHF_SHIM(dhf_transpose(kh, 1, 2, &ktv));
        DHF_SHIM(dhf_contiguous(ktv, &kt));
    }

    if (!causal && dhf_kern_fast(qh) && dhf_get_dtype(kt) == dhf_get_dtype(qh) &&
        dhf_get_dtype(vh) == dhf_get_dtype(qh)) {
        /* the oneDNN path: blocks of query rows per head, the softmax in the same pass
         * over a block that stays in cache (engine/attention_rows.h) */
        dhf_tensor qc = NULL, vc = NULL;
        int64_t os[3] = {BH, N, dv};
        DHF_SHIM(dhf_contiguous(qh, &qc));
        DHF_SHIM(dhf_contiguous(vh, &vc));
        DHF_SHIM(dhf_empty(dhf_get_dtype(q), dhf_get_device(q), os, 3, &o));
        dhf_attn_shape as = {.heads = BH, .N = N, .M = M, .d = d, .dv = dv,
                             .dtype = dhf_get_dtype(q) == DHF_BF16 ? DHF_DMM_BF16 : DHF_DMM_F32,
                             .block_bytes = g_chunk_bytes};
        if (dhf_attn_rows_forward(&as, dhf_data_ptr(qc), dhf_data_ptr(kt), dhf_data_ptr(vc),
                                  dhf_data_ptr(o)) == 0) {
            dhf_kern_count_attention();
            goto merge;
        }
        dhf_err_clear();   /* no oneDNN kernel for these shapes: the products below */
        dhf_free(o);
        o = NULL;
    }
    size_t elem = dhf_dtype_size(dhf_get_dtype(q));
    size_t row_bytes = (size_t)BH * (size_t)M * (elem ? elem : 4);
    int64_t rows = (int64_t)(g_chunk_bytes / (row_bytes ? row_bytes : 1));
    if (rows < 1)
        rows = 1;
    if (causal || rows >= N) {
        dhf_tensor sc = NULL;
        DHF_CHECK(dhf_kern_bmm(qh, kt, &sc));           /* [BH, N, M] */
        if (causal)
            DHF_SHIM(dhf_causal_mask_(sc));
        DHF_SHIM(dhf_softmax_(sc, -1));
        DHF_CHECK(dhf_kern_bmm(sc, vh, &o));            /* [BH, N, dv] */
        dhf_free(sc);
    } else {
        int64_t os[3] = {BH, N, dv};
        DHF_SHIM(dhf_empty(dhf_get_dtype(q), dhf_get_device(q), os, 3, &o));
        for (int64_t s = 0; s < N; s += rows) {
            int64_t len = N - s < rows ? N - s : rows;
            dhf_tensor qc = NULL, sc = NULL, oc = NULL;
            DHF_SHIM(dhf_narrow(qh, 1, s, len, &qc));
            DHF_CHECK(dhf_kern_bmm(qc, kt, &sc));       /* [BH, len, M] */
            DHF_SHIM(dhf_softmax_(sc, -1));
            DHF_SHIM(dhf_narrow(o, 1, s, len, &oc));
            DHF_CHECK(dhf_kern_bmm_out(oc, sc, vh));
            dhf_free(qc);
            dhf_free(sc);
            dhf_free(oc);
        }
    }
merge:
    DHF_CHECK(merge_heads(o, B, N, H, dv, &merged));
    *out = merged;
done:;
    dhf_tensor *outs[1] = {out};
    return dhf_nn_scope_finish(rc, outs, rc == 0 ? 1 : 0);
}
