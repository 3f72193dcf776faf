/* profile.h — (DHF_PROFILE builds only: `make bench`) where the engine's training step
 * spends its time: the convolutions and each row pass of the last forward and backward
 * (fastnet.h's dhf_fastnet_profile). The product build has no timers in its hot path. */
#ifndef DHF_ENGINE_PROFILE_H
#define DHF_ENGINE_PROFILE_H

#ifdef DHF_PROFILE
#include "engine/engine.h"
#include "engine/fastnet.h"

/* The training workspace's profile (zeros before the first step). */
void dhf_runner_get_profile(const dhf_runner *r, dhf_fastnet_profile *p);
#endif

#endif
