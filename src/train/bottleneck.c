/* bottleneck.c — the per-layer bottleneck block (see bottleneck.h): parameters,
 * reference init, and its forward in the paper's order and in the native-resolution
 * order. Autograd records the graph; temporaries live in a shim scope. */
#include "train/bottleneck.h"

#include <math.h>
#include <string.h>

#include "train/bilinear.h"
#include "train/gn_fused.h"
#include "core/torch/shim_try.h"

const char *const dhf_bottleneck_param_names[DHF_BNECK_NPARAMS] = {
    "conv1.weight", "conv1.norm.weight", "conv1.norm.bias",
    "conv2.weight", "conv2.norm.weight", "conv2.norm.bias",
    "conv3.weight", "conv3.norm.weight", "conv3.norm.bias",
    "shortcut.weight", "shortcut.norm.weight", "shortcut.norm.bias",
};

void dhf_bottleneck_param_shape(int in_channels, int proj_dim, int i, int64_t shape[4],
                                int *ndim)
{
    const int64_t q = proj_dim / 4, p = proj_dim;
    /* (out, in, k) of the conv feeding each group of three parameters */
    static const int kern[4] = { 1, 3, 1, 1 };
    int64_t o = 0, in = 0;
    switch (i / 3) {
    case 0: o = q; in = in_channels; break;
    case 1: o = q; in = q; break;
    case 2: o = p; in = q; break;
    default: o = p; in = in_channels; break;
    }
    if (i % 3 == 0) {
        shape[0] = o; shape[1] = in; shape[2] = kern[i / 3]; shape[3] = kern[i / 3];
        *ndim = 4;
    } else {
        shape[0] = o; shape[1] = shape[2] = shape[3] = 0;
        *ndim = 1;
    }
}

