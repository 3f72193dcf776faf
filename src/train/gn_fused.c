/* gn_fused.c — GroupNorm of an upsampled map at native resolution and GroupNorm
 * folded into a 1x1 convolution (see gn_fused.h for the algebra). */
#include "train/gn_fused.h"

#include <stdlib.h>
#include <string.h>

#include "train/bilinear.h"
#include "core/torch/shim_try.h"

/* For U [out][in]: column sums cs[in] and the Gram matrix M = U^T U [in][in] scaled. */
static int bilinear_moments(int64_t in, int64_t out, double *cs, double *m, double m_scale)
{
    double *u = malloc(sizeof(double) * (size_t)(in * out));
    if (!u)
        return dhf_err_set("bilinear moments: out of memory");
    dhf_bilinear_matrix(in, out, u);
    for (int64_t i = 0; i < in; i++) {
        cs[i] = 0;
        for (int64_t d = 0; d < out; d++)
            cs[i] += u[d * in + i];
        for (int64_t j = 0; j < in; j++) {
            double s = 0;
            for (int64_t d = 0; d < out; d++)
                s += u[d * in + i] * u[d * in + j];
            m[i * in + j] = s * m_scale;
        }
    }
    free(u);
    return 0;
}

static int f32_tensor(const double *v, const int64_t *shape, int nd, dhf_tensor *out)
{
    int64_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= shape[i];
    float *f = malloc(sizeof(float) * (size_t)n);
    if (!f)
        return dhf_err_set("out of memory (%lld floats)", (long long)n);
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)v[i];
    dhf_status st = dhf_from_buffer(f, DHF_F32, shape, nd, out);
    free(f);
    if (st != DHF_OK)
        return dhf_err_set("constant tensor: %s", dhf_last_error());
    return 0;
}

/* Runs in the caller's scope. */
/* Runs in the caller's scope. Autograd keeps two native-size maps (zc and My zc Mx)
 * besides the output: the affine coefficients are combined on [N, C]-sized tensors
 * before they touch a map. */
