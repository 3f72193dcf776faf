/* loss.c — CLIP symmetric cross-entropy on descriptor grids and the keypoint ->
 * grid-index mapping (see loss.h). */
#include "train/loss.h"

#include <math.h>
#include <string.h>

#include "core/torch/shim_try.h"

int64_t dhf_grid_round(double v, int R)
{
    double hi = (double)(R - 1);
    if (!(v >= 0.0))            /* also maps NaN to 0 rather than to garbage */
        v = 0.0;
    if (v > hi)
        v = hi;
    /* rint rounds ties to even under the default FE_TONEAREST mode, like np.round */
    return (int64_t)rint(v);
}

int64_t dhf_grid_index(double x, double y, int R)
{
    return dhf_grid_round(y, R) * R + dhf_grid_round(x, R);
}

double dhf_pixel_to_grid(double v, double size, int R)
{
    return v * (double)R / size;
}

int dhf_keypoints_to_indices(const float *src_xy, const float *trg_xy, const bool *src_vis,
                             const bool *trg_vis, int n, int R, int64_t *src_idx,
                             int64_t *trg_idx)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        if ((src_vis && !src_vis[i]) || (trg_vis && !trg_vis[i]))
            continue;
        src_idx[k] = dhf_grid_index(src_xy[2 * i], src_xy[2 * i + 1], R);
        trg_idx[k] = dhf_grid_index(trg_xy[2 * i], trg_xy[2 * i + 1], R);
        k++;
    }
    return k;
}

int dhf_keypoints_px_to_indices(const float *src_xy, double src_w, double src_h,
                                const float *trg_xy, double trg_w, double trg_h,
                                const bool *src_vis, const bool *trg_vis, int n, int R,
                                int64_t *src_idx, int64_t *trg_idx)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        if ((src_vis && !src_vis[i]) || (trg_vis && !trg_vis[i]))
            continue;
        src_idx[k] = dhf_grid_index(dhf_pixel_to_grid(src_xy[2 * i], src_w, R),
                                    dhf_pixel_to_grid(src_xy[2 * i + 1], src_h, R), R);
        trg_idx[k] = dhf_grid_index(dhf_pixel_to_grid(trg_xy[2 * i], trg_w, R),
                                    dhf_pixel_to_grid(trg_xy[2 * i + 1], trg_h, R), R);
        k++;
    }
    return k;
}

void dhf_clip_loss_result_free(dhf_clip_loss_result *res)
{
    if (!res)
        return;
    dhf_free(res->loss);
    dhf_free(res->loss_src);
    dhf_free(res->loss_trg);
    dhf_free(res->logits_src_rows);
    dhf_free(res->logits_trg_rows);
    memset(res, 0, sizeof *res);
}

/* [P, R, R] or [1, P, R, R] -> [P, R*R] with every column (pixel) of unit L2 norm. */
static int normalised_columns(dhf_tensor desc, int64_t *P, int64_t *RR, dhf_tensor *out)
{
    int nd = dhf_ndim(desc);
    if (!(nd == 3 || (nd == 4 && dhf_size(desc, 0) == 1)) ||
        dhf_size(desc, -1) != dhf_size(desc, -2)) {
        char d[128];
        dhf_describe(desc, d, sizeof d);
        return dhf_err_set("clip loss: expected a descriptor [P, R, R], got %s", d);
    }
    *P = dhf_size(desc, -3);
    *RR = dhf_size(desc, -1) * dhf_size(desc, -2);
    int64_t shape[2] = { *P, *RR };
    dhf_tensor flat = NULL;
    DHF_TRY(dhf_reshape(desc, shape, 2, &flat), "clip loss: descriptor [P, R*R]");
    DHF_TRY(dhf_l2_normalize(flat, 0, 0.0, out), "clip loss: L2 normalisation");
    return 0;
fail:
    return -1;
}

