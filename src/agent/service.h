/*
 * `hyperseaport service`: a HyperDHT server with its own key pair in front of a local TCP
 * service, registered in the registry under that key (so only its holder can renew or
 * remove the registration). Renews at a third of the TTL, registers again when the registry
 * lost it.
 *
 * A proxy's connection carries a session (dataplane.h: one tunnel per client connection);
 * any other connection (the HTTP gateway, older proxies) is piped to the local service as
 * is. Health checks register the instance after the first success, deregister it after 3
 * failures in a row and register it again when it recovers. Stopping drains: deregister,
 * GOAWAY to proxies, no new connections, the open ones finish (up to drain_ms).
 */
#ifndef HSP_AGENT_SERVICE_H
#define HSP_AGENT_SERVICE_H

#include <stdio.h>

#include "dht_io.h"

typedef struct hsp_agent_service_config {
  hsp_dht_io_t *io; /* ready */
  const uint8_t *registry; /* 32 bytes */
  const char *name, *version;
  const char *host; /* the local service */
  int port;
  uint32_t ttl_ms;
  const char *check;          /* health check: "tcp" (default), "http:/path" or "none" */
  uint64_t check_interval_ms; /* 0: 5000 */
  uint64_t drain_ms;          /* on stop, open connections may finish this long */
  FILE *out, *err; /* progress lines, and problems */
} hsp_agent_service_config_t;

typedef struct hsp_agent_service hsp_agent_service_t;

/* Returns 0 or a negative error (HSP_REG_EINVAL for a host that does not resolve or a bad
 * role; else hsp_dht_conn_strerror). */
int hsp_agent_service_start(hsp_agent_service_t **out, const hsp_agent_service_config_t *cfg);
/* Drains: deregisters, unannounces, lets open connections finish (up to drain_ms), waits up
 * to 2 s for the registry's answer, closes everything, then calls cb. */
void hsp_agent_service_stop(hsp_agent_service_t *s, void (*cb)(void *ctx), void *ctx);

#endif
