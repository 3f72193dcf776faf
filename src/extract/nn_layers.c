/* nn_layers.c — Conv2d, Linear, GroupNorm, LayerNorm over the shim, and the shim
 * error bridge used by every forward function in src/extract. */
#include "extract/nn_layers.h"
#include "extract/unet_kernels.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"

int dhf_nn_shim_fail(const char *call)
{
    char op[64];
    size_t n = strcspn(call, "(");
    if (n >= sizeof op)
        n = sizeof op - 1;
    memcpy(op, call, n);
    op[n] = '\0';
    return dhf_err_set("%s: %s", op, dhf_last_error());
}

int dhf_nn_scope_finish(int rc, dhf_tensor *outs[], int n_outs)
{
    if (rc == 0)
        for (int i = 0; i < n_outs; i++)
            if (outs[i] && *outs[i])
                dhf_keep(*outs[i]);
    if (dhf_scope_end() != DHF_OK && rc == 0)
        rc = dhf_nn_shim_fail("dhf_scope_end");
    return rc;
}

void dhf_nn_unscope(dhf_tensor t)
{
    for (int d = dhf_scope_depth(); t && d > 0; d--)
        dhf_keep(t);
}

int dhf_nn_plain(dhf_tensor *t)
{
    if (dhf_is_contiguous(*t))
        return 0;
    dhf_tensor c = NULL;
    if (dhf_contiguous(*t, &c) != DHF_OK)
        return dhf_nn_shim_fail("dhf_contiguous");
    *t = c;
    return 0;
}

/* *packed = an empty tensor beside w, owned by the params list like w (none without a
 * list: the layer then never packs) */
static int packed_home(dhf_params *p, dhf_tensor w, dhf_tensor *packed)
{
    int64_t zero = 0;
    *packed = NULL;
    if (!p->dst)
        return 0;
    if (dhf_empty(DHF_U8, dhf_get_device(w), &zero, 1, packed) != DHF_OK)
        return dhf_nn_shim_fail("dhf_empty");
    dhf_nn_unscope(*packed);
    if (dhf_tensor_list_push(p->dst, *packed) != 0) {
        dhf_free(*packed);
        *packed = NULL;
        return -1;
    }
    return 0;
}

int dhf_conv2d_load(dhf_conv2d_layer *c, dhf_params *p, const char *name, int in_ch, int out_ch,
                    int kernel, int stride, int pad, bool bias)
{
    memset(c, 0, sizeof *c);
    c->in_ch = in_ch;
    c->out_ch = out_ch;
    c->kernel = kernel;
    c->stride = stride;
    c->pad = pad;
    int64_t fan_in = (int64_t)in_ch * kernel * kernel;
    int64_t ws[4] = {out_ch, in_ch, kernel, kernel}, bs[1] = {out_ch};
    if (dhf_params_get(p, DHF_INIT_FAN_IN, fan_in, ws, 4, &c->w, "%s.weight", name) != 0)
        return -1;
    if (bias && dhf_params_get(p, DHF_INIT_FAN_IN, fan_in, bs, 1, &c->b, "%s.bias", name) != 0)
        return -1;
    return packed_home(p, c->w, &c->w_packed);
}

static dhf_kern_conv_geom conv_geom(const dhf_conv2d_layer *c)
{
    int extra = c->pad_right_bottom ? 1 : 0;
    dhf_kern_conv_geom g = {.in_ch = c->in_ch, .out_ch = c->out_ch, .k = c->kernel,
                            .stride = c->stride, .pad_t = c->pad, .pad_l = c->pad,
                            .pad_b = c->pad + extra, .pad_r = c->pad + extra};
    return g;
}

static int conv_forward(const dhf_conv2d_layer *c, dhf_tensor x, dhf_tensor bias,
                        dhf_tensor acc, dhf_tensor *out)
{
    dhf_kern_conv_geom g = conv_geom(c);
    return dhf_kern_conv2d(x, c->w, c->w_packed, bias, &g, acc, out);
}

int dhf_conv2d_forward_acc_(const dhf_conv2d_layer *c, dhf_tensor x, dhf_tensor acc)
{
    dhf_kern_conv_geom g = conv_geom(c);
    return dhf_kern_conv2d_acc_(acc, x, c->w, c->w_packed, c->b, &g);
}

