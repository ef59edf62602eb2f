/*
 * `hyperseaport service`: a HyperDHT server with its own key pair that pipes each incoming
 * connection to a local TCP service, registered in the registry under that key (so only
 * its holder can renew or remove the registration). Renews at a third of the TTL,
 * registers again when the registry lost it, deregisters when stopped.
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
  FILE *out, *err; /* progress lines, and problems */
} hsp_agent_service_config_t;

typedef struct hsp_agent_service hsp_agent_service_t;

/* Returns 0 or a negative error (HSP_REG_EINVAL for a host that does not resolve or a bad
 * role; else hsp_dht_conn_strerror). */
int hsp_agent_service_start(hsp_agent_service_t **out, const hsp_agent_service_config_t *cfg);
/* Deregisters (waiting up to 2 s for the registry's answer), unannounces, closes every
 * connection, then calls cb. */
void hsp_agent_service_stop(hsp_agent_service_t *s, void (*cb)(void *ctx), void *ctx);

#endif
