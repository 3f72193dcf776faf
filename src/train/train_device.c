/* train_device.c — network and optimiser state onto a device (train_device.h). */
#include "train/train_device.h"

#include "core/error.h"
#include "core/torch/shim_try.h"

int dhf_train_parse_device(const char *s, const char *what, dhf_device *dev)
{
    if (dhf_device_parse(s, dev) != DHF_OK)
        return dhf_err_set("%s: expected cpu, cuda or cuda:N, got '%s'", what, s);
    if (dev->type == DHF_CUDA) {
        if (!dhf_cuda_available())
            return dhf_err_set("%s %s: this build's libtorch has no usable CUDA device "
                               "(see `dhf info`); use cpu", what, s);
        if (dev->index < 0 || dev->index >= dhf_cuda_device_count())
            return dhf_err_set("%s %s: device index out of range (%d CUDA devices)", what, s,
                               dhf_cuda_device_count());
    }
    return 0;
}

static bool on_device(dhf_tensor t, dhf_device dev)
{
    dhf_device d = dhf_get_device(t);
    return d.type == dev.type && (dev.type == DHF_CPU || d.index == dev.index);
}

/* Re-points handle t at a copy of its tensor on dev. */
static int move(dhf_tensor t, dhf_device dev, bool leaf, const char *name)
{
    if (on_device(t, dev))
        return 0;
    dhf_tensor m = NULL;
    bool prev = true;
    dhf_set_grad_enabled(false, &prev);
    dhf_status st = dhf_to(t, DHF_F32, dev, &m);
    dhf_set_grad_enabled(prev, NULL);
    DHF_TRY(st, name);
    if (leaf)
        DHF_TRY(dhf_set_requires_grad(m, true), name);
    DHF_TRY(dhf_set_(t, m), name);
    dhf_free(m);
    return 0;
fail:
    dhf_free(m);
    return -1;
}

int dhf_train_to_device(dhf_aggregator *a, dhf_agg_adamw *opt, dhf_device dev)
{
    for (int i = 0; i < a->num_params; i++) {
        if (move(a->params[i], dev, true, a->names[i]))
            return dhf_err_wrap("moving the network to the device");
        if (opt && i < opt->num_params &&
            (move(opt->exp_avg[i], dev, false, a->names[i]) ||
             move(opt->exp_avg_sq[i], dev, false, a->names[i])))
            return dhf_err_wrap("moving the AdamW state to the device");
    }
    return 0;
}
