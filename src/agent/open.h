/*
 * Instance selection and opening a byte stream to an instance: what the proxy does for
 * each TCP connection, and what the HTTP gateway does for each request.
 */
#ifndef HSP_AGENT_OPEN_H
#define HSP_AGENT_OPEN_H

#include "hyper_conn.h"
#include "replica.h"

/* Candidates for a new connection to a role, best first, from the local replica: live
 * instances of `name` whose version satisfies `range`, highest version first, ties in
 * registration order. Returns how many were written to out (at most cap), or a negative
 * HSP_REG_E* error (ERANGE for a bad range). One function on purpose: load balancing
 * replaces this ordering, not the callers. */
long hsp_agent_select(const hsp_reg_replica_t *r, const char *name, const char *range,
                      hsp_reg_instance_t *out, size_t cap);

/* Opens an encrypted byte stream to the first of keys[0..n) that answers, trying each in
 * turn (at most HSP_AGENT_OPEN_MAX). Returns 0, and cb later gets the connection and the
 * key it reached, or the last error if none did; or returns an error at once (cb will not
 * run). `kp` is our identity and must outlive the call. */
#define HSP_AGENT_OPEN_MAX 8
typedef void (*hsp_agent_open_cb)(void *ctx, hsp_dht_conn_t *conn, const uint8_t key[32], int err);
int hsp_agent_open(hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp, const uint8_t (*keys)[32],
                   size_t n, hsp_agent_open_cb cb, void *ctx);

#endif
