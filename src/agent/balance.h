/*
 * The proxy's balancer: which instance of a role gets the next connection, sans-I/O.
 *
 * It holds the live instances of one role (kept in step with the replica: hsp_bal_sync on
 * every change the registry pushes, hsp_bal_remove for an expiry or deregistration that must
 * take effect at once), their in-flight counts and connect latency, and their health as the
 * proxy observed it. Time comes in as milliseconds from the caller's clock.
 *
 * Policies:
 *   first        the first available instance in registry order (highest version, then
 *                oldest registration): active/standby
 *   round-robin  each available instance in turn
 *   hash         rendezvous hashing of the client address: a client stays on one instance
 *                while it is available, and only the clients of an instance that leaves move
 *   least-conn   fewest in-flight connections (ties broken at random)
 *   p2c          the default: two instances drawn at random, the one with the lower
 *                (in-flight + 1) x EWMA connect latency wins, so a slow or busy instance
 *                gets less work without being starved of the samples that show it recovered
 *
 * Health: a connect attempt that fails (session or channel refused before any byte was
 * forwarded) counts against its instance; after `eject_after` consecutive failures it is
 * ejected for base x 2^(k-1) ms (k = ejections in a row, capped at eject_max_ms). When that
 * time is up the instance is not used for clients: it is handed out once by hsp_bal_probe_due
 * so the caller can probe it (open a session), and only a successful probe brings it back.
 * The ejection count resets once the instance has stayed healthy for eject_max_ms.
 *
 * Failover: an attempt (hsp_bal_attempt_t) remembers the instances it tried; while nothing
 * was forwarded, hsp_bal_pick with the same attempt returns another instance.
 *
 * Tiers: instances may be grouped in priority tiers (hsp_bal_sync_tiers); every policy
 * draws from the best tier that has an instance to offer, and a worse tier serves only when
 * the better ones are all ejected or tried.
 */
#ifndef HSP_AGENT_BALANCE_H
#define HSP_AGENT_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HSP_BAL_KEY_BYTES 32
#define HSP_BAL_MAX_TRIES 8 /* instances one connection may try before it fails */

enum hsp_bal_error {
  HSP_BAL_ENONE = -1,   /* no instance available (none known, all ejected or tried) */
  HSP_BAL_ENOMEM = -2,
  HSP_BAL_EINVAL = -3,  /* bad argument or unknown policy name */
  HSP_BAL_ENOTFOUND = -4,
};
const char *hsp_bal_strerror(int err);

typedef enum hsp_bal_policy {
  HSP_BAL_P2C = 0,
  HSP_BAL_FIRST,
  HSP_BAL_ROUND_ROBIN,
  HSP_BAL_HASH,
  HSP_BAL_LEAST_CONN,
} hsp_bal_policy_t;

/* "p2c", "first", "round-robin", "hash", "least-conn". */
int hsp_bal_policy_parse(const char *name, hsp_bal_policy_t *out);
const char *hsp_bal_policy_name(hsp_bal_policy_t p);

typedef struct hsp_bal_config {
  hsp_bal_policy_t policy;
  uint32_t eject_after;     /* consecutive failures that eject (0: 1) */
  uint64_t eject_base_ms;   /* first ejection (0: 1000) */
  uint64_t eject_max_ms;    /* longest ejection (0: 60000) */
  double ewma_weight;       /* weight of a new latency sample, (0, 1] (0: 0.3) */
  double initial_latency_ms; /* assumed for an instance without samples (0: the mean of the
                                others, or 1 ms) */
  uint64_t decay_ms;        /* an unsampled instance's latency is taken half-way back to the
                               others' mean after this long (0: 10000) */
  uint64_t seed;            /* random draws (p2c, ties) are deterministic given the seed */
} hsp_bal_config_t;

typedef struct hsp_bal hsp_bal_t;

/* Returns NULL when out of memory. A NULL config means all defaults. */
hsp_bal_t *hsp_bal_new(const hsp_bal_config_t *cfg);
void hsp_bal_free(hsp_bal_t *b);

/* Makes the instance set exactly keys[0..n) in this (registry) order. Instances that stay
 * keep their counters and health; new ones start healthy. */
