/* runner.c — the engine's interface (engine.h): the kernel choice, the two workspaces
 * (fastnet.h) made and remade in one place, forward and forward + backward. */
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "engine/conv1x1.h"
#include "engine/dnnl_conv.h"
#include "engine/fastnet.h"
#include "engine/profile.h"

struct dhf_runner {
    dhf_engine_options opt;
    dhf_fastnet *train;     /* activations kept for the backward */
    dhf_fastnet *infer;     /* forward only, buffers shared by the layers */
    char describe[320];     /* of the workspace made last (a copy: it outlives it) */
};

bool dhf_engine_available(void) { return dhf_dconv_available(); }

int dhf_engine_options_from_config(const dhf_config *cfg, dhf_engine_options *o)
{
    int k, a, c;
    if ((k = dhf_config_choice("aggregation_kernels", cfg->aggregation_kernels)) < 0 ||
        (a = dhf_config_choice("aggregation_conv_algorithm",
                               cfg->aggregation_conv_algorithm)) < 0 ||
        (c = dhf_config_choice("aggregation_conv1x1", cfg->aggregation_conv1x1)) < 0)
        return -1;
    o->kernels = (dhf_engine_kernels)k;
    o->conv_algo = (dhf_engine_conv_algo)a;
    o->conv1x1 = (dhf_engine_conv1x1)c;
    return 0;
}

int dhf_runner_create(dhf_runner **out, const dhf_engine_options *opt)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return dhf_err_set("engine: out of memory");
    if (opt)
        (*out)->opt = *opt;
    return 0;
}

void dhf_runner_free(dhf_runner *r)
{
    if (!r)
        return;
    dhf_fastnet_free(r->train);
    dhf_fastnet_free(r->infer);
    free(r);
}

bool dhf_runner_ready(const dhf_runner *r, const dhf_engine_net *net)
{
    return r && r->opt.kernels != DHF_ENGINE_KERNELS_LIBTORCH && dhf_engine_available() &&
           net->proj_dim % 128 == 0 && net->f32_compute &&
           dhf_get_device(net->mixing_weights).type == DHF_CPU;
}

int dhf_runner_use(const dhf_runner *r, const dhf_engine_net *net, const dhf_tensor *feats,
                   bool *yes)
{
    *yes = false;
    if (!r || r->opt.kernels == DHF_ENGINE_KERNELS_LIBTORCH)
        return 0;
    bool ok = dhf_runner_ready(r, net);
    for (int l = 0; ok && l < net->num_layers; l++)
        ok = feats[l] && dhf_get_device(feats[l]).type == DHF_CPU &&
             dhf_get_dtype(feats[l]) == DHF_F32 && dhf_is_contiguous(feats[l]);
    if (!ok && r->opt.kernels == DHF_ENGINE_KERNELS_ONEDNN)
        return dhf_err_set("aggregation_kernels onednn: %s",
                           !dhf_engine_available()
                               ? "dhf was built without oneDNN (install libdnnl-dev, rebuild)"
                               : "needs the CPU, float32 features and convolutions "
                                 "(mixed_precision off) and projection_dim a multiple of 128");
    *yes = ok;
    return 0;
}

static dhf_dconv_algo dconv_algo(dhf_engine_conv_algo a)
{
    return a == DHF_ENGINE_CONV_WINOGRAD ? DHF_DCONV_WINOGRAD
           : a == DHF_ENGINE_CONV_DIRECT ? DHF_DCONV_DIRECT
                                         : DHF_DCONV_AUTO;
}

/* The workspace for these shapes: kept when it fits, else made anew. */
static int ensure_workspace(dhf_runner *r, const dhf_engine_net *net, const dhf_tensor *feats,
                            bool training)
{
    dhf_fastnet **ws = training ? &r->train : &r->infer;
    if (*ws && dhf_fastnet_fits(*ws, net, feats))
        return 0;
    dhf_fastnet_free(*ws);
    *ws = NULL;
    const bool own1x1 = r->opt.conv1x1 == DHF_ENGINE_1X1_OWN ||
                        (r->opt.conv1x1 == DHF_ENGINE_1X1_AUTO && dhf_c1x1_supported());
    if (dhf_fastnet_create(ws, net, feats, training, dconv_algo(r->opt.conv_algo), own1x1))
        return -1;
    snprintf(r->describe, sizeof r->describe, "%s", dhf_fastnet_describe(*ws));
    return 0;
}

int dhf_runner_forward(dhf_runner *r, const dhf_engine_net *net, const dhf_tensor *feats,
                       float *desc)
{
    if (ensure_workspace(r, net, feats, false) ||
        dhf_fastnet_forward(r->infer, net, feats, false, desc))
        return dhf_err_wrap("engine forward");
    return 0;
}

int dhf_runner_forward_backward(dhf_runner *r, const dhf_engine_net *net,
                                const dhf_tensor *feats, float *desc, dhf_engine_loss_fn loss,
                                void *ctx)
{
    const float *gdesc = NULL;
    if (ensure_workspace(r, net, feats, true) ||
        dhf_fastnet_forward(r->train, net, feats, true, desc))
        return dhf_err_wrap("engine step forward");
    if (loss(ctx, &gdesc))
        return -1;
    return dhf_fastnet_backward(r->train, net, gdesc);
}

const char *dhf_runner_describe(const dhf_runner *r) { return r ? r->describe : ""; }

bool dhf_runner_has_inference_workspace(const dhf_runner *r) { return r && r->infer; }

#ifdef DHF_PROFILE
void dhf_runner_get_profile(const dhf_runner *r, dhf_fastnet_profile *p)
{
    dhf_fastnet_get_profile(r ? r->train : NULL, p);
}
#endif
