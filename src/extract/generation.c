/* generation.c — the paper's generation sampler with classifier-free guidance and
 * streamed conditional-pass features (generation.h). */
#include "extract/generation.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "extract/nn_layers.h"

/* Generation step i walks the inversion plan backwards: it runs at the inversion's
 * next_t[N-1-i] and moves to its unet_t[N-1-i] (-1 at the end: alpha 1). */
static void gen_step(const dhf_ddim_plan *p, int i, int *t, float *a, float *a_next)
{
    int j = p->n_steps - 1 - i;
    *t = p->next_t[j];
    *a = p->alpha_next[j];
    *a_next = p->alpha[j];
}

int dhf_generation_saved_timesteps(int num_timesteps, const int64_t *save_timestep, int n_save,
                                   float *unet_t)
{
    dhf_ddim_plan plan;
    if (dhf_ddim_plan_make(num_timesteps, &plan) != 0)
        return -1;
    for (int k = 0; k < n_save; k++) {
        if (save_timestep[k] < 0 || save_timestep[k] >= num_timesteps)
            return dhf_err_set("save_timestep[%d] = %lld is outside 0..%d", k,
                               (long long)save_timestep[k], num_timesteps - 1);
        int t;
        float a, an;
        gen_step(&plan, (int)save_timestep[k], &t, &a, &an);
        unet_t[k] = (float)t;
    }
    return 0;
}

/* eps = e_u + gs * (e_c - e_u), in float32 as torch */
static int guide(dhf_tensor eu, dhf_tensor ec, double gs, dhf_tensor *out)
{
    int rc = 0;
    dhf_tensor d = NULL, s = NULL, r = NULL;
    dhf_scope_begin();
    DHF_SHIM(dhf_sub(ec, eu, &d));
    DHF_SHIM(dhf_mul_scalar(d, gs, &s));
    DHF_SHIM(dhf_add(eu, s, &r));
    *out = r;
done:;
    dhf_tensor *outs[1] = {out};
    return dhf_nn_scope_finish(rc, outs, 1);
}