/* [K, R*R] = (1/0.07) * rows(idx) of `rows_from`^T times `cols` ([P, R*R] each). */
static int logit_rows(dhf_tensor rows_from, dhf_tensor cols, dhf_tensor idx, dhf_tensor *out)
{
    dhf_tensor picked = NULL, kp = NULL, prod = NULL;
    DHF_TRY(dhf_index_select(rows_from, 1, idx, &picked), "clip loss: keypoint rows");
    DHF_TRY(dhf_transpose(picked, 0, 1, &kp), "clip loss: keypoint rows");   /* [K, P] */
    DHF_TRY(dhf_matmul(kp, cols, &prod), "clip loss: similarities");        /* [K, R*R] */
    DHF_TRY(dhf_mul_scalar(prod, 1.0 / DHF_CLIP_TEMPERATURE, out), "clip loss: scale");
    return 0;
fail:
    return -1;
}

int dhf_clip_loss(dhf_tensor desc_src, dhf_tensor desc_trg, const int64_t *src_idx,
                  const int64_t *trg_idx, int K, dhf_clip_loss_result *res)
{
    memset(res, 0, sizeof *res);
    int64_t P = 0, RR = 0, P2 = 0, RR2 = 0;
    dhf_tensor an = NULL, bn = NULL, si = NULL, ti = NULL, sum = NULL;
    dhf_clip_loss_result r = { 0 };
    if (K < 1)
        return dhf_err_set("clip loss: no keypoint visible in both images (K = %d)", K);
    dhf_scope_begin();
    if (normalised_columns(desc_src, &P, &RR, &an) || normalised_columns(desc_trg, &P2, &RR2, &bn))
        goto fail;
    if (P != P2 || RR != RR2) {
        dhf_err_set("clip loss: source and target descriptors differ in shape (P %lld vs %lld, "
                    "R*R %lld vs %lld)", (long long)P, (long long)P2, (long long)RR,
                    (long long)RR2);
        goto fail;
    }
    for (int k = 0; k < K; k++)
        if (src_idx[k] < 0 || src_idx[k] >= RR || trg_idx[k] < 0 || trg_idx[k] >= RR) {
            dhf_err_set("clip loss: keypoint %d: index (%lld, %lld) outside [0, %lld)", k,
                        (long long)src_idx[k], (long long)trg_idx[k], (long long)RR);
            goto fail;
        }
    int64_t k64 = K;
    DHF_TRY(dhf_from_buffer(src_idx, DHF_I64, &k64, 1, &si), "clip loss: source indices");
    DHF_TRY(dhf_from_buffer(trg_idx, DHF_I64, &k64, 1, &ti), "clip loss: target indices");
    dhf_device dev = dhf_get_device(desc_src);
    if (dev.type != DHF_CPU) { /* index_select and CE need the indices beside the logits */
        DHF_TRY(dhf_to(si, DHF_I64, dev, &si), "clip loss: source indices to the device");
        DHF_TRY(dhf_to(ti, DHF_I64, dev, &ti), "clip loss: target indices to the device");
    }
    if (logit_rows(an, bn, si, &r.logits_src_rows) || logit_rows(bn, an, ti, &r.logits_trg_rows))
        goto fail;
    DHF_TRY(dhf_cross_entropy(r.logits_src_rows, ti, &r.loss_src), "clip loss: CE (source rows)");
    DHF_TRY(dhf_cross_entropy(r.logits_trg_rows, si, &r.loss_trg), "clip loss: CE (target rows)");
    DHF_TRY(dhf_add(r.loss_src, r.loss_trg, &sum), "clip loss: sum");
    DHF_TRY(dhf_mul_scalar(sum, 0.5, &r.loss), "clip loss: mean of the two halves");
    DHF_TRY(dhf_keep(r.loss), "clip loss");
    DHF_TRY(dhf_keep(r.loss_src), "clip loss");
    DHF_TRY(dhf_keep(r.loss_trg), "clip loss");
    DHF_TRY(dhf_keep(r.logits_src_rows), "clip loss");
    DHF_TRY(dhf_keep(r.logits_trg_rows), "clip loss");
    dhf_scope_end();
    *res = r;
    return 0;
fail:
    /* handles not yet kept are released by the scope; kept ones would be the caller's,
     * but the keeps are the last calls, so a failure leaves none to free here */
    dhf_scope_end();
    return -1;
}