/* splitmix64: independent, reproducible seeds for each parameter tensor */
static uint64_t mix_seed(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

int dhf_bottleneck_init(dhf_bottleneck *b, int in_channels, int proj_dim, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    if (in_channels <= 0 || proj_dim <= 0 || proj_dim % (4 * DHF_BNECK_GN_GROUPS) != 0)
        return dhf_err_set("bottleneck: in_channels %d must be > 0 and projection_dim %d "
                           "a positive multiple of %d (P/4 channels in %d groups)",
                           in_channels, proj_dim, 4 * DHF_BNECK_GN_GROUPS,
                           DHF_BNECK_GN_GROUPS);
    b->in_channels = in_channels;
    b->proj_dim = proj_dim;
    for (int i = 0; i < DHF_BNECK_NPARAMS; i++) {
        int64_t shape[4];
        int nd;
        dhf_bottleneck_param_shape(in_channels, proj_dim, i, shape, &nd);
        const char *what = dhf_bottleneck_param_names[i];
        if (i % 3 == 0) {
            double fan_out = (double)shape[0] * (double)shape[2] * (double)shape[3];
            DHF_TRY(dhf_empty(DHF_F32, dhf_cpu_device(), shape, nd, &b->p[i]), what);
            DHF_TRY(dhf_normal_(b->p[i], 0.0, sqrt(2.0 / fan_out), mix_seed(seed + (uint64_t)i)),
                    what);
        } else {
            DHF_TRY(dhf_full(i % 3 == 1 ? 1.0 : 0.0, DHF_F32, dhf_cpu_device(), shape, nd,
                             &b->p[i]), what);
        }
        DHF_TRY(dhf_set_requires_grad(b->p[i], true), what);
    }
    return 0;
fail:
    dhf_err_wrap("bottleneck init (C=%d, P=%d)", in_channels, proj_dim);
    dhf_bottleneck_free(b);
    return -1;
}

void dhf_bottleneck_free(dhf_bottleneck *b)
{
    if (!b)
        return;
    for (int i = 0; i < DHF_BNECK_NPARAMS; i++)
        dhf_free(b->p[i]);
    memset(b, 0, sizeof *b);
}

int dhf_agg_resize(dhf_tensor x, int64_t out_res, dhf_tensor *out)
{
    if (dhf_ndim(x) != 4)
        return dhf_err_set("resize: expected a 4-D NCHW tensor, got %d dims", dhf_ndim(x));
    if (dhf_size(x, 2) == out_res && dhf_size(x, 3) == out_res) {
        /* same size: bilinear with scale 1 samples exactly the input pixels */
        int64_t shape[DHF_MAX_DIMS];
        int nd;
        DHF_TRY(dhf_shape(x, shape, &nd), "resize (identity)");
        DHF_TRY(dhf_view(x, shape, nd, out), "resize (identity)");
        return 0;
    }
    DHF_TRY(dhf_interpolate(x, out_res, out_res, DHF_INTERP_BILINEAR, false, out),
            "bilinear resize");
    return 0;
fail:
    return -1;
}

/* The fast order's upsampling of normalised maps (autograd needs its backward too):
 * for factors above 2 as matrix products (bilinear.h), measured 1.3-1.7x cheaper
 * forward + backward than libtorch's upsample kernels; at factor <= 2 those win. */
static int upsample_for_grad(dhf_tensor x, int64_t out_res, dhf_tensor *out)
{
    if (dhf_ndim(x) == 4 && 2 * dhf_size(x, 2) < out_res && 2 * dhf_size(x, 3) < out_res)
        return dhf_bilinear_resize_mm(x, out_res, out);
    return dhf_agg_resize(x, out_res, out);
}

/* GN(32) of y, then ReLU in place when asked; *out NEW (scoped by the caller). */
static int gn_relu(const dhf_bottleneck *b, dhf_tensor y, int first_param, bool relu,
                   const char *what, dhf_tensor *out)
{
    dhf_tensor g = NULL;
    DHF_TRY(dhf_group_norm(y, DHF_BNECK_GN_GROUPS, b->p[first_param + 1],
                           b->p[first_param + 2], DHF_BNECK_GN_EPS, &g), what);
    if (relu)
        DHF_TRY(dhf_relu_(g), what);
    *out = g;
    return 0;
fail:
    dhf_free(g);
    return -1;
}

static int conv(const dhf_bottleneck *b, dhf_tensor x, int param, int pad, dhf_tensor *out)
{
    const char *what = dhf_bottleneck_param_names[param];
    if (b->compute_dtype == DHF_F32) {
        DHF_TRY(dhf_conv2d(x, b->p[param], NULL, 1, 1, pad, pad, 1, out), what);
        return 0;
    }
    /* mixed precision: the casts are differentiable, so autograd returns float32
     * gradients to the float32 parameters (torch.autocast's treatment of conv2d) */
    dhf_tensor xl = NULL, wl = NULL, yl = NULL;
    dhf_status st = dhf_to_dtype(x, b->compute_dtype, &xl);
    if (st == DHF_OK)
        st = dhf_to_dtype(b->p[param], b->compute_dtype, &wl);
    if (st == DHF_OK)
        st = dhf_conv2d(xl, wl, NULL, 1, 1, pad, pad, 1, &yl);
    if (st == DHF_OK)
        st = dhf_to_dtype(yl, DHF_F32, out);
    dhf_free(xl);
    dhf_free(wl);
    dhf_free(yl);
    DHF_TRY(st, what);
    return 0;
fail:
    return -1;
}

/* The part after conv1 / shortcut, shared by both orders. y1 = conv1 output and
 * ys = shortcut output, both [N, *, R, R]. */
static int tail(const dhf_bottleneck *b, dhf_tensor y1, dhf_tensor ys, dhf_tensor *out)
{
    dhf_tensor t = NULL, u = NULL, s = NULL;
    if (gn_relu(b, y1, DHF_BN_CONV1_W, true, "conv1.norm", &t) ||
        conv(b, t, DHF_BN_CONV2_W, 1, &u) ||
        gn_relu(b, u, DHF_BN_CONV2_W, true, "conv2.norm", &t) ||
        conv(b, t, DHF_BN_CONV3_W, 0, &u) ||
        gn_relu(b, u, DHF_BN_CONV3_W, false, "conv3.norm", &t) ||
        gn_relu(b, ys, DHF_BN_SHORT_W, false, "shortcut.norm", &s))
        return -1;
    /* in place is safe for autograd: GN backward needs its input, not its output */
    DHF_TRY(dhf_add_(t, s), "residual add");
    DHF_TRY(dhf_relu_(t), "residual relu");
    *out = t;
    return 0;
fail:
    return -1;
}

static int check_input(const dhf_bottleneck *b, dhf_tensor x, const char *what)
{
    if (dhf_ndim(x) != 4 || dhf_size(x, 1) != b->in_channels)
        return dhf_err_set("%s: expected input [N, %d, H, W], got %d dims with %lld channels",
                           what, b->in_channels, dhf_ndim(x),
                           (long long)(dhf_ndim(x) >= 2 ? dhf_size(x, 1) : -1));
    return 0;
}

int dhf_bottleneck_forward(const dhf_bottleneck *b, dhf_tensor x, dhf_tensor *out)
{
    if (check_input(b, x, "bottleneck"))
        return -1;
    dhf_tensor y1 = NULL, ys = NULL, r = NULL;
    dhf_scope_begin();
    if (conv(b, x, DHF_BN_CONV1_W, 0, &y1) || conv(b, x, DHF_BN_SHORT_W, 0, &ys) ||
        tail(b, y1, ys, &r))
        goto fail;
    DHF_TRY(dhf_keep(r), "bottleneck");
    dhf_scope_end();
    *out = r;
    return 0;
fail:
    dhf_scope_end();
    return -1;
}

/* Fast order. Exact rewrites of the paper's block (gn_fused.h): conv1 and shortcut at
 * native resolution with their GroupNorms evaluated there from the statistics of the
 * upsampled maps (only the normalised maps are upsampled); at native == R both are
 * GN-folded 1x1 convolutions sharing the input's moments; GN3 is folded into conv3;
 * the factor `mult` rides on the last affine maps (relu(m a + m b) = m relu(a + b),
 * m >= 0). Autograd keeps r1, c2, r2 and the output at R x R plus native tensors. */
int dhf_bottleneck_forward_native(const dhf_bottleneck *b, dhf_tensor x, int64_t out_res,
                                  dhf_tensor mult, dhf_tensor *out)
{
    if (check_input(b, x, "bottleneck (native order)"))
        return -1;
    const int G = DHF_BNECK_GN_GROUPS;
    const double eps = DHF_BNECK_GN_EPS;
    const bool at_r = dhf_size(x, 2) == out_res && dhf_size(x, 3) == out_res;
    dhf_tensor y1 = NULL, g1 = NULL, r1 = NULL, c2 = NULL, r2 = NULL, g3 = NULL;
    dhf_tensor ys = NULL, gs = NULL, gsr = NULL, xm = NULL, xs = NULL;
    dhf_scope_begin();
    if (at_r) {
        if (dhf_input_moments(x, &xm, &xs) ||
            dhf_conv1x1_gn(x, b->p[DHF_BN_CONV1_W], G, b->p[DHF_BN_CONV1_GN_W],
                           b->p[DHF_BN_CONV1_GN_B], eps, xm, xs, NULL, &r1))
            goto fail;
    } else {
        if (conv(b, x, DHF_BN_CONV1_W, 0, &y1) ||
            dhf_gn_of_upsampled(y1, out_res, G, b->p[DHF_BN_CONV1_GN_W],
                                b->p[DHF_BN_CONV1_GN_B], eps, NULL, &g1) ||
            upsample_for_grad(g1, out_res, &r1))
            goto fail;
    }
    /* in place: neither the resize nor the GN backward needs the old values */
    DHF_TRY(dhf_relu_(r1), "conv1 relu");
    if (conv(b, r1, DHF_BN_CONV2_W, 1, &c2) ||
        gn_relu(b, c2, DHF_BN_CONV2_W, true, "conv2.norm", &r2) ||
        dhf_conv1x1_gn(r2, b->p[DHF_BN_CONV3_W], G, b->p[DHF_BN_CONV3_GN_W],
                       b->p[DHF_BN_CONV3_GN_B], eps, NULL, NULL, mult, &g3))
        goto fail;
    if (at_r) {
        if (dhf_conv1x1_gn(x, b->p[DHF_BN_SHORT_W], G, b->p[DHF_BN_SHORT_GN_W],
                           b->p[DHF_BN_SHORT_GN_B], eps, xm, xs, mult, &gsr))
            goto fail;
    } else {
        if (conv(b, x, DHF_BN_SHORT_W, 0, &ys) ||
            dhf_gn_of_upsampled(ys, out_res, G, b->p[DHF_BN_SHORT_GN_W],
                                b->p[DHF_BN_SHORT_GN_B], eps, mult, &gs) ||
            upsample_for_grad(gs, out_res, &gsr))
            goto fail;
    }
    DHF_TRY(dhf_add_(g3, gsr), "residual add");
    DHF_TRY(dhf_relu_(g3), "residual relu");
    DHF_TRY(dhf_keep(g3), "bottleneck (native order)");
    dhf_scope_end();
    *out = g3;
    return 0;
fail:
    dhf_err_wrap("bottleneck (native order)");
    dhf_scope_end();
    return -1;
}