int dhf_ddim_generate(const dhf_unet *u, dhf_tensor xT, dhf_tensor cond, dhf_tensor uncond,
                      const dhf_generation_opts *o, dhf_saved_step_fn fn, void *user,
                      dhf_tensor *final_latent)
{
    dhf_ddim_plan plan;
    if (dhf_ddim_plan_make(o->num_timesteps, &plan) != 0)
        return -1;
    const int N = plan.n_steps;
    const bool cfg = o->guidance_scale != -1.0;
    if (cfg && !uncond)
        return dhf_err_set("generation: guidance_scale %g needs the negative prompt's "
                           "embedding", o->guidance_scale);
    for (int k = 0; k < o->n_save; k++)
        if (o->save_timestep[k] < 0 || o->save_timestep[k] >= N)
            return dhf_err_set("save_timestep[%d] = %lld is outside 0..%d", k,
                               (long long)o->save_timestep[k], N - 1);
    int nf = dhf_unet_n_features(u);
    int64_t B = dhf_size(xT, 0);
    bool trace = o->xs || o->x0_preds || o->eps || o->eps_cond || o->eps_uncond;
    float *tvec = malloc((size_t)B * sizeof *tvec);
    dhf_tensor *feats = calloc((size_t)nf, sizeof *feats);
    dhf_tensor *tr = trace ? calloc((size_t)(5 * (N + 1)), sizeof *tr) : NULL;
    if (!tvec || !feats || (trace && !tr)) {
        free(tvec);
        free(feats);
        free(tr);
        return dhf_err_set("out of memory");
    }
    dhf_tensor *t_xs = tr, *t_x0 = tr ? tr + (N + 1) : NULL, *t_eps = tr ? tr + 2 * (N + 1) : NULL;
    dhf_tensor *t_ec = tr ? tr + 3 * (N + 1) : NULL, *t_eu = tr ? tr + 4 * (N + 1) : NULL;

    int rc = 0;
    bool inference = dhf_inference_begin() == DHF_OK;
    dhf_tensor x = NULL, x0_last = NULL;
    dhf_scope_begin();   /* the running latent and the traces live here */
    {
        dhf_model_placement pl = dhf_unet_placement(u);
        dhf_tensor placed = NULL;
        DHF_SHIM(dhf_to(xT, pl.dtype, pl.device, &placed));
        DHF_SHIM(dhf_clone(placed, &x));
        dhf_free(placed);
    }
    if (trace) {
        t_xs[0] = x;
        t_x0[0] = x;
    }
    for (int i = 0; i < N; i++) {
        int t;
        float a, a_next;
        gen_step(&plan, i, &t, &a, &a_next);
        int k_saved = -1;
        for (int k = 0; k < o->n_save; k++)
            if (o->save_timestep[k] == i)
                k_saved = k;
        for (int64_t b = 0; b < B; b++)
            tvec[b] = (float)t;
        dhf_tensor eu = NULL, ec = NULL, eps = NULL, x_next = NULL, x0 = NULL;
        dhf_scope_begin();
        int step_rc = 0;
        /* unconditional first; the conditional pass's features are the ones kept */
        if (cfg)
            step_rc = dhf_unet_forward(u, x, tvec, uncond, &eu, NULL, NULL);
        if (step_rc == 0)
            step_rc = dhf_unet_forward(u, x, tvec, cond, &ec, k_saved >= 0 ? feats : NULL, NULL);
        if (step_rc == 0 && k_saved >= 0 && fn) {
            dhf_saved_step s = {k_saved, (int)o->save_timestep[k_saved], i, (float)t, nf, feats};
            step_rc = fn(user, &s);
        }
        if (step_rc == 0) {
            if (cfg)
                step_rc = guide(eu, ec, o->guidance_scale, &eps);
            else
                eps = ec;
        }
        if (step_rc == 0)
            step_rc = dhf_ddim_step(x, eps, a, a_next, &x_next, &x0);
        if (step_rc == 0) {
            dhf_keep(x_next);
            dhf_keep(x0);
            if (trace) {
                dhf_keep(eps);
                if (cfg)
                    dhf_keep(ec);   /* without guidance eps is ec itself */
                t_eps[i] = eps;
                t_ec[i] = ec;
                if (cfg) {
                    dhf_keep(eu);
                    t_eu[i] = eu;
                }
            }
        }
        dhf_scope_end();
        if (step_rc != 0) {
            rc = dhf_err_wrap("generation step %d (UNet t=%d)", i, t);
            goto done;
        }
        if (!trace) {
            dhf_free(x);
            dhf_free(x0_last);
        }
        x = x_next;
        x0_last = x0;
        if (trace) {
            t_xs[i + 1] = x;
            t_x0[i + 1] = x0;
        }
    }
    if (o->xs)
        DHF_SHIM(dhf_stack(t_xs, N + 1, 0, o->xs));
    if (o->x0_preds)
        DHF_SHIM(dhf_stack(t_x0, N + 1, 0, o->x0_preds));
    if (o->eps)
        DHF_SHIM(dhf_stack(t_eps, N, 0, o->eps));
    if (o->eps_cond)
        DHF_SHIM(dhf_stack(t_ec, N, 0, o->eps_cond));
    if (o->eps_uncond && cfg)
        DHF_SHIM(dhf_stack(t_eu, N, 0, o->eps_uncond));
    if (o->x0)
        DHF_SHIM(dhf_clone(x0_last, o->x0));
    if (final_latent)
        DHF_SHIM(dhf_clone(x0_last, final_latent));
done:;
    dhf_tensor *outs[7] = {o->xs, o->x0_preds, o->eps, o->eps_cond,
                           cfg ? o->eps_uncond : NULL, o->x0, final_latent};
    int n_outs = 0;
    dhf_tensor *keep[7];
    for (int k = 0; k < 7; k++)
        if (outs[k])
            keep[n_outs++] = outs[k];
    rc = dhf_nn_scope_finish(rc, keep, n_outs);
    if (inference)
        dhf_inference_end();
    free(tvec);
    free(feats);
    free(tr);
    return rc;
}
