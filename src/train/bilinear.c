/* bilinear.c — bilinear weight matrices and resizing by matrix products (bilinear.h). */
#include "train/bilinear.h"

#include <stdlib.h>
#include <string.h>

#include "core/torch/shim_try.h"

void dhf_bilinear_matrix(int64_t in, int64_t out, double *u)
{
    /* PyTorch: scale = in / out in float, src = max(0, scale * (d + 0.5) - 0.5),
     * i0 = floor(src), i1 = min(i0 + 1, in - 1), weights (1 - lambda, lambda) */
    const float scale = (float)in / (float)out;
    memset(u, 0, sizeof(double) * (size_t)(in * out));
    for (int64_t d = 0; d < out; d++) {
        float src = (float)(scale * ((double)d + 0.5) - 0.5);
        if (src < 0)
            src = 0;
        int64_t i0 = (int64_t)src;
        int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
        float lam1 = src - (float)i0;
        u[d * in + i0] += 1.0f - lam1;
        u[d * in + i1] += lam1;
    }
}

/* NEW [in, out] tensor holding U^T. */
static int transposed_weights(int64_t in, int64_t out, dhf_tensor *t)
{
    double *u = malloc(sizeof(double) * (size_t)(in * out));
    float *ut = malloc(sizeof(float) * (size_t)(in * out));
    int rc = -1;
    if (!u || !ut) {
        dhf_err_set("bilinear weights: out of memory");
        goto done;
    }
    dhf_bilinear_matrix(in, out, u);
    for (int64_t d = 0; d < out; d++)
        for (int64_t i = 0; i < in; i++)
            ut[i * out + d] = (float)u[d * in + i];
    int64_t shape[2] = { in, out };
    if (dhf_from_buffer(ut, DHF_F32, shape, 2, t) != DHF_OK)
        dhf_err_set("bilinear weights: %s", dhf_last_error());
    else
        rc = 0;
done:
    free(u);
    free(ut);
    return rc;
}

int dhf_bilinear_resize_mm(dhf_tensor x, int64_t R, dhf_tensor *out)
{
    if (dhf_ndim(x) != 4)
        return dhf_err_set("bilinear resize: expected [N, C, h, w], got %d dims", dhf_ndim(x));
    const int64_t N = dhf_size(x, 0), C = dhf_size(x, 1), h = dhf_size(x, 2), w = dhf_size(x, 3);
    const int64_t M = N * C;
    dhf_tensor uyt = NULL, uxt = NULL, xt = NULL, xt2 = NULL, z = NULL, z3 = NULL, zt = NULL;
    dhf_tensor zt2 = NULL, y = NULL, y4 = NULL;
    int64_t perm[4] = { 0, 1, 3, 2 }, s_xt[2] = { M * w, h }, s_z[3] = { M, w, R };
    int64_t s_zt[2] = { M * R, w }, s_y[4] = { N, C, R, R };
    dhf_scope_begin();
    if (transposed_weights(h, R, &uyt) || transposed_weights(w, R, &uxt))
        goto fail_msg;
    /* (Uy X)^T = X^T Uy^T: [M*w, h] @ [h, R] -> [M, w, R] */
    DHF_TRY(dhf_permute(x, perm, 4, &xt), "bilinear resize: x^T");
    DHF_TRY(dhf_reshape(xt, s_xt, 2, &xt2), "bilinear resize: x^T");
    DHF_TRY(dhf_matmul(xt2, uyt, &z), "bilinear resize: rows");
    /* Y = (Uy X) Ux^T: [M*R, w] @ [w, R] -> [M, R, R] */
    DHF_TRY(dhf_view(z, s_z, 3, &z3), "bilinear resize: rows");
    DHF_TRY(dhf_transpose(z3, 1, 2, &zt), "bilinear resize: rows^T");
    DHF_TRY(dhf_reshape(zt, s_zt, 2, &zt2), "bilinear resize: rows^T");
    DHF_TRY(dhf_matmul(zt2, uxt, &y), "bilinear resize: columns");
    DHF_TRY(dhf_view(y, s_y, 4, &y4), "bilinear resize: [N, C, R, R]");
    DHF_TRY(dhf_keep(y4), "bilinear resize");
    dhf_scope_end();
    *out = y4;
    return 0;
fail:
fail_msg:
    dhf_scope_end();
    return -1;
}
