/* pair_sampler.c — counter-based data order of the trainer (see pair_sampler.h). */
#include "train/pair_sampler.h"

#include <stdlib.h>

#include "core/error.h"

#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ull
/* "data" in the top bytes: the data-order stream differs from seed-derived streams
 * used elsewhere (network init) even for the same config seed. */
#define DATA_STREAM_TAG 0x6461746100000000ull

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t dhf_train_data_seed(int64_t config_seed)
{
    return (uint64_t)config_seed ^ DATA_STREAM_TAG;
}

uint64_t dhf_train_rng_at(uint64_t seed, uint64_t k)
{
    return mix64(seed + (k + 1) * GOLDEN_GAMMA);
}

uint64_t dhf_train_rng_next(dhf_train_rng *rng)
{
    return dhf_train_rng_at(rng->seed, rng->counter++);
}

void dhf_pair_sampler_permutation(uint64_t seed, size_t n, int epoch, size_t *perm)
{
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    if (n < 2)
        return;
    dhf_train_rng rng = { seed, (uint64_t)epoch * (uint64_t)(n - 1) };
    for (size_t i = n - 1; i >= 1; i--) {
        size_t j = (size_t)(dhf_train_rng_next(&rng) % (uint64_t)(i + 1));
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

int dhf_pair_sampler_init(dhf_pair_sampler *s, size_t n_pairs, int batch_size,
                          int64_t max_steps_per_epoch, int max_epochs, uint64_t seed)
{
    if (s)
        *s = (dhf_pair_sampler){ 0 };
    if (!s || n_pairs < 1)
        return dhf_err_set("training: no training pairs (need at least one pair with a "
                           "keypoint visible in both images)");
    if (batch_size < 1 || max_steps_per_epoch < 1 || max_epochs < 1)
        return dhf_err_set("training: batch_size (%d), max_steps_per_epoch (%lld) and "
                           "max_epochs (%d) must be >= 1",
                           batch_size, (long long)max_steps_per_epoch, max_epochs);
    int64_t per_epoch = (int64_t)((n_pairs + (size_t)batch_size - 1) / (size_t)batch_size);
    s->perm = malloc(n_pairs * sizeof *s->perm);
    if (!s->perm)
        return dhf_err_set("training: out of memory for %zu pair indices", n_pairs);
    s->n_pairs = n_pairs;
    s->batch_size = batch_size;
    s->steps_per_epoch = per_epoch < max_steps_per_epoch ? per_epoch : max_steps_per_epoch;
    s->max_epochs = max_epochs;
    s->seed = seed;
    s->perm_epoch = -1;
    return 0;
}

void dhf_pair_sampler_free(dhf_pair_sampler *s)
{
    if (!s)
        return;
    free(s->perm);
    *s = (dhf_pair_sampler){ 0 };
}

int64_t dhf_pair_sampler_total_steps(const dhf_pair_sampler *s)
{
    return (int64_t)s->max_epochs * s->steps_per_epoch;
}

int dhf_pair_sampler_batch(dhf_pair_sampler *s, int64_t step, size_t *out, int *count,
                           int *epoch)
{
    int64_t total = dhf_pair_sampler_total_steps(s);
    if (step < 1 || step > total)
        return dhf_err_set("training: step %lld outside 1..%lld", (long long)step,
                           (long long)total);
    int e = (int)((step - 1) / s->steps_per_epoch);
    int64_t i = (step - 1) % s->steps_per_epoch;
    if (s->perm_epoch != e) {
        dhf_pair_sampler_permutation(s->seed, s->n_pairs, e, s->perm);
        s->perm_epoch = e;
    }
    size_t first = (size_t)i * (size_t)s->batch_size;
    int n = 0;
    for (int j = 0; j < s->batch_size && first + (size_t)j < s->n_pairs; j++)
        out[n++] = s->perm[first + (size_t)j];
    *count = n;
    if (epoch)
        *epoch = e;
    return 0;
}

dhf_train_rng dhf_pair_sampler_rng_after(const dhf_pair_sampler *s, int64_t step)
{
    dhf_train_rng r = { s->seed, 0 };
    if (step < 1 || s->n_pairs < 2)
        return r;
    /* the permutation of a step's epoch is drawn before its first step */
    uint64_t epochs_drawn = (uint64_t)((step - 1) / s->steps_per_epoch) + 1;
    r.counter = epochs_drawn * (uint64_t)(s->n_pairs - 1);
    return r;
}