int dhf_conv2d_forward_acc(const dhf_conv2d_layer *c, dhf_tensor x, dhf_tensor acc,
                           dhf_tensor *out)
{
    return conv_forward(c, x, c->b, acc, out);
}

int dhf_conv2d_forward_bias(const dhf_conv2d_layer *c, dhf_tensor x, dhf_tensor bias,
                            dhf_tensor *out)
{
    return conv_forward(c, x, bias ? bias : c->b, NULL, out);
}

int dhf_conv2d_forward(const dhf_conv2d_layer *c, dhf_tensor x, dhf_tensor *out)
{
    return dhf_conv2d_forward_acc(c, x, NULL, out);
}

int dhf_linear_load(dhf_linear_layer *l, dhf_params *p, const char *name, int in_f, int out_f,
                    bool bias)
{
    memset(l, 0, sizeof *l);
    l->in_f = in_f;
    l->out_f = out_f;
    int64_t ws[2] = {out_f, in_f}, bs[1] = {out_f};
    if (dhf_params_get(p, DHF_INIT_FAN_IN, in_f, ws, 2, &l->w, "%s.weight", name) != 0)
        return -1;
    if (bias && dhf_params_get(p, DHF_INIT_FAN_IN, in_f, bs, 1, &l->b, "%s.bias", name) != 0)
        return -1;
    return packed_home(p, l->w, &l->w_packed);
}

int dhf_linear_forward(const dhf_linear_layer *l, dhf_tensor x, dhf_tensor *out)
{
    return dhf_kern_linear(x, l->w, l->w_packed, l->b, l->in_f, l->out_f, out);
}

int dhf_linear_forward_acc_(const dhf_linear_layer *l, dhf_tensor x, dhf_tensor acc)
{
    return dhf_kern_linear_acc_(acc, x, l->w, l->w_packed, l->b, l->in_f, l->out_f);
}

int dhf_groupnorm_load(dhf_groupnorm *g, dhf_params *p, const char *name, int groups,
                       int channels, double eps)
{
    memset(g, 0, sizeof *g);
    if (groups <= 0 || channels % groups != 0)
        return dhf_err_set("%s: '%s': %d channels cannot be split into %d groups "
                           "(norm_num_groups must divide every block width)",
                           p->path, name, channels, groups);
    g->groups = groups;
    g->channels = channels;
    g->eps = eps;
    int64_t s[1] = {channels};
    if (dhf_params_get(p, DHF_INIT_NORM_WEIGHT, 0, s, 1, &g->w, "%s.weight", name) != 0 ||
        dhf_params_get(p, DHF_INIT_NORM_BIAS, 0, s, 1, &g->b, "%s.bias", name) != 0)
        return -1;
    return 0;
}

int dhf_groupnorm_forward(const dhf_groupnorm *g, dhf_tensor x, dhf_tensor *out)
{
    return dhf_kern_groupnorm(x, g->groups, g->w, g->b, g->eps, false, out);
}

int dhf_groupnorm_silu_forward(const dhf_groupnorm *g, dhf_tensor x, dhf_tensor *out)
{
    return dhf_kern_groupnorm(x, g->groups, g->w, g->b, g->eps, true, out);
}

int dhf_layernorm_load(dhf_layernorm *l, dhf_params *p, const char *name, int dim, double eps)
{
    memset(l, 0, sizeof *l);
    l->dim = dim;
    l->eps = eps;
    int64_t s[1] = {dim};
    if (dhf_params_get(p, DHF_INIT_NORM_WEIGHT, 0, s, 1, &l->w, "%s.weight", name) != 0 ||
        dhf_params_get(p, DHF_INIT_NORM_BIAS, 0, s, 1, &l->b, "%s.bias", name) != 0)
        return -1;
    return 0;
}

int dhf_layernorm_forward(const dhf_layernorm *l, dhf_tensor x, dhf_tensor *out)
{
    return dhf_layer_norm(x, l->w, l->b, l->eps, out) == DHF_OK
               ? 0
               : dhf_nn_shim_fail("dhf_layer_norm");
}
