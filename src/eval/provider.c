/* provider.c — lifetime and protocol record of a descriptor provider. */
#include "eval/provider.h"

#include <string.h>

void dhf_provider_close(dhf_provider *p)
{
    if (!p)
        return;
    if (p->destroy)
        p->destroy(p->ctx);
    memset(p, 0, sizeof *p);
}

cJSON *dhf_provider_protocol_json(const dhf_provider *p)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "provider", p->name);
    cJSON_AddStringToObject(o, "description", p->description);
    if (p->protocol) {
        cJSON *extra = p->protocol(p->ctx);
        if (extra) {
            /* Move the provider's fields in; ours win on a name clash. */
            while (extra->child) {
                cJSON *it = cJSON_DetachItemViaPointer(extra, extra->child);
                if (cJSON_GetObjectItemCaseSensitive(o, it->string))
                    cJSON_Delete(it);
                else
                    cJSON_AddItemToObject(o, it->string, it);
            }
            cJSON_Delete(extra);
        }
    }
    return o;
}
