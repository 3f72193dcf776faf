/* inversion.h — DHF's DDIM inversion (generalized_steps with run_inversion=True,
 * eta 0, no guidance) with per-saved-step feature delivery, and DHF's
 * collect_and_resize_feats.
 *
 * Step i: eps = UNet(x, unet_t[i], context); x0 = (x - sqrt(1 - a) eps) / sqrt(a);
 * x = sqrt(a_next) x0 + sqrt(1 - a_next) eps. The features of step i are kept when its
 * label N - 1 - i is in save_timestep; they are handed to a callback as soon as the
 * step finishes, so a cache writer can stream them and nothing accumulates. */
#ifndef DHF_EXTRACT_INVERSION_H
#define DHF_EXTRACT_INVERSION_H

#include <stdbool.h>
#include <stdint.h>

#include "extract/ddim.h"
#include "extract/unet.h"
#include "shim/torch_shim.h"

/* One saved step, as handed to the callback. */
typedef struct {
    int save_index;           /* k: position of the label in save_timestep */
    int label;                /* save_timestep[k] */
    int step;                 /* inversion step i = N - 1 - label */
    float unet_timestep;      /* t the UNet saw: -1 for the first step */
    int n_features;           /* dhf_unet_n_features (12 for SD) */
    const dhf_tensor *feats;  /* BORROWED, valid during the call: [B, C_l, H_l, W_l] on
                                 the model's device/dtype, in layer order */
} dhf_saved_step;

/* Return 0 to continue, -1 (with dhf_err_set) to abort the inversion. The callback
 * runs inside the step's shim scope: a tensor it creates dies with the step unless it
 * is detached with dhf_nn_unscope (extract/nn_layers.h). */
typedef int (*dhf_saved_step_fn)(void *user, const dhf_saved_step *s);

typedef struct {
    int num_timesteps;             /* N: 50 (paper) or 1 (one-step variant) */
    const int64_t *save_timestep;  /* labels, e.g. 49, 45, ..., 5, 0 */
    int n_save;
    /* Optional NEW outputs for tests (each forces all N steps to run):
     * xs [N+1, B, C, h, w] (xs[0] = x0), eps [N, B, C, h, w], x_final [B, C, h, w]. */
    dhf_tensor *xs, *eps, *x_final;
    /* Without outputs, steps after the last saved one are skipped (they cannot change
     * any saved feature); set to run them anyway. */
    bool run_all_steps;
} dhf_inversion_opts;

/* x0 [B, C, h, w]: the scaled latent; context [B or 1, L, D]. Calls fn once per saved
 * step, in step order (label N-1 first). Runs under inference mode and one shim scope
 * per step. */
int dhf_ddim_invert(const dhf_unet *u, dhf_tensor x0, dhf_tensor context,
                    const dhf_inversion_opts *o, dhf_saved_step_fn fn, void *user);

/* One DDIM update (eta 0, no clipping): x0 = (x - sqrt(1-a) eps) / sqrt(a), NEW
 * *out = sqrt(a_next) x0 + sqrt(1-a_next) eps, with the coefficients rounded to float32
 * as torch computes them from float32 alphas; NEW *x0_out = x0 when not NULL. */
int dhf_ddim_step(dhf_tensor x, dhf_tensor eps, float a, float a_next, dhf_tensor *out,
                  dhf_tensor *x0_out);

/* The UNet timestep of each saved label, in save_timestep order (for cache metadata
 * before any image is processed): label l -> unet_t[N-1-l] (-1 for l = N-1). */
int dhf_inversion_saved_timesteps(int num_timesteps, const int64_t *save_timestep,
                                  int n_save, float *unet_t);

/* collect_and_resize_feats: each feature bilinearly resized (align_corners false) to
 * R x R, concatenated on dim 1 in layer order -> NEW [B, sum C_l, R, R]. R <= 0 keeps
 * native sizes (they must then agree). */
int dhf_resize_concat(const dhf_tensor *feats, int n, int64_t R, dhf_tensor *out);

#endif
