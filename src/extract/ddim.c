/* ddim.c — the paper's DDIM schedule (float32 like torch on the CPU) and the
 * inversion plan. */
#include "extract/ddim.h"

#include <math.h>

#include "core/error.h"

/* torch.linspace(start, end, n, float32) as libtorch's CPU kernel computes it,
 * value by value (checked bit for bit against torch 1.13 here): the step is a float;
 * the first half counts up from start, the second half down from end, each value in
 * ONE rounding (the AVX2 kernel is compiled with FMA contraction); the vectorised loop
 * fills 8 values at a time as fma(k, step, base(first index)), two vectors per turn,
 * and the tail (n mod 16) with the scalar formula. Betas then equal torch's bits. */
#define LINSPACE_VEC 8

static float linspace_at(float start, float end, float step, int n, int i)
{
    return i < n / 2 ? fmaf(step, (float)i, start) : fmaf(-step, (float)(n - i - 1), end);
}

static void torch_linspace_f32(float start, float end, int n, float *out)
{
    const float step = (end - start) / (float)(n - 1);
    int i = 0;
    for (; i <= n - 2 * LINSPACE_VEC; i += 2 * LINSPACE_VEC)
        for (int v = 0; v < 2; v++) {
            int i0 = i + v * LINSPACE_VEC;
            float base = linspace_at(start, end, step, n, i0);
            for (int k = 0; k < LINSPACE_VEC; k++)
                out[i0 + k] = fmaf((float)k, step, base);
        }
    for (; i < n; i++)
        out[i] = linspace_at(start, end, step, n, i);
}

void dhf_ddim_alphas_cumprod(float out[DHF_DDIM_TRAIN_STEPS])
{
    const int n = DHF_DDIM_TRAIN_STEPS;
    float lin[DHF_DDIM_TRAIN_STEPS];
    torch_linspace_f32((float)sqrt(0.00085), (float)sqrt(0.012), n, lin);
    /* cumprod accumulates in double (at::acc_type<float, false>) and stores floats. */
    double acc = 1.0;
    for (int i = 0; i < n; i++) {
        volatile float beta = lin[i] * lin[i];
        volatile float alpha = 1.0f - beta;
        acc *= (double)alpha;
        out[i] = (float)acc;
    }
}

int dhf_ddim_plan_make(int num_timesteps, dhf_ddim_plan *plan)
{
    if (num_timesteps < 1 || num_timesteps > DHF_DDIM_TRAIN_STEPS)
        return dhf_err_set("num_timesteps: %d is out of range [1, %d]", num_timesteps,
                           DHF_DDIM_TRAIN_STEPS);
    int N = num_timesteps, ratio = DHF_DDIM_TRAIN_STEPS / N;
    plan->n_steps = N;
    plan->step_ratio = ratio;
    dhf_ddim_alphas_cumprod(plan->alphas_cumprod);
    for (int i = 0; i < N; i++) {
        int t = i == 0 ? -1 : (i - 1) * ratio, next = i * ratio;
        plan->unet_t[i] = t;
        plan->next_t[i] = next;
        plan->alpha[i] = t < 0 ? 1.0f : plan->alphas_cumprod[t];
        plan->alpha_next[i] = plan->alphas_cumprod[next];
    }
    return 0;
}

int dhf_ddim_scheduler_timestep(const dhf_ddim_plan *plan, int i)
{
    return (plan->n_steps - 1 - i) * plan->step_ratio;
}

int dhf_ddim_save_steps(const dhf_ddim_plan *plan, const int64_t *labels, int n_labels,
                        int *steps)
{
    if (n_labels < 1)
        return dhf_err_set("save_timestep: empty (keep at least one step)");
    for (int k = 0; k < n_labels; k++) {
        if (labels[k] < 0 || labels[k] >= plan->n_steps)
            return dhf_err_set("save_timestep[%d]: %lld is out of range [0, %d) for "
                               "num_timesteps %d", k, (long long)labels[k], plan->n_steps,
                               plan->n_steps);
        for (int j = 0; j < k; j++)
            if (labels[j] == labels[k])
                return dhf_err_set("save_timestep[%d]: %lld is listed twice", k,
                                   (long long)labels[k]);
        steps[k] = plan->n_steps - 1 - (int)labels[k];
    }
    return 0;
}
