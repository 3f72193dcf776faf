/* pair_sampler.h — the trainer's data order: which training pairs each optimiser
 * step uses. Every epoch is a fresh permutation of the N training pairs, truncated
 * to steps_per_epoch * batch_size pairs (the paper: np.random.permutation(train)[:
 * max_steps_per_epoch]); step i of the epoch takes the batch_size pairs at
 * positions i*B .. i*B+B-1 (the last batch of an epoch may be shorter).
 *
 * The generator is counter-based so that a checkpoint describes it with two
 * integers: draw k of a stream is splitmix64 of (seed + (k+1) * golden gamma),
 * i.e. the k-th output of a splitmix64 stream seeded with `seed`. Epoch e's
 * permutation is a Fisher-Yates shuffle (for i = N-1 down to 1: j = draw % (i+1),
 * swap) consuming draws e*(N-1) .. (e+1)*(N-1)-1, so after the permutation of
 * epoch e the counter is (e+1)*(N-1) whatever happened before: a resumed run
 * recomputes exactly the order an uninterrupted run used. */
#ifndef DHF_TRAIN_PAIR_SAMPLER_H
#define DHF_TRAIN_PAIR_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

/* Counter-based splitmix64: the whole state is (seed, counter). */
typedef struct {
    uint64_t seed;
    uint64_t counter;   /* draws consumed */
} dhf_train_rng;

/* The data-order stream's seed for a config seed (decorrelated from the network
 * initialisation, which uses the config seed directly). */
uint64_t dhf_train_data_seed(int64_t config_seed);
/* Draw number rng->counter, then counter += 1. */
uint64_t dhf_train_rng_next(dhf_train_rng *rng);
/* Draw number k of the stream, without state. */
uint64_t dhf_train_rng_at(uint64_t seed, uint64_t k);

typedef struct {
    size_t n_pairs;            /* N >= 1 */
    int batch_size;            /* B >= 1 */
    int64_t steps_per_epoch;   /* min(max_steps_per_epoch, ceil(N / B)) */
    int max_epochs;
    uint64_t seed;             /* data-order stream */
    size_t *perm;              /* permutation of the current epoch */
    int perm_epoch;            /* epoch of perm, -1 = none yet */
} dhf_pair_sampler;

/* Returns 0, or -1 with dhf_err_msg() (no pairs, bad sizes, out of memory). */
int dhf_pair_sampler_init(dhf_pair_sampler *s, size_t n_pairs, int batch_size,
                          int64_t max_steps_per_epoch, int max_epochs, uint64_t seed);
void dhf_pair_sampler_free(dhf_pair_sampler *s);     /* zeroed struct or NULL ok */

/* max_epochs * steps_per_epoch. */
int64_t dhf_pair_sampler_total_steps(const dhf_pair_sampler *s);

/* The pairs of global step `step` (1-based: step 1 is the first update):
 * out[0..*count-1] (capacity batch_size) are indices into the training set; *epoch
 * (may be NULL) gets the 0-based epoch. Error when step is outside 1..total. */
int dhf_pair_sampler_batch(dhf_pair_sampler *s, int64_t step, size_t *out, int *count,
                           int *epoch);

/* The generator state once the pairs of steps 1..step were drawn (step 0: nothing
 * drawn yet): what a checkpoint taken after `step` stores. */
dhf_train_rng dhf_pair_sampler_rng_after(const dhf_pair_sampler *s, int64_t step);

/* Fisher-Yates permutation of 0..n-1 for `epoch` (draws as described above). */
void dhf_pair_sampler_permutation(uint64_t seed, size_t n, int epoch, size_t *perm);

#endif
