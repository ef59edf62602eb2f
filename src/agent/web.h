/*
 * `hyperseaport web` and `--web`: the HTTP gateway (gateway.h) on the registry. On its own,
 * it follows the registry into a local replica (follow.h) and so keeps serving while the
 * registry is down; inside the registry process, it reads the registry's store. Either way it
 * reaches instances over the data plane (sessions, balancer), and dashboards update on every registry change.
 */
#ifndef HSP_AGENT_WEB_H
#define HSP_AGENT_WEB_H

#include <stdio.h>

#include "balance.h"
#include "dht_io.h"
#include "store.h"

typedef struct hsp_agent_web_config {
  hsp_dht_io_t *io;         /* ready */
  const uint8_t *registry;  /* 32 bytes: the registry to follow (when store is NULL) */
  const char *replica_path; /* the replica's database file (when store is NULL) */
  hsp_store_t *store;       /* inside the registry: its store (then call ..._changed) */
  const char *host;         /* address to listen on */
  int port;
  hsp_bal_policy_t balance; /* which instance of a role gets a request (default p2c) */
  FILE *out, *err;
} hsp_agent_web_config_t;

typedef struct hsp_agent_web hsp_agent_web_t;

/* Returns 0, or a negative error: a gateway error (listen) or an HSP_REG_E* (replica or
 * session); *msg says which step failed. */
int hsp_agent_web_start(hsp_agent_web_t **out, const hsp_agent_web_config_t *cfg,
                        const char **msg);
/* The registry's content changed (inside the registry process). */
void hsp_agent_web_changed(hsp_agent_web_t *w);
/* Closes the gateway and its connections, then the follower; then cb. */
void hsp_agent_web_stop(hsp_agent_web_t *w, void (*cb)(void *ctx), void *ctx);

#endif
