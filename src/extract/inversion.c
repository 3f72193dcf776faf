/* inversion.c — DHF DDIM inversion with streamed per-step features, and the
 * resize+concatenate of collect_and_resize_feats. */
#include "extract/inversion.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "extract/image_prep.h"
#include "extract/nn_layers.h"

int dhf_ddim_step(dhf_tensor x, dhf_tensor eps, float a, float a_next, dhf_tensor *out,
                  dhf_tensor *x0_out)
{
    int rc = 0;
    volatile float one_minus_a = 1.0f - a, one_minus_next = 1.0f - a_next;
    float c1 = sqrtf(one_minus_a), sa = sqrtf(a), sn = sqrtf(a_next);
    float c2 = sqrtf(one_minus_next);
    dhf_tensor e1 = NULL, num = NULL, sat = NULL, x0 = NULL, t1 = NULL, t2 = NULL, res = NULL;
    dhf_scope_begin();
    DHF_SHIM(dhf_mul_scalar(eps, c1, &e1));
    DHF_SHIM(dhf_sub(x, e1, &num));
    DHF_SHIM(dhf_scalar_tensor(sa, dhf_get_dtype(x), &sat));
    if (dhf_get_device(x).type != DHF_CPU) {
        dhf_tensor moved = NULL;
        DHF_SHIM(dhf_to(sat, dhf_get_dtype(x), dhf_get_device(x), &moved));
        sat = moved;
    }
    DHF_SHIM(dhf_div(num, sat, &x0));             /* true division, as torch */
    DHF_SHIM(dhf_mul_scalar(x0, sn, &t1));
    DHF_SHIM(dhf_mul_scalar(eps, c2, &t2));
    DHF_SHIM(dhf_add(t1, t2, &res));
    *out = res;
    if (x0_out)
        *x0_out = x0;
done:;
    dhf_tensor *outs[2] = {out, x0_out};
    return dhf_nn_scope_finish(rc, outs, x0_out ? 2 : 1);
}

