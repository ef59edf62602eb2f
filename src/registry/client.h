/*
 * Sans-I/O service side of the registry protocol: what `hyperseaport service` runs to keep
 * its instance registered. It builds signed requests with a timestamp that never repeats,
 * renews at a third of the TTL, and registers again when the registry no longer knows the
 * instance (its lease lapsed, or the registry restarted from an empty store). The I/O
 * layer sends what it returns, feeds back the registry's answers and calls tick() when
 * next_timer() is due.
 */
#ifndef HSP_REGISTRY_CLIENT_H
#define HSP_REGISTRY_CLIENT_H

#include "protocol.h"

enum hsp_reg_client_state {
  HSP_REG_CLIENT_IDLE,        /* not registered (yet, or any more) */
  HSP_REG_CLIENT_PENDING,     /* a register/renew is waiting for its answer */
  HSP_REG_CLIENT_REGISTERED,
};

typedef struct hsp_reg_client {
  uint8_t registry[HSP_REG_KEY_BYTES];
  uint8_t pk[HSP_REG_KEY_BYTES], sk[HSP_REG_SECRET_BYTES];
  hsp_reg_instance_t inst; /* name, version, tags, ttl_ms */
  int state;
  uint64_t last_ts;      /* last request timestamp: the next is always greater */
  uint64_t next_id;
  uint64_t pending_id;   /* id of the request in flight (0: none) */
  uint8_t pending_type;
  uint64_t due_ms;       /* when tick() next has work */
  uint64_t expires_ms;   /* lease end as the registry last confirmed it */
  uint64_t retry_ms;     /* resend a request left unanswered this long (default 5 s) */
  int last_error;        /* the registry's last refusal, 0 if none */
} hsp_reg_client_t;

/* `secret` is the instance's Ed25519 secret key (public key in its second half). */
int hsp_reg_client_init(hsp_reg_client_t *c, const uint8_t registry[HSP_REG_KEY_BYTES],
                        const uint8_t secret[HSP_REG_SECRET_BYTES], const char *name,
                        const char *version, const char *tags, uint32_t ttl_ms);
/* The request to send now, if any (register when idle or unknown to the registry, renew
 * when a third of the lease has passed, a resend when an answer is overdue). Returns the
 * length of a malloc'd message in *out, 0 if nothing is due, or a negative error. */
long hsp_reg_client_tick(hsp_reg_client_t *c, uint64_t now_ms, uint8_t **out);
uint64_t hsp_reg_client_next_timer(const hsp_reg_client_t *c);
/* Feeds an answer from the registry. Returns 0, or the registry's error for our request
 * (after which tick() knows what to do: ENOTFOUND leads to a new registration). */
int hsp_reg_client_receive(hsp_reg_client_t *c, const uint8_t *msg, size_t len, uint64_t now_ms);
/* A registry connection was (re)established: renew at once (answers to requests on the
 * old connection are lost); a registry that lost us answers ENOTFOUND and the next tick
 * registers again. */
void hsp_reg_client_reconnected(hsp_reg_client_t *c, uint64_t now_ms);
/* The signed DEREGISTER for shutdown; the client becomes idle. */
long hsp_reg_client_deregister(hsp_reg_client_t *c, uint64_t now_ms, uint8_t **out);

/* The registry owner's DEREGISTER of any instance (`registry_secret` signs it). */
long hsp_reg_owner_deregister(const uint8_t registry_secret[HSP_REG_SECRET_BYTES],
                              const uint8_t instance[HSP_REG_KEY_BYTES], uint64_t ts_ms,
                              uint64_t id, uint8_t **out);

#endif