int hsp_bal_sync(hsp_bal_t *b, const uint8_t (*keys)[HSP_BAL_KEY_BYTES], size_t n);
/* The same with a tier per instance: only the best (lowest) tier that has an available
 * instance serves, e.g. the highest version a proxy's range matches, with older versions
 * as the fallback when every instance of the newest is down. NULL tiers: all 0. */
int hsp_bal_sync_tiers(hsp_bal_t *b, const uint8_t (*keys)[HSP_BAL_KEY_BYTES],
                       const uint32_t *tiers, size_t n);
/* Adds one instance at the end of the order, tier 0 (no-op if known). */
int hsp_bal_add(hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES]);
/* Forgets an instance at once (registry expiry or deregistration). False if unknown.
 * Later hsp_bal_done/failure calls for its connections are ignored. */
bool hsp_bal_remove(hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES]);
size_t hsp_bal_count(const hsp_bal_t *b);
/* Instances a client may be sent to now (known, not ejected or probing). */
size_t hsp_bal_available(const hsp_bal_t *b, uint64_t now_ms);

/* One client connection's tries. Zero-initialise it. */
typedef struct hsp_bal_attempt {
  uint8_t tried[HSP_BAL_MAX_TRIES][HSP_BAL_KEY_BYTES];
  unsigned n;
} hsp_bal_attempt_t;

/* Chooses an instance for a connection: copies its key to out and counts the connection as
 * in flight on it (balance it with exactly one hsp_bal_success/hsp_bal_failure, and after a
 * success one hsp_bal_done). `client` (any bytes, e.g. the peer address) is used by the hash
 * policy. `att` may be NULL; otherwise instances it already tried are skipped and the choice
 * is added to it. HSP_BAL_ENONE when nothing is available: the caller waits (for a
 * registration, a probe or an ejection to end; see hsp_bal_next_event). */
int hsp_bal_pick(hsp_bal_t *b, uint64_t now_ms, const void *client, size_t client_len,
                 hsp_bal_attempt_t *att, uint8_t out[HSP_BAL_KEY_BYTES]);

/* The connect attempt reached the instance's backend, after latency_ms. */
void hsp_bal_success(hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES], uint64_t now_ms,
                     double latency_ms);
/* The connect attempt failed before any byte was forwarded (it is no longer in flight). */
void hsp_bal_failure(hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES], uint64_t now_ms);
/* A connection that succeeded has ended. */
void hsp_bal_done(hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES]);
/* The instance failed as a whole (its session died): ejected at once, whatever eject_after. */
void hsp_bal_eject(hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES], uint64_t now_ms);

/* Whether a failed attempt may be retried on another instance: nothing was forwarded yet,
 * it has tries left, and another instance is available. */
bool hsp_bal_may_retry(const hsp_bal_t *b, const hsp_bal_attempt_t *att, uint64_t now_ms,
                       bool forwarded);

/* An ejected instance whose time is up, now marked as being probed (copied to out); false if
 * none. Report the probe's outcome with hsp_bal_probe_result. */
bool hsp_bal_probe_due(hsp_bal_t *b, uint64_t now_ms, uint8_t out[HSP_BAL_KEY_BYTES]);
void hsp_bal_probe_result(hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES], uint64_t now_ms,
                          bool ok);
/* When the next ejection ends (absolute ms), or UINT64_MAX if none is pending. */
uint64_t hsp_bal_next_event(const hsp_bal_t *b);

typedef enum hsp_bal_state {
  HSP_BAL_UP = 0,
  HSP_BAL_EJECTED,
  HSP_BAL_PROBING,
} hsp_bal_state_t;

typedef struct hsp_bal_stats {
  hsp_bal_state_t state;
  uint32_t in_flight;
  uint32_t failures;  /* consecutive */
  uint32_t ejections; /* in a row */
  uint64_t ejected_until_ms;
  double latency_ms;  /* EWMA, 0 without samples */
  uint64_t picks;
} hsp_bal_stats_t;

int hsp_bal_stats(const hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES], hsp_bal_stats_t *out);

#endif
