/* shim_try.h — the bridge from shim status codes to the C error channel:
 * a failed shim call becomes dhf_err_set("<what>: <shim message>") and a jump to
 * the function's `fail:` label, so every tensor routine has one cleanup path. */
#ifndef DHF_CORE_TORCH_SHIM_TRY_H
#define DHF_CORE_TORCH_SHIM_TRY_H

#include "core/error.h"
#include "shim/torch_shim.h"

#define DHF_TRY(call, what)                                                   \
    do {                                                                      \
        if ((call) != DHF_OK) {                                               \
            dhf_err_set("%s: %s", (what), dhf_last_error());                  \
            goto fail;                                                        \
        }                                                                     \
    } while (0)

static inline dhf_device dhf_cpu_device(void)
{
    dhf_device d = { DHF_CPU, 0 };
    return d;
}

#endif