static int gn_upsampled_body(dhf_tensor z, int64_t R, int G, dhf_tensor gamma, dhf_tensor beta,
                             double eps, dhf_tensor mult, dhf_tensor *out)
{
    const int64_t N = dhf_size(z, 0), C = dhf_size(z, 1), h = dhf_size(z, 2), w = dhf_size(z, 3);
    const int64_t cg = C / G;
    double *cy = calloc((size_t)h, sizeof(double)), *cx = calloc((size_t)w, sizeof(double));
    double *my = calloc((size_t)(h * h), sizeof(double)), *mx = calloc((size_t)(w * w), sizeof(double));
    double *ws = calloc((size_t)(h * w), sizeof(double));
    dhf_tensor tws = NULL, tmy = NULL, tmx = NULL;
    int rc = -1;
    if (!cy || !cx || !my || !mx || !ws) {
        dhf_err_set("out of memory");
        goto done;
    }
    /* 1/R^2 of the mean and of the second moment folded into the constants */
    if (bilinear_moments(h, R, cy, my, 1.0 / ((double)R * (double)R)) ||
        bilinear_moments(w, R, cx, mx, 1.0))
        goto done;
    for (int64_t i = 0; i < h; i++)
        for (int64_t j = 0; j < w; j++)
            ws[i * w + j] = cy[i] * cx[j] / ((double)R * (double)R);
    int64_t s_ws[1] = { h * w }, s_my[2] = { h, h }, s_mx[2] = { w, w };
    if (f32_tensor(ws, s_ws, 1, &tws) || f32_tensor(my, s_my, 2, &tmy) ||
        f32_tensor(mx, s_mx, 2, &tmx))
        goto done;

    dhf_tensor zf = NULL, mc = NULL, mc3 = NULL, mu = NULL, mu5 = NULL, z5 = NULL, zc = NULL;
    dhf_tensor zc3 = NULL, p = NULL, pt = NULL, tt = NULL, t = NULL, q = NULL, q3 = NULL;
    dhf_tensor var = NULL, rstd = NULL, rstd3 = NULL, g3 = NULL, a = NULL, a5 = NULL;
    dhf_tensor b2 = NULL, bm = NULL, b5 = NULL, m2 = NULL, m3 = NULL, zn = NULL, y = NULL;
    int64_t s_zf[2] = { N * C, h * w }, s3[3] = { N, G, cg }, s5[5] = { N, G, cg, h, w };
    int64_t sg5[5] = { N, G, 1, 1, 1 }, sm[3] = { N * C, h, w }, sq[3] = { N, G, cg * h * w };
    int64_t sg3[3] = { N, G, 1 }, sgc[3] = { 1, G, cg }, sa5[5] = { N, G, cg, 1, 1 };
    int64_t s1c[2] = { 1, C }, sn1[2] = { N, 1 }, sn11[3] = { N, 1, 1 }, s4[4] = { N, C, h, w };
    /* mean of U z per (n, group): <colsum weights, z> per map, averaged over the group */
    DHF_TRY(dhf_reshape(z, s_zf, 2, &zf), "GN(up): maps");
    DHF_TRY(dhf_matmul(zf, tws, &mc), "GN(up): weighted means");          /* [N*C] */
    DHF_TRY(dhf_view(mc, s3, 3, &mc3), "GN(up): weighted means");
    DHF_TRY(dhf_mean_dim(mc3, 2, false, &mu), "GN(up): group means");      /* [N, G] */
    DHF_TRY(dhf_view(mu, sg5, 5, &mu5), "GN(up): group means");
    DHF_TRY(dhf_view(z, s5, 5, &z5), "GN(up): [N, G, C/G, h, w]");
    DHF_TRY(dhf_sub(z5, mu5, &zc), "GN(up): centre");
    /* variance of U zc: sum over (h, w) of zc * (My zc Mx), My symmetric */
    DHF_TRY(dhf_reshape(zc, sm, 3, &zc3), "GN(up): [N*C, h, w]");
    DHF_TRY(dhf_matmul(zc3, tmx, &p), "GN(up): zc Mx");
    DHF_TRY(dhf_transpose(p, 1, 2, &pt), "GN(up): (zc Mx)^T");
    DHF_TRY(dhf_matmul(pt, tmy, &tt), "GN(up): (My zc Mx)^T");
    DHF_TRY(dhf_transpose(tt, 1, 2, &t), "GN(up): My zc Mx");
    DHF_TRY(dhf_mul(zc3, t, &q), "GN(up): quadratic form");
    DHF_TRY(dhf_reshape(q, sq, 3, &q3), "GN(up): quadratic form");
    DHF_TRY(dhf_sum_dim(q3, 2, false, &var), "GN(up): variance");
    DHF_TRY(dhf_mul_scalar_(var, 1.0 / (double)cg), "GN(up): variance");
    DHF_TRY(dhf_add_scalar_(var, eps), "GN(up): variance + eps");
    DHF_TRY(dhf_rsqrt(var, &rstd), "GN(up): rstd");                       /* [N, G] */
    /* a[n, c] = rstd[n, g(c)] * gamma[c] (* mult[n]), b[n, c] = beta[c] (* mult[n]) */
    DHF_TRY(dhf_view(rstd, sg3, 3, &rstd3), "GN(up): rstd");
    DHF_TRY(dhf_view(gamma, sgc, 3, &g3), "GN(up): weight");
    DHF_TRY(dhf_mul(rstd3, g3, &a), "GN(up): scale");                       /* [N, G, cg] */
    DHF_TRY(dhf_view(beta, s1c, 2, &b2), "GN(up): bias");
    if (mult) {
        dhf_tensor am = NULL;
        DHF_TRY(dhf_view(mult, sn11, 3, &m3), "GN(up): per-sample factor");
        DHF_TRY(dhf_mul(a, m3, &am), "GN(up): per-sample factor");
        a = am;
        DHF_TRY(dhf_view(mult, sn1, 2, &m2), "GN(up): per-sample factor");
        DHF_TRY(dhf_mul(b2, m2, &bm), "GN(up): per-sample factor");          /* [N, C] */
    } else {
        DHF_TRY(dhf_expand(b2, (int64_t[2]){ N, C }, 2, &bm), "GN(up): bias");
    }
    DHF_TRY(dhf_reshape(a, sa5, 5, &a5), "GN(up): scale");
    DHF_TRY(dhf_mul(zc, a5, &zn), "GN(up): normalise");
    int64_t sb5[5] = { N, G, cg, 1, 1 };
    DHF_TRY(dhf_reshape(bm, sb5, 5, &b5), "GN(up): bias");
    DHF_TRY(dhf_add(zn, b5, &y), "GN(up): bias");
    DHF_TRY(dhf_reshape(y, s4, 4, out), "GN(up): [N, C, h, w]");
    rc = 0;
    goto done;
fail:
    rc = -1;
done:
    free(cy);
    free(cx);
    free(my);
    free(mx);
    free(ws);
    return rc;
}

