/*
 * `hyperseaport proxy`: a local TCP port whose every connection goes to an instance of a
 * role whose version satisfies a range, chosen by the balancer (dataplane.h: one warm
 * session per instance, failover before any byte is forwarded, ejection and probing, a
 * wait for a first instance). Instances are looked up in a local replica of the registry
 * (replica.h) kept on disk and kept current over the registry session (a snapshot when
 * new or far behind, then WATCH), so the proxy keeps working while the registry is down
 * and catches up when it is back.
 */
#ifndef HSP_AGENT_PROXY_H
#define HSP_AGENT_PROXY_H

#include <stdio.h>

#include "dht_io.h"

typedef struct hsp_agent_proxy_config {
  hsp_dht_io_t *io; /* ready */
  const uint8_t *registry; /* 32 bytes */
  const char *name, *range;
  const char *host; /* address to listen on */
  int port;
  const char *replica_path; /* the replica's database file */
  int balance;              /* an hsp_bal_policy_t (0: p2c) */
  uint64_t wait_ms;         /* hold a connection this long for an instance (0: fail at once) */
  FILE *out, *err;
} hsp_agent_proxy_config_t;

typedef struct hsp_agent_proxy hsp_agent_proxy_t;

/* Returns 0, or a negative error: a libuv error (bind) or an HSP_REG_E* (replica). *msg
 * says which step failed. */
int hsp_agent_proxy_start(hsp_agent_proxy_t **out, const hsp_agent_proxy_config_t *cfg,
                          const char **msg);
/* Stops listening, closes every connection (after connects in flight settle), then cb. */
void hsp_agent_proxy_stop(hsp_agent_proxy_t *p, void (*cb)(void *ctx), void *ctx);

#endif
