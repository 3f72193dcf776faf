/* ddim.h — the paper's DDIM scheduler and its inversion walk.
 * DHF builds DDIMScheduler(beta_start 0.00085, beta_end 0.012, "scaled_linear",
 * 1000 train steps) itself, so steps_offset is 0 and the model folder's
 * scheduler_config.json is ignored. betas = linspace(sqrt(0.00085), sqrt(0.012),
 * 1000, float32)^2 and alphas_cumprod = cumprod(1 - betas) in float32, as torch
 * computes them on the CPU. */
#ifndef DHF_EXTRACT_DDIM_H
#define DHF_EXTRACT_DDIM_H

#include <stdint.h>

#define DHF_DDIM_TRAIN_STEPS 1000

/* alphas_cumprod[1000] of the paper's scheduler. */
void dhf_ddim_alphas_cumprod(float out[DHF_DDIM_TRAIN_STEPS]);

/* The inversion walk for num_timesteps steps: step i runs the UNet at unet_t[i]
 * (-1 for i = 0: the clean latent, alpha 1) and moves to next_t[i];
 * seq = arange(N) * (1000 / N), seq_next = [-1] + seq[:-1]. Label of step i is
 * N - 1 - i (DHF's save_timestep). */
typedef struct {
    int n_steps;
    int step_ratio;                               /* 1000 / N (integer division) */
    int unet_t[DHF_DDIM_TRAIN_STEPS];
    int next_t[DHF_DDIM_TRAIN_STEPS];
    float alpha[DHF_DDIM_TRAIN_STEPS];            /* alphas_cumprod[unet_t], 1 for t = -1 */
    float alpha_next[DHF_DDIM_TRAIN_STEPS];
    float alphas_cumprod[DHF_DDIM_TRAIN_STEPS];
} dhf_ddim_plan;

/* num_timesteps in 1..1000. */
int dhf_ddim_plan_make(int num_timesteps, dhf_ddim_plan *plan);
/* The scheduler's `timesteps` (descending): (N-1-i) * ratio for i = 0..N-1. */
int dhf_ddim_scheduler_timestep(const dhf_ddim_plan *plan, int i);

/* save_timestep labels -> inversion step indices (step = N - 1 - label). Labels must
 * lie in [0, N) and be distinct; error names the offending entry. */
int dhf_ddim_save_steps(const dhf_ddim_plan *plan, const int64_t *labels, int n_labels,
                        int *steps);

#endif
