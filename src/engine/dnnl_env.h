/* dnnl_env.h — the process-wide oneDNN CPU engine and stream that every oneDNN
 * primitive of dhf runs on (dnnl_conv.c, dnnl_matmul.c), created once on first use.
 * Only built with oneDNN (DHF_HAVE_DNNL). */
#ifndef DHF_ENGINE_DNNL_ENV_H
#define DHF_ENGINE_DNNL_ENV_H

#ifdef DHF_HAVE_DNNL
#include <dnnl.h>

/* 0 with *engine / *stream set (either may be NULL), or -1 with dhf_err_set naming
 * what failed, prefixed by `who`. */
int dhf_dnnl_env(const char *who, dnnl_engine_t *engine, dnnl_stream_t *stream);
#endif

#endif