int dhf_gn_of_upsampled(dhf_tensor z, int64_t out_res, int groups, dhf_tensor gamma,
                        dhf_tensor beta, double eps, dhf_tensor mult, dhf_tensor *out)
{
    if (dhf_ndim(z) != 4 || groups < 1 || dhf_size(z, 1) % groups != 0)
        return dhf_err_set("GN of an upsampled map: expected [N, C, h, w] with C divisible "
                           "by %d groups", groups);
    dhf_tensor r = NULL, g = NULL;
    dhf_scope_begin();
    if (dhf_size(z, 2) == out_res && dhf_size(z, 3) == out_res) {
        /* no resize: plain GN (the caller avoids this path for big maps with a factor) */
        if (dhf_group_norm(z, groups, mult ? NULL : gamma, mult ? NULL : beta, eps, &g) !=
            DHF_OK) {
            dhf_err_set("group norm: %s", dhf_last_error());
            dhf_scope_end();
            return -1;
        }
        if (!mult) {
            r = g;
        } else {
            /* (x_hat * gamma + beta) * mult with [N, C]-sized coefficients */
            const int64_t N = dhf_size(z, 0), C = dhf_size(z, 1);
            int64_t s1c[2] = { 1, C }, sn1[2] = { N, 1 }, s4[4] = { N, C, 1, 1 };
            dhf_tensor g2 = NULL, b2 = NULL, m2 = NULL, a = NULL, bm = NULL, a4 = NULL;
            dhf_tensor b4 = NULL, t = NULL;
            if (dhf_view(gamma, s1c, 2, &g2) || dhf_view(beta, s1c, 2, &b2) ||
                dhf_view(mult, sn1, 2, &m2) || dhf_mul(g2, m2, &a) || dhf_mul(b2, m2, &bm) ||
                dhf_view(a, s4, 4, &a4) || dhf_view(bm, s4, 4, &b4) || dhf_mul(g, a4, &t) ||
                dhf_add(t, b4, &r)) {
                dhf_err_set("group norm with a per-sample factor: %s", dhf_last_error());
                dhf_scope_end();
                return -1;
            }
        }
    } else if (gn_upsampled_body(z, out_res, groups, gamma, beta, eps, mult, &r)) {
        dhf_scope_end();
        return -1;
    }
    if (dhf_keep(r) != DHF_OK) {
        dhf_err_set("GN of an upsampled map: %s", dhf_last_error());
        dhf_scope_end();
        return -1;
    }
    dhf_scope_end();
    *out = r;
    return 0;
}

int dhf_input_moments(dhf_tensor x, dhf_tensor *mean, dhf_tensor *second)
{
    if (dhf_ndim(x) != 4)
        return dhf_err_set("input moments: expected x [N, C, H, W], got %d dims", dhf_ndim(x));
    const int64_t N = dhf_size(x, 0), C = dhf_size(x, 1), HW = dhf_size(x, 2) * dhf_size(x, 3);
    int64_t sxf[3] = { N, C, HW };
    dhf_tensor xf = NULL, xft = NULL, m = NULL, S = NULL;
    dhf_scope_begin();
    DHF_TRY(dhf_reshape(x, sxf, 3, &xf), "input moments: x [N, C, HW]");
    DHF_TRY(dhf_mean_dim(xf, 2, false, &m), "input moments: mean");
    DHF_TRY(dhf_transpose(xf, 1, 2, &xft), "input moments: x^T");
    DHF_TRY(dhf_bmm(xf, xft, &S), "input moments: x x^T");              /* [N, C, C] */
    DHF_TRY(dhf_mul_scalar_(S, 1.0 / (double)HW), "input moments: x x^T / HW");
    DHF_TRY(dhf_keep(m), "input moments");
    DHF_TRY(dhf_keep(S), "input moments");
    dhf_scope_end();
    *mean = m;
    *second = S;
    return 0;
fail:
    dhf_scope_end();
    return -1;
}

