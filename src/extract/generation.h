/* generation.h — the paper's generation mode (its generalized_steps with
 * run_inversion=False, eta 0): from a noise latent x_T, 50 DDIM steps down the same
 * schedule the inversion climbs (step i runs the UNet at t = 980 - 20 i and moves to
 * t - 20; the last step to alpha 1, so the final latent is the last x0 prediction),
 * classifier-free guidance as two separate UNet calls per step (unconditional first,
 * eps = e_u + gs (e_c - e_u)) unless guidance_scale is exactly -1 (one conditional
 * call), and the decoder features of the conditional pass delivered for every saved
 * label, where generation step i has label i (inversion: N - 1 - i). */
#ifndef DHF_EXTRACT_GENERATION_H
#define DHF_EXTRACT_GENERATION_H

#include <stdint.h>

#include "extract/inversion.h"

typedef struct {
    int num_timesteps;             /* N (50) */
    const int64_t *save_timestep;  /* generation labels kept (step i = label i) */
    int n_save;
    double guidance_scale;         /* -1: no guidance (one call); anything else: two calls */
    /* Optional NEW traces for tests: xs [N+1, ...] (xs[0] = x_T), x0_preds [N+1, ...]
     * (x0_preds[0] = x_T), eps [N, ...] (the guided prediction), eps_cond / eps_uncond
     * [N, ...] (the two passes; eps_uncond only with guidance), x0 (the final latent). */
    dhf_tensor *xs, *x0_preds, *eps, *eps_cond, *eps_uncond, *x0;
} dhf_generation_opts;

/* xT [B, C, h, w]; cond / uncond [B or 1, L, D] (uncond unused without guidance; the
 * caller encodes the negative prompt, "" included). fn gets each saved step in step
 * order (label = step); s->step = i, s->unet_timestep = 980 - 20 i. Always runs all N
 * steps (the final latent is the output); *final_latent (NEW, may be NULL) = x0 of the
 * last step. */
int dhf_ddim_generate(const dhf_unet *u, dhf_tensor xT, dhf_tensor cond, dhf_tensor uncond,
                      const dhf_generation_opts *o, dhf_saved_step_fn fn, void *user,
                      dhf_tensor *final_latent);

/* The UNet timestep of each saved generation label: label l -> t of step l. */
int dhf_generation_saved_timesteps(int num_timesteps, const int64_t *save_timestep, int n_save,
                                   float *unet_t);

#endif