int dhf_ddim_invert(const dhf_unet *u, dhf_tensor x0, dhf_tensor context,
                    const dhf_inversion_opts *o, dhf_saved_step_fn fn, void *user)
{
    dhf_ddim_plan plan;
    if (dhf_ddim_plan_make(o->num_timesteps, &plan) != 0)
        return -1;
    int n_save = o->n_save, N = plan.n_steps;
    int *save_steps = calloc((size_t)(n_save > 0 ? n_save : 1), sizeof *save_steps);
    if (!save_steps)
        return dhf_err_set("out of memory");
    if (dhf_ddim_save_steps(&plan, o->save_timestep, n_save, save_steps) != 0) {
        free(save_steps);
        return -1;
    }
    bool want_trace = o->xs || o->eps || o->x_final;
    int last = 0;
    for (int k = 0; k < n_save; k++)
        if (save_steps[k] > last)
            last = save_steps[k];
    int n_run = (want_trace || o->run_all_steps) ? N : last + 1;

    int nf = dhf_unet_n_features(u);
    int64_t B = dhf_size(x0, 0);
    float *tvec = malloc((size_t)B * sizeof *tvec);
    dhf_tensor *feats = calloc((size_t)nf, sizeof *feats);
    dhf_tensor *xs = want_trace ? calloc((size_t)N + 1, sizeof *xs) : NULL;
    dhf_tensor *epss = want_trace ? calloc((size_t)N, sizeof *epss) : NULL;
    if (!tvec || !feats || (want_trace && (!xs || !epss))) {
        free(tvec);
        free(feats);
        free(xs);
        free(epss);
        free(save_steps);
        return dhf_err_set("out of memory");
    }

    int rc = 0;
    bool inference = dhf_inference_begin() == DHF_OK;
    dhf_tensor x = NULL;
    dhf_scope_begin();   /* the trace and the running latent live here */
    {
        /* the walk runs where the UNet's weights are, in their dtype (DHF does too) */
        dhf_model_placement pl = dhf_unet_placement(u);
        dhf_tensor placed = NULL;
        DHF_SHIM(dhf_to(x0, pl.dtype, pl.device, &placed));
        DHF_SHIM(dhf_clone(placed, &x));
        dhf_free(placed);
    }
    if (want_trace)
        xs[0] = x;
    for (int i = 0; i < n_run; i++) {
        int k_saved = -1;
        for (int k = 0; k < n_save; k++)
            if (save_steps[k] == i)
                k_saved = k;
        for (int64_t b = 0; b < B; b++)
            tvec[b] = (float)plan.unet_t[i];
        dhf_tensor eps = NULL, x_next = NULL;
        dhf_scope_begin();
        int step_rc = dhf_unet_forward(u, x, tvec, context, &eps,
                                       k_saved >= 0 ? feats : NULL, NULL);
        if (step_rc == 0 && k_saved >= 0 && fn) {
            dhf_saved_step s = {k_saved, (int)o->save_timestep[k_saved], i,
                                (float)plan.unet_t[i], nf, feats};
            step_rc = fn(user, &s);
        }
        if (step_rc == 0)
            step_rc = dhf_ddim_step(x, eps, plan.alpha[i], plan.alpha_next[i], &x_next, NULL);
        if (step_rc == 0) {
            dhf_keep(x_next);
            if (want_trace) {
                dhf_keep(eps);
                epss[i] = eps;
            }
        }
        dhf_scope_end();   /* frees the step's features (and eps unless traced) */
        if (step_rc != 0) {
            rc = dhf_err_wrap("inversion step %d (UNet t=%d)", i, plan.unet_t[i]);
            goto done;
        }
        if (!want_trace)
            dhf_free(x);
        x = x_next;
        if (want_trace)
            xs[i + 1] = x;
    }
    if (want_trace) {
        if (o->xs)
            DHF_SHIM(dhf_stack(xs, N + 1, 0, o->xs));
        if (o->eps)
            DHF_SHIM(dhf_stack(epss, N, 0, o->eps));
        if (o->x_final)
            DHF_SHIM(dhf_clone(x, o->x_final));
    }
done:
    if (rc == 0 && want_trace) {
        if (o->xs)
            dhf_keep(*o->xs);
        if (o->eps)
            dhf_keep(*o->eps);
        if (o->x_final)
            dhf_keep(*o->x_final);
    }
    if (dhf_scope_end() != DHF_OK && rc == 0)
        rc = dhf_nn_shim_fail("dhf_scope_end");
    if (inference)
        dhf_inference_end();
    free(tvec);
    free(feats);
    free(xs);
    free(epss);
    free(save_steps);
    return rc;
}

int dhf_inversion_saved_timesteps(int num_timesteps, const int64_t *save_timestep,
                                  int n_save, float *unet_t)
{
    dhf_ddim_plan plan;
    if (dhf_ddim_plan_make(num_timesteps, &plan) != 0)
        return -1;
    int *steps = calloc((size_t)(n_save > 0 ? n_save : 1), sizeof *steps);
    if (!steps)
        return dhf_err_set("out of memory");
    int rc = dhf_ddim_save_steps(&plan, save_timestep, n_save, steps);
    for (int k = 0; rc == 0 && k < n_save; k++)
        unet_t[k] = (float)plan.unet_t[steps[k]];
    free(steps);
    return rc;
}

int dhf_resize_concat(const dhf_tensor *feats, int n, int64_t R, dhf_tensor *out)
{
    if (n < 1)
        return dhf_err_set("resize_concat: no features");
    int rc = 0;
    dhf_tensor *parts = calloc((size_t)n, sizeof *parts);
    if (!parts)
        return dhf_err_set("out of memory");
    dhf_tensor res = NULL;
    dhf_scope_begin();
    for (int i = 0; i < n; i++) {
        if (R > 0)
            DHF_CHECK(dhf_resize_bilinear(feats[i], R, R, &parts[i]));
        else
            parts[i] = feats[i];
    }
    DHF_SHIM(dhf_cat(parts, n, 1, &res));
    *out = res;
done:
    free(parts);
    {
        dhf_tensor *outs[1] = {out};
        return dhf_nn_scope_finish(rc, outs, 1);
    }
}