/* Runs in the caller's scope. */
static int conv1x1_gn_body(dhf_tensor x, dhf_tensor w, int G, dhf_tensor gamma,
                           dhf_tensor beta, double eps, dhf_tensor m, dhf_tensor S,
                           dhf_tensor mult, dhf_tensor *out)
{
    const int64_t N = dhf_size(x, 0), Ci = dhf_size(x, 1), H = dhf_size(x, 2), W = dhf_size(x, 3);
    const int64_t Co = dhf_size(w, 0), cg = Co / G;
    dhf_tensor w2 = NULL, w2t = NULL, mu_c = NULL;
    dhf_tensor A = NULL, Aw = NULL, e2_c = NULL, mu3 = NULL, e23 = NULL, mu_g = NULL, e2_g = NULL;
    dhf_tensor musq = NULL, var = NULL, rstd = NULL, rstd3 = NULL, rstd_e = NULL, rstd_c = NULL;
    dhf_tensor mu_g3 = NULL, mu_ge = NULL, mu_gc = NULL, g2 = NULL, scale = NULL, sm = NULL;
    dhf_tensor shift = NULL, scale3 = NULL, wp = NULL, y = NULL, m2 = NULL;
    dhf_tensor wg = NULL, bg = NULL, xg = NULL;
    int64_t sw2[2] = { Co, Ci }, sng[3] = { N, G, cg };
    int64_t sng1[3] = { N, G, 1 }, snc[2] = { N, Co }, s1c[2] = { 1, Co };
    int64_t snc1[3] = { N, Co, 1 }, sy[4] = { N, Co, H, W }, sn1[2] = { N, 1 };
    int64_t swg[4] = { N * Co, Ci, 1, 1 }, sbg[1] = { N * Co }, sxg[4] = { 1, N * Ci, H, W };
    DHF_TRY(dhf_reshape(w, sw2, 2, &w2), "GN(1x1 conv): w [Cout, Cin]");
    if (!m && dhf_input_moments(x, &m, &S))
        return -1;
    /* per output channel: mean w.m and second moment w S w^T */
    DHF_TRY(dhf_transpose(w2, 0, 1, &w2t), "GN(1x1 conv): w^T");
    DHF_TRY(dhf_matmul(m, w2t, &mu_c), "GN(1x1 conv): channel means");      /* [N, Co] */
    DHF_TRY(dhf_matmul(w2, S, &A), "GN(1x1 conv): w S");                    /* [N, Co, Ci] */
    DHF_TRY(dhf_mul(A, w2, &Aw), "GN(1x1 conv): w S w^T");
    DHF_TRY(dhf_sum_dim(Aw, 2, false, &e2_c), "GN(1x1 conv): w S w^T");     /* [N, Co] */
    /* group statistics */
    DHF_TRY(dhf_view(mu_c, sng, 3, &mu3), "GN(1x1 conv): groups");
    DHF_TRY(dhf_view(e2_c, sng, 3, &e23), "GN(1x1 conv): groups");
    DHF_TRY(dhf_mean_dim(mu3, 2, false, &mu_g), "GN(1x1 conv): group mean");
    DHF_TRY(dhf_mean_dim(e23, 2, false, &e2_g), "GN(1x1 conv): group second moment");
    DHF_TRY(dhf_mul(mu_g, mu_g, &musq), "GN(1x1 conv): mean^2");
    DHF_TRY(dhf_sub(e2_g, musq, &var), "GN(1x1 conv): variance");
    DHF_TRY(dhf_add_scalar_(var, eps), "GN(1x1 conv): variance + eps");
    DHF_TRY(dhf_rsqrt(var, &rstd), "GN(1x1 conv): rstd");                  /* [N, G] */
    /* back to channels: [N, G] -> [N, G, cg] -> [N, Co] */
    DHF_TRY(dhf_view(rstd, sng1, 3, &rstd3), "GN(1x1 conv): rstd");
    DHF_TRY(dhf_expand(rstd3, sng, 3, &rstd_e), "GN(1x1 conv): rstd");
    DHF_TRY(dhf_reshape(rstd_e, snc, 2, &rstd_c), "GN(1x1 conv): rstd");
    DHF_TRY(dhf_view(mu_g, sng1, 3, &mu_g3), "GN(1x1 conv): mean");
    DHF_TRY(dhf_expand(mu_g3, sng, 3, &mu_ge), "GN(1x1 conv): mean");
    DHF_TRY(dhf_reshape(mu_ge, snc, 2, &mu_gc), "GN(1x1 conv): mean");
    /* scale = gamma * rstd (* mult), shift = (beta - gamma * rstd * mu) (* mult);
     * y = (scale (.) w) x + shift */
    DHF_TRY(dhf_view(gamma, s1c, 2, &g2), "GN(1x1 conv): weight");
    DHF_TRY(dhf_mul(rstd_c, g2, &scale), "GN(1x1 conv): scale");
    DHF_TRY(dhf_mul(scale, mu_gc, &sm), "GN(1x1 conv): shift");
    DHF_TRY(dhf_sub(beta, sm, &shift), "GN(1x1 conv): shift");              /* [N, Co] */
    if (mult) {
        dhf_tensor sc2 = NULL, sh2 = NULL;
        DHF_TRY(dhf_view(mult, sn1, 2, &m2), "GN(1x1 conv): per-sample factor");
        DHF_TRY(dhf_mul(scale, m2, &sc2), "GN(1x1 conv): per-sample factor");
        DHF_TRY(dhf_mul(shift, m2, &sh2), "GN(1x1 conv): per-sample factor");
        scale = sc2;
        shift = sh2;
    }
    /* the per-sample convolution as ONE grouped convolution (groups = N) over
     * [1, N*Cin, H, W]: oneDNN runs it as fast as a shared-weight convolution */
    DHF_TRY(dhf_view(scale, snc1, 3, &scale3), "GN(1x1 conv): scale");
    DHF_TRY(dhf_mul(scale3, w2, &wp), "GN(1x1 conv): scaled weights");      /* [N, Co, Ci] */
    DHF_TRY(dhf_reshape(wp, swg, 4, &wg), "GN(1x1 conv): grouped weights");
    DHF_TRY(dhf_reshape(shift, sbg, 1, &bg), "GN(1x1 conv): grouped bias");
    DHF_TRY(dhf_reshape(x, sxg, 4, &xg), "GN(1x1 conv): grouped input");
    DHF_TRY(dhf_conv2d(xg, wg, bg, 1, 1, 0, 0, (int)N, &y), "GN(1x1 conv): per-sample 1x1 conv");
    DHF_TRY(dhf_view(y, sy, 4, out), "GN(1x1 conv): [N, Co, H, W]");
    return 0;
fail:
    return -1;
}

int dhf_conv1x1_gn(dhf_tensor x, dhf_tensor w, int groups, dhf_tensor gamma,
                   dhf_tensor beta, double eps, dhf_tensor mean, dhf_tensor second,
                   dhf_tensor mult, dhf_tensor *out)
{
    if (dhf_ndim(x) != 4 || dhf_ndim(w) != 4 || dhf_size(w, 1) != dhf_size(x, 1) ||
        dhf_size(w, 2) != 1 || dhf_size(w, 3) != 1 || groups < 1 ||
        dhf_size(w, 0) % groups != 0 || (!mean) != (!second))
        return dhf_err_set("GN of a 1x1 convolution: expected x [N, C, H, W], w [O, C, 1, 1] "
                           "with O divisible by %d groups, and both moments or none", groups);
    dhf_tensor r = NULL;
    dhf_scope_begin();
    if (conv1x1_gn_body(x, w, groups, gamma, beta, eps, mean, second, mult, &r)) {
        dhf_scope_end();
        return -1;
    }
    if (dhf_keep(r) != DHF_OK) {
        dhf_err_set("GN of a 1x1 convolution: %s", dhf_last_error());
        dhf_scope_end();
        return -1;
    }
    dhf_scope_end();
    *out = r;
    return 0;
}
