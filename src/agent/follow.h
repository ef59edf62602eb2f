/*
 * Following the registry: a local replica (replica.h) kept on disk and kept current over a
 * registry session (net.h): a snapshot when new or far behind, else SYNC from our head, then
 * WATCH. What the proxy and the HTTP gateway both look instances up in; they keep working
 * from the replica while the registry is down, and it catches up when it is back.
 */
#ifndef HSP_AGENT_FOLLOW_H
#define HSP_AGENT_FOLLOW_H

#include <stdbool.h>

#include "dht_io.h"
#include "replica.h"

typedef struct hsp_agent_follow hsp_agent_follow_t;

typedef struct hsp_agent_follow_cbs {
  /* A message from the registry was handled: the replica may have changed. */
  void (*on_change)(void *ud);
  /* Connected; `again` after an outage that on_down reported. hsp_agent_follow_was_up()
   * is still false inside the first one. */
  void (*on_up)(void *ud, bool again);
  /* The registry cannot be reached (err: hsp_dht_conn_strerror), once per outage;
   * `was_up` tells a lost connection from a first attempt that failed. */
  void (*on_down)(void *ud, bool was_up, int err);
  /* The replica cannot follow (an HSP_REG_E* error), once per distinct error. */
  void (*on_sync_error)(void *ud, int err);
  /* The replica is `behind` entries behind the registry: it catches up by snapshot. */
  void (*on_snapshot)(void *ud, uint64_t behind);
} hsp_agent_follow_cbs_t;

/* Opens the replica at replica_path for `registry` (32 bytes, copied) and starts the
 * session (io must be ready). Returns 0 or a negative HSP_REG_E* / session error. */
int hsp_agent_follow_start(hsp_agent_follow_t **out, hsp_dht_io_t *io, const uint8_t *registry,
                           const char *replica_path, const hsp_agent_follow_cbs_t *cbs, void *ud);
hsp_reg_replica_t *hsp_agent_follow_replica(const hsp_agent_follow_t *f);
bool hsp_agent_follow_was_up(const hsp_agent_follow_t *f);
/* No callback runs after this; cb (may be NULL) once the session is released and the
 * replica closed. */
void hsp_agent_follow_stop(hsp_agent_follow_t *f, void (*cb)(void *ctx), void *ctx);

#endif
