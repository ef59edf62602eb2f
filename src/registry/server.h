/*
 * Sans-I/O registry server: decoded bytes and the clock in, response bytes out through a
 * send callback. The network layer feeds it each message received on a connection and
 * calls tick() when the timer from next_timer() fires; it never blocks on anything but the
 * store's commit, which is the point (a response means the change is durable).
 *
 * Request checks, in order: the message decodes; a signed request names this registry's
 * key (a request made for another registry is refused); its timestamp is within
 * max_skew_ms of our clock; its signature verifies with the instance key (register,
 * renew, deregister-by-self) or the registry key (deregister-by-owner); and its timestamp
 * is newer than the last accepted from the same signer (checked inside the store's
 * transaction). So a captured request cannot be replayed and a role cannot be registered
 * or removed under someone else's key.
 */
#ifndef HSP_REGISTRY_SERVER_H
#define HSP_REGISTRY_SERVER_H

#include "protocol.h"
#include "store.h"

typedef void (*hsp_reg_send_fn)(void *ud, uint64_t conn, const uint8_t *msg, size_t len);

typedef struct hsp_reg_server_config {
  hsp_store_t *store;       /* leader store, owned by the caller */
  const uint8_t *secret;    /* registry secret key (64 bytes), signs snapshots */
  uint64_t max_skew_ms;     /* 0 = default 60 s */
  hsp_reg_send_fn send;
  void *ud;
  /* Optional: each change applied (register, renew, deregister, expire), for the log.
   * Inside handle_many it runs before the commit (a failed commit answers EDB). */
  void (*on_change)(void *ud, const hsp_reg_entry_t *e);
} hsp_reg_server_config_t;

typedef struct hsp_reg_server hsp_reg_server_t;

hsp_reg_server_t *hsp_reg_server_new(const hsp_reg_server_config_t *cfg);
void hsp_reg_server_free(hsp_reg_server_t *srv);
/* Handles one message from connection `conn`. Always answers (an ERROR for anything
 * refused, with the request id when it could be read) and returns the error it answered
 * with, 0 on success. */
int hsp_reg_server_handle(hsp_reg_server_t *srv, uint64_t conn, const uint8_t *msg, size_t len,
                          uint64_t now_ms);
/* Several messages received together (say, everything read in one loop iteration),
 * handled with one commit: each answered exactly as by hsp_reg_server_handle, but all
 * answers are held back until that commit, so an OK still means durable while one fsync
 * serves the whole group. If the commit fails every message is answered EDB. */
typedef struct hsp_reg_input {
  uint64_t conn;
  const uint8_t *msg;
  size_t len;
} hsp_reg_input_t;
int hsp_reg_server_handle_many(hsp_reg_server_t *srv, const hsp_reg_input_t *in, size_t n,
                               uint64_t now_ms);
/* Expires lapsed leases and pushes the changes to watchers. */
int hsp_reg_server_tick(hsp_reg_server_t *srv, uint64_t now_ms);
/* When tick() should next run (UINT64_MAX: no lease pending). */
uint64_t hsp_reg_server_next_timer(hsp_reg_server_t *srv);
/* Forgets the connection's watches. */
void hsp_reg_server_disconnect(hsp_reg_server_t *srv, uint64_t conn);

#endif
