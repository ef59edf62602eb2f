/* Private to the gateway's upstreams. */
#ifndef HSP_AGENT_GATEWAY_INTERNAL_H
#define HSP_AGENT_GATEWAY_INTERNAL_H

#include "gateway.h"

/* Instances marked failed, each until a time; expired marks are dropped on lookup. */
typedef struct hsp_gw_failset {
  struct {
    uint8_t key[HSP_REG_KEY_BYTES];
    uint64_t until;
  } *v;
  size_t n, cap;
} hsp_gw_failset_t;

void hsp_gw_failset_mark(hsp_gw_failset_t *f, const uint8_t key[HSP_REG_KEY_BYTES],
                         uint64_t until);
bool hsp_gw_failset_failed(hsp_gw_failset_t *f, const uint8_t key[HSP_REG_KEY_BYTES],
                           uint64_t now);
void hsp_gw_failset_free(hsp_gw_failset_t *f);

#endif
